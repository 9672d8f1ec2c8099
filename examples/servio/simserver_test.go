package main

import (
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSimServerCloseWithUnusedConnection: an HTTP client often dials a
// connection it then does not use (a request that found an idle one
// first, or was cancelled mid-dial) and keeps it in its pool. The server
// counts such a connection as new, and http.Server.Shutdown waits for a
// new connection until it is 5 s old — as long as Close's own deadline, so
// Close failed with "context deadline exceeded" (a flake of
// TestJobsExactlyOnceThroughFaults in CI). Close now gives in-flight
// requests a grace period, then closes what is left, and succeeds.
func TestSimServerCloseWithUnusedConnection(t *testing.T) {
	t.Parallel()
	s, err := startSimSMS(0, 0, discardLogger())
	require.NoError(t, err)
	conn, err := net.Dial("tcp", s.ln.Addr().String()) // dialled, no request
	require.NoError(t, err)
	defer conn.Close()
	time.Sleep(50 * time.Millisecond) // accepted by the server

	start := time.Now()
	require.NoError(t, s.Close())
	assert.Less(t, time.Since(start), simServerGrace+2*time.Second, "closed after the grace period")
	_ = conn.SetReadDeadline(time.Now().Add(time.Second))
	_, err = conn.Read(make([]byte, 1))
	assert.Error(t, err, "the unused connection was closed by the server")
}
