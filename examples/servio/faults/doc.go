// Package faults is servio's fault suite: it builds the example service,
// runs several instances of it on loopback against private Redis, Redis
// Cluster and PostgreSQL servers (internal/testenv), breaks those servers
// under load and checks that nothing is lost: no 5xx where a fallback
// exists, bounded latency, exact distributed rate limits, no half-written
// orders, no stale cache entries after recovery, and a clear 4xx for every
// hostile request. The package holds only tests.
package faults
