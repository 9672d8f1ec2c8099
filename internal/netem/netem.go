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
// target address, delaying each chunk of data by Delay in each direction.
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

func (p *LatencyProxy) pipe(dst io.Writer, src io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if d := time.Duration(p.delay.Load()); d > 0 {
				time.Sleep(d)
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
