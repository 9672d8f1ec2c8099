// Command servio is perfkit's example restaurant service: orders, menus and
// inventory assembled from perfkit's packages. With no configuration it runs
// on embedded defaults (SQLite file under ./data, in-process cache,
// simulated LLM upstream) and serves on :8080 (-addr or ADDR to change);
// DATABASE_URL, REDIS_URL and OPENAI_BASE_URL switch to real services.
//
// Subcommands:
//
//	servio [flags]          serve (the default)
//	servio seed [flags]     fill the database with a realistic data set
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"github.com/redis/go-redis/v9"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first signal, restore the default handling, so a second
		// one stops a shutdown that is taking too long.
		<-ctx.Done()
		stop()
	}()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "servio:", err)
		os.Exit(1)
	}
}

// run executes the subcommand in args until ctx is cancelled.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "seed" {
		return runSeed(ctx, args[1:], getenv, stderr)
	}
	if len(args) > 0 && args[0] == "serve" {
		args = args[1:]
	}
	cfg, err := parseConfig("servio", args, getenv, stderr, nil)
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg.LogLevel)
	// go-redis's own lines (reconnects, pool errors) through the same
	// handler; process-wide, so the binary sets it, not each App.
	redis.SetLogger(redisLogger{log: log})
	start := time.Now()
	app, err := newApp(ctx, cfg, log, appOptions{setGlobal: true})
	if err != nil {
		return err
	}
	defer func() {
		if err := app.Close(); err != nil {
			log.Warn("servio: closing", "err", err)
		}
	}()
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	return serve(ctx, app, ln, log, start)
}

// serve answers on ln until ctx is cancelled, then lets in-flight requests
// finish within the shutdown timeout. It closes ln.
func serve(ctx context.Context, app *App, ln net.Listener, log *slog.Logger, start time.Time) error {
	srv := &http.Server{
		Handler:           app.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("servio listening", "addr", ln.Addr().String(), "startup", time.Since(start).Round(time.Millisecond).String())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("servio shutting down: draining, then finishing in-flight requests")
	app.drain(app.cfg.DrainDelay)
	sctx, cancel := context.WithTimeout(context.Background(), app.cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		// Out of time: cut the remaining connections before the caller
		// closes the database under their handlers.
		_ = srv.Close()
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Info("servio stopped")
	return nil
}

// newLogger returns a JSON logger at level (validated by parseConfig).
func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(newSamplingHandler(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}), logSampleEvery, time.Now))
}
