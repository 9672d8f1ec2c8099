package httpclient

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/servio/perfkit/resilience"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// countingServer is a loopback httptest server that counts the TCP
// connections it accepts and the requests it serves.
type countingServer struct {
	*httptest.Server
	conns    atomic.Int64 // accepted in total
	open     atomic.Int64 // open now
	peak     atomic.Int64 // most open at once
	requests atomic.Int64
}

func newCountingServer(t testing.TB, h http.HandlerFunc) *countingServer {
	t.Helper()
	s := &countingServer{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		h(w, r)
	}))
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			s.conns.Add(1)
			n := s.open.Add(1)
			for p := s.peak.Load(); n > p && !s.peak.CompareAndSwap(p, n); p = s.peak.Load() {
			}
		case http.StateClosed, http.StateHijacked:
			s.open.Add(-1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	s.Server = srv
	return s
}

// newTestClient builds a client and closes its idle connections at cleanup
// (before the server closes) so goleak sees no connection goroutines.
func newTestClient(t testing.TB, opts Config) *http.Client {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	c, err := New(opts)
	require.NoError(t, err)
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// sleepRecorder is a resilience.Clock that records requested waits
// instead of sleeping: its timers fire at once. Its time stands still (at
// now, or the real time of its first use), so many recorded waits never
// carry it past a real request deadline.
type sleepRecorder struct {
	mu    sync.Mutex
	now   time.Time
	waits []time.Duration
}

func (s *sleepRecorder) Now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.now.IsZero() {
		s.now = time.Now()
	}
	return s.now
}

func (s *sleepRecorder) NewTimer(d time.Duration) resilience.Timer {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.waits = append(s.waits, d)
	ch := make(chan time.Time, 1)
	ch <- time.Time{}
	return firedTimer(ch)
}

type firedTimer chan time.Time

func (t firedTimer) C() <-chan time.Time { return t }
func (t firedTimer) Stop() bool          { return false }

func (s *sleepRecorder) Waits() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.waits)
}

// bodyProbe is a RoundTripper that watches what the layers above do with
// each response body: whether it was read to io.EOF before Close, and
// whether the request context was still live when EOF came. Unlike counting
// server connections, this does not depend on net/http's 50 ms
// write-confirmation rule, which CPU starvation trips.
type bodyProbe struct {
	next         http.RoundTripper
	bodies       atomic.Int64 // responses returned
	closedEarly  atomic.Int64 // closed before EOF
	eofCancelled atomic.Int64 // EOF reached with the context already done
}

func (p *bodyProbe) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := p.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	p.bodies.Add(1)
	resp.Body = &probeBody{ReadCloser: resp.Body, p: p, ctx: req.Context()}
	return resp, nil
}

func (p *bodyProbe) CloseIdleConnections() { closeIdle(p.next) }

// wrap is an Config.WrapBase that puts p under the middleware.
func (p *bodyProbe) wrap(rt http.RoundTripper) http.RoundTripper {
	p.next = rt
	return p
}

type probeBody struct {
	io.ReadCloser
	p   *bodyProbe
	ctx context.Context
	eof bool
}

func (b *probeBody) Read(buf []byte) (int, error) {
	n, err := b.ReadCloser.Read(buf)
	if err == io.EOF && !b.eof {
		b.eof = true
		if b.ctx.Err() != nil {
			b.p.eofCancelled.Add(1)
		}
	}
	return n, err
}

func (b *probeBody) Close() error {
	if !b.eof {
		b.p.closedEarly.Add(1)
	}
	return b.ReadCloser.Close()
}
