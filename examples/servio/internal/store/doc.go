// Package store is servio's data layer: the embedded goose migrations for
// PostgreSQL and SQLite and the repositories for restaurants, menus, orders,
// inventory and users.
//
// Every query names its columns (no SELECT *), money is integer cents, and an
// orders page is read with its items in one query (json_agg on PostgreSQL,
// json_group_array on SQLite) with keyset pagination on (created_at, id).
// Queries are written once with ? placeholders and rebound to $n for
// PostgreSQL when the Store is built; only the few statements with a
// variable-length IN or VALUES list (order placement, seeding, demo data)
// are built and rebound per call.
package store
