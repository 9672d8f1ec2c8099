// Package netem emulates network conditions on loopback for perfkit's fault
// tests and load comparisons: a TCP proxy that adds latency to every chunk
// of data it forwards, changeable while it runs. It is internal: not part of
// perfkit's API.
package netem

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// LatencyProxy forwards TCP connections from a loopback listener to a
// target address, delivering each chunk of data Delay after it arrived, in
// each direction; chunks in flight overlap, as on a real link.
// Its methods are safe for concurrent use.
type LatencyProxy struct {
	l      net.Listener
	target string
	delay  atomic.Int64
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
}

// Listen starts a proxy to target on a free port of 127.0.0.1.
func Listen(target string, delay time.Duration) (*LatencyProxy, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &LatencyProxy{l: l, target: target, conns: map[net.Conn]struct{}{}}
	p.delay.Store(int64(delay))
	p.wg.Go(p.serve)
	return p, nil
}

// Addr is the proxy's "127.0.0.1:port".
func (p *LatencyProxy) Addr() string { return p.l.Addr().String() }

// SetDelay changes the delay of data forwarded from now on.
func (p *LatencyProxy) SetDelay(d time.Duration) { p.delay.Store(int64(d)) }

// Close stops accepting, cuts every proxied connection and waits for the
// proxy's goroutines to end.
func (p *LatencyProxy) Close() error {
	err := p.l.Close()
	p.mu.Lock()
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

func (p *LatencyProxy) track(c net.Conn, add bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if add {
		p.conns[c] = struct{}{}
	} else {
		delete(p.conns, c)
	}
}

func (p *LatencyProxy) serve() {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		p.wg.Go(func() {
			defer c.Close()
			u, err := net.Dial("tcp", p.target)
			if err != nil {
				return
			}
			defer u.Close()
			p.track(c, true)
			p.track(u, true)
			defer p.track(c, false)
			defer p.track(u, false)
			var both sync.WaitGroup
			both.Go(func() { p.pipe(u, c); _ = u.Close() })
			both.Go(func() { p.pipe(c, u); _ = c.Close() })
			both.Wait()
		})
	}
}

// pipe copies src to dst, delivering each chunk Delay after it was read.
// Chunks are in flight together, as on a network link: a reply that
// arrives in ten reads is delayed once, not ten times. When dst fails, dst
// is closed (the opposite pipe then closes src) and the rest is dropped.
func (p *LatencyProxy) pipe(dst net.Conn, src io.Reader) {
	type chunk struct {
		b   []byte
		due time.Time
	}
	inFlight := make(chan chunk, 256)
	var writer sync.WaitGroup
	writer.Go(func() {
		failed := false
		for c := range inFlight {
			if failed {
				continue
			}
			if wait := time.Until(c.due); wait > 0 {
				time.Sleep(wait)
			}
			if _, err := dst.Write(c.b); err != nil {
				failed = true
				_ = dst.Close()
			}
		}
	})
	defer writer.Wait()
	defer close(inFlight)
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			inFlight <- chunk{b: append([]byte(nil), buf[:n]...), due: time.Now().Add(time.Duration(p.delay.Load()))}
		}
		if err != nil {
			return
		}
	}
}
