package cache

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servio/perfkit/internal/testenv"
)

// globCases are shared with TestGlobMatchAgreesWithRedis.
var globCases = []struct {
	pattern, s string
	want       bool
}{
	{"*", "", true},
	{"*", "anything", true},
	{"menu:*", "menu:1", true},
	{"menu:*", "menus:1", false},
	{"menu:?", "menu:1", true},
	{"menu:?", "menu:12", false},
	{"*:1", "menu:1", true},
	{"m*u:*1", "menu:21", true},
	{"m*u:*1", "menu:12", false},
	{"[mo]*", "order", true},
	{"[^mo]*", "order", false},
	{"[a-c]x", "bx", true},
	{"[c-a]x", "bx", true},
	{"[a-c]x", "dx", false},
	{`a\*b`, "a*b", true},
	{`a\*b`, "axb", false},
	{`[\]]`, "]", true},
	{"[abc", "a", true},
	{`\`, `\`, true},
	{"", "", true},
	{"", "x", false},
}

func TestGlobMatch(t *testing.T) {
	t.Parallel()
	for _, tc := range globCases {
		assert.Equal(t, tc.want, globMatch(tc.pattern, tc.s), "%q ~ %q", tc.pattern, tc.s)
	}
}

// TestGlobMatchAgreesWithRedis checks the L1 matcher against SCAN MATCH on
// the same keys, so pattern invalidation drops the same keys from both tiers.
func TestGlobMatchAgreesWithRedis(t *testing.T) {
	t.Parallel()
	rdb, prefix := testenv.Redis(t)
	ctx := t.Context()
	for i, tc := range globCases {
		if tc.pattern == "" {
			continue // an empty pattern after the prefix is the prefix itself
		}
		key := fmt.Sprintf("%s%d:%s", prefix, i, tc.s)
		require.NoError(t, rdb.Set(ctx, key, "1", 0).Err())
		iter := rdb.Scan(ctx, 0, fmt.Sprintf("%s%d:%s", prefix, i, tc.pattern), 1000).Iterator()
		found := 0
		for iter.Next(ctx) {
			found++
		}
		require.NoError(t, iter.Err())
		assert.Equal(t, found == 1, globMatch(tc.pattern, tc.s), "Redis and globMatch disagree on %q ~ %q", tc.pattern, tc.s)
	}
}

func TestEscapePattern(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "plain", EscapePattern("plain"))
	assert.Equal(t, `a\*b\?c\[d\]e\\f`, EscapePattern(`a*b?c[d]e\f`))
}

// FuzzEscapePattern checks that an escaped string matches itself and only
// itself (against itself with one byte changed).
func FuzzEscapePattern(f *testing.F) {
	for _, s := range []string{"", "menu:1", "a*b", "[x]", `\`, "?*[^]-\\"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p := EscapePattern(s)
		if !globMatch(p, s) {
			t.Fatalf("EscapePattern(%q) = %q does not match it", s, p)
		}
		if globMatch(p, s+"x") {
			t.Fatalf("EscapePattern(%q) = %q matches a longer string", s, p)
		}
		_ = globMatch(s, s) // raw patterns never panic
	})
}
