package main

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/servio/perfkit/dbpool"
	"github.com/servio/perfkit/examples/servio/internal/store"
	"github.com/servio/perfkit/health"
	"github.com/servio/perfkit/internal/redact"
)

// Read replicas (issue 22). With DATABASE_REPLICA_URLS, servio opens one
// pool per replica (the primary's settings, named servio-replica-N) and a
// dbpool.Cluster over the primary and them. Menu, low-stock and
// order-history reads run through Cluster.Read; order placement, status
// changes, menu edits, logins, idempotency keys and single-order reads
// stay on the primary. Every request carries a dbpool session: the
// signed-in user's ("user:<id>", so a manager's menu edit and a staff
// member's status change are visible to their next request at once, on
// this instance), else one private to the request. Menu reads fill the
// cache every instance shares, so they see every write committed before
// they start (dbpool.Cluster.Latest: one cheap query on the primary per
// cache miss): no instance caches a menu from before a committed edit.

// splitURLs splits a comma-separated URL list, dropping empty entries.
func splitURLs(s string) []string {
	var out []string
	for u := range strings.SplitSeq(s, ",") {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, u)
		}
	}
	return out
}

// redactURLList redacts every URL of a comma-separated list, for -h.
func redactURLList(s string) string {
	urls := splitURLs(s)
	for i, u := range urls {
		urls[i] = redact.URL(u)
	}
	return strings.Join(urls, ",")
}

// openReplicas opens the replica pools and a Cluster over primary and
// them; nil without DATABASE_REPLICA_URLS. The Cluster owns the pools
// (its Close closes them and the primary).
func openReplicas(ctx context.Context, cfg Config, d store.Dialect, primary *dbpool.DB, poolCfg dbpool.Config) (*dbpool.Cluster, error) {
	urls := splitURLs(cfg.DatabaseReplicaURLs)
	if len(urls) == 0 {
		return nil, nil
	}
	if d != store.Postgres {
		return nil, fmt.Errorf("DATABASE_REPLICA_URLS needs a PostgreSQL DATABASE_URL")
	}
	var pools []*dbpool.DB
	closeAll := func() {
		for _, p := range pools {
			_ = p.Close()
		}
	}
	for i, u := range urls {
		pc := poolCfg
		pc.Name = "servio-replica-" + strconv.Itoa(i+1)
		p, err := dbpool.OpenPostgres(ctx, u, pc)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("database replica %d: %w", i+1, err)
		}
		pools = append(pools, p)
	}
	c, err := dbpool.NewCluster(ctx, primary, pools, dbpool.ClusterConfig{MeterProvider: poolCfg.MeterProvider, Logger: poolCfg.Logger})
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("database replicas: %w", err)
	}
	return c, nil
}

// dbSession puts every request in a dbpool session: the signed-in user's,
// else one private to the request.
func (a *App) dbSession(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(dbpool.WithSession(r.Context(), a.userKey(r))))
	})
}

// replicaCheck reports the replicas (a non-critical check: without them
// reads run on the primary): warn while any is out of rotation (lagging
// past MaxLag or failing), with each one's lag in seconds.
func (a *App) replicaCheck(context.Context) health.Result {
	res := health.Result{ComponentType: "datastore"}
	var out []string
	for _, st := range a.replicas.ReplicaStats() {
		res.Measurements = append(res.Measurements, health.Measurement{Name: "lag", Value: st.Lag.Seconds(), Unit: "s", ComponentID: st.Name})
		if !st.Usable {
			out = append(out, fmt.Sprintf("%s: %v", st.Name, st.Err))
		}
	}
	if len(out) > 0 {
		res.Status = health.StatusWarn
		res.Output = "out of rotation, reads on the primary: " + strings.Join(out, "; ")
	}
	return res
}
