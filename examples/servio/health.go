package main

import (
	"context"
	"net/http"
	"time"
)

// healthRoutes serves the health endpoints.
func (a *App) healthRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /health/live", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /health/ready", func(w http.ResponseWriter, r *http.Request) {
		if err := a.pingDB(r.Context()); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "down", "database": "unreachable"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /health/detailed", func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		db := map[string]any{"status": "up", "dialect": a.st.Dialect().String()}
		status := http.StatusOK
		if err := a.pingDB(r.Context()); err != nil {
			db["status"], db["error"] = "down", err.Error()
			status = http.StatusServiceUnavailable
		}
		db["latency_ms"] = time.Since(start).Milliseconds()
		st := a.db.Stats()
		db["open_connections"], db["in_use"], db["idle"] = st.OpenConnections, st.InUse, st.Idle
		overall := "ok"
		if status != http.StatusOK {
			overall = "down"
		}
		writeJSON(w, status, map[string]any{"status": overall, "checks": map[string]any{
			"database": db,
			"llm":      map[string]any{"status": "unchecked", "simulated": a.sim != nil, "critical": false},
		}})
	})
	mux.HandleFunc("GET /health/metrics", func(w http.ResponseWriter, r *http.Request) {
		if a.metricsH == nil {
			w.Header().Set("Content-Type", "text/plain; version=0.0.4")
			_, _ = w.Write([]byte("# metrics are not configured\n"))
			return
		}
		a.metricsH.ServeHTTP(w, r)
	})
}

func (a *App) pingDB(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return a.db.PingContext(ctx)
}
