package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// simServer is the HTTP server under each simulated upstream (simLLM,
// simSMS): a free loopback port, served until Close.
type simServer struct {
	srv  *http.Server
	ln   net.Listener
	wg   sync.WaitGroup
	once sync.Once
}

// serve listens on a free loopback port and serves h there until Close;
// name labels its errors.
func (s *simServer) serve(name string, h http.Handler, log *slog.Logger) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	s.ln = ln
	s.srv = &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error(name+" stopped", "err", err)
		}
	}()
	return nil
}

// origin is "http://127.0.0.1:port".
func (s *simServer) origin() string { return "http://" + s.ln.Addr().String() }

// simServerGrace is how long Close lets requests in flight finish.
const simServerGrace = 2 * time.Second

// Close stops the server and waits for it; calling it again does nothing.
// Requests in flight get simServerGrace to finish; then every connection
// left is closed — among them those a client dialled and never used,
// which http.Server.Shutdown would otherwise wait on until they are 5 s
// old.
func (s *simServer) Close() error {
	var err error
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), simServerGrace)
		defer cancel()
		if err = s.srv.Shutdown(ctx); errors.Is(err, context.DeadlineExceeded) {
			err = s.srv.Close()
		}
		s.wg.Wait()
	})
	return err
}
