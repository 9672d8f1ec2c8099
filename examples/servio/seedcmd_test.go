package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSeedCommand runs `servio seed` twice on a SQLite file: the progress
// line is printed and the second run adds nothing.
func TestSeedCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	args := []string{"seed", "-data-dir", dir, "-restaurants", "2", "-items", "3", "-orders", "600", "-log-level", "error"}
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), args, func(string) string { return "" }, &out))
	assert.Contains(t, out.String(), "seeding orders [#########################.....] 500/600 (83%)")
	assert.Contains(t, out.String(), "seeded 2 restaurants × 3 menu items, 600 orders on sqlite")

	out.Reset()
	require.NoError(t, run(context.Background(), args, func(string) string { return "" }, &out))
	assert.NotContains(t, out.String(), "seeding orders", "a second run has nothing to add")

	cfg := testConfig(t, "sqlite")
	cfg.DataDir = dir
	a := startApp(t, cfg).admin()
	var n int
	require.NoError(t, a.db.QueryRow("SELECT COUNT(*) FROM orders").Scan(&n))
	assert.Equal(t, 600+15, n, "the demo's 15 orders, then the 600 seeded")

	err := run(context.Background(), []string{"seed", "-data-dir", dir, "-restaurants", "0"}, func(string) string { return "" }, &out)
	assert.Error(t, err)
}
