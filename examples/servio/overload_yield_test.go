package main

import (
	"context"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/servio/perfkit/examples/servio/internal/store"
)

// With -adaptive-network-first a query to the embedded SQLite yields to
// the network first: on one P, a request that arrived while a handler
// ran on the CPU is read before the handler's query runs, as it would be
// during a query to a database server. The control (the store's yield
// off) shows the round tells the two apart. Not parallel: it runs on one
// P.
func TestOverloadNetworkFirstStoreYields(t *testing.T) {
	cfg := testConfig(t, "sqlite")
	cfg.AdaptiveNetworkFirst = 1
	a := startApp(t, cfg)
	prev := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(prev)

	// round returns which ran first: "network" (a reader parked in the
	// network poller whose byte arrived before the query) or "query".
	round := func() string {
		t.Helper()
		server, client, err := os.Pipe()
		require.NoError(t, err)
		defer server.Close()
		defer client.Close()
		order := make(chan string, 2)
		go func() {
			var b [1]byte
			if _, err := server.Read(b[:]); err == nil {
				order <- "network"
			}
		}()
		time.Sleep(5 * time.Millisecond) // the reader parks in the poller
		_, err = client.Write([]byte{1})
		require.NoError(t, err)
		_, err = a.svc.Orders(context.Background(), store.OrdersQuery{RestaurantID: 1})
		require.NoError(t, err)
		order <- "query"
		first := <-order
		<-order
		return first
	}
	for i := range 10 {
		require.Equal(t, "network", round(), "round %d: the query ran before the request that had arrived was read", i)
	}
	a.st.SetYield(nil) // the control; nothing else uses the store now
	queryFirst := 0
	for range 10 {
		if round() == "query" {
			queryFirst++
		}
	}
	require.Positive(t, queryFirst, "without the yield the request that had arrived ran first in every round: the round does not tell the two apart")
}
