// Package testenv gives perfkit's tests real servers: the shared Redis and
// PostgreSQL named by REDIS_URL and DATABASE_URL (each test isolated in its own
// key prefix or schema), fresh SQLite files, and private redis-server,
// Redis Cluster and PostgreSQL processes that a test may kill, pause or restart.
//
// A helper whose server cannot be reached fails the test with one line saying
// what to start; it never skips. Tests of different packages run in parallel,
// so nothing here ever stops, flushes or reconfigures the shared servers.
//
// testenv is internal and test-only: it is not part of perfkit's API.
package testenv
