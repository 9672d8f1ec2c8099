package main

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestTour runs the README's tour, so it cannot rot.
func TestTour(t *testing.T) {
	require.NoError(t, tour(context.Background()))
}

func Example_tour() {
	_ = tour(context.Background())
	// Output:
	// 42 [Margherita Tiramisu]
	// 42 [Margherita Tiramisu]
	// 42 [Margherita Tiramisu]
	// loads: 1
	// version: v1
}
