package store

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"time"
)

// SeedOptions sizes the data set Seed builds.
type SeedOptions struct {
	Restaurants int // seeded restaurants wanted in total
	Items       int // menu items per seeded restaurant
	Orders      int // orders across the seeded restaurants, each with 1–8 items
	// Progress, when set, is called after every batch of orders.
	Progress func(done, total int)
}

const (
	seedPrefix      = "Seed Restaurant "
	seedOrdersBatch = 500
)

// Seed tops the database up to the data set opts describes: restaurants
// named "Seed Restaurant NNNN" with Items menu items (and stock) each, and
// Orders orders among them, spread over the last 90 days. It counts what a
// previous run left and adds only the difference, so running it again is a
// no-op; which items and statuses the orders get depends only on that
// count. Inserts are multi-row, one transaction per batch.
func (s *Store) Seed(ctx context.Context, opts SeedOptions) error {
	rids, err := s.seedRestaurants(ctx, opts.Restaurants)
	if err != nil || len(rids) == 0 {
		return err
	}
	menus, err := s.seedMenus(ctx, rids, opts.Items)
	if err != nil {
		return err
	}
	return s.seedOrders(ctx, rids, menus, opts)
}

func (s *Store) seededIDs(ctx context.Context, q rowsQueryer) ([]int64, error) {
	return queryAll(ctx, q, scanID, rebind(s.d, "SELECT id FROM restaurants WHERE name LIKE ? AND deleted_at IS NULL ORDER BY name"), seedPrefix+"%")
}

func scanID(r *sql.Rows, id *int64) error { return r.Scan(id) }

func (s *Store) seedRestaurants(ctx context.Context, want int) ([]int64, error) {
	var ids []int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		have, err := s.seededIDs(ctx, tx)
		if err != nil {
			return err
		}
		if missing := want - len(have); missing > 0 {
			args := make([]any, 0, missing)
			for i := len(have); i < want; i++ {
				args = append(args, fmt.Sprintf("%s%04d", seedPrefix, i+1))
			}
			if _, err := tx.ExecContext(ctx, rebind(s.d, "INSERT INTO restaurants (name) VALUES "+valueRows(missing, 1)), args...); err != nil {
				return err
			}
			if have, err = s.seededIDs(ctx, tx); err != nil {
				return err
			}
		}
		ids = have[:min(want, len(have))]
		return nil
	})
	return ids, err
}

type seedDish struct {
	id    int64
	name  string
	price int64
}

var seedDishNames = []string{"Soup", "Salad", "Burger", "Pizza", "Pasta", "Curry", "Taco", "Noodles", "Rice bowl", "Cake"}

func (s *Store) seedMenus(ctx context.Context, rids []int64, items int) (map[int64][]seedDish, error) {
	menus := make(map[int64][]seedDish, len(rids))
	for _, rid := range rids {
		err := s.inTx(ctx, func(tx *sql.Tx) error {
			var have int
			if err := tx.QueryRowContext(ctx, rebind(s.d, "SELECT COUNT(*) FROM menu_items WHERE restaurant_id = ?"), rid).Scan(&have); err != nil {
				return err
			}
			if missing := items - have; missing > 0 {
				args := make([]any, 0, 4*missing)
				for i := have; i < items; i++ {
					name := fmt.Sprintf("%s #%d", seedDishNames[i%len(seedDishNames)], i+1)
					args = append(args, rid, name, int64(300+(i*137)%2700), true)
				}
				if _, err := tx.ExecContext(ctx, rebind(s.d, "INSERT INTO menu_items (restaurant_id, name, price_cents, is_available) VALUES "+
					valueRows(missing, 4)), args...); err != nil {
					return err
				}
				// About one item in ten starts under its reorder point.
				if _, err := tx.ExecContext(ctx, rebind(s.d, `INSERT INTO inventory_items (restaurant_id, menu_item_id, name, current_quantity, reorder_point)
					SELECT m.restaurant_id, m.id, m.name, (m.id * 37) % 200 + 1, 20 FROM menu_items m
					WHERE m.restaurant_id = ? AND NOT EXISTS (SELECT 1 FROM inventory_items i WHERE i.menu_item_id = m.id)`), rid); err != nil {
					return err
				}
			}
			menu, err := queryAll(ctx, tx, func(r *sql.Rows, d *seedDish) error { return r.Scan(&d.id, &d.name, &d.price) },
				rebind(s.d, "SELECT id, name, price_cents FROM menu_items WHERE restaurant_id = ? AND deleted_at IS NULL ORDER BY id"), rid)
			menus[rid] = menu
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	return menus, nil
}

func (s *Store) seedOrders(ctx context.Context, rids []int64, menus map[int64][]seedDish, opts SeedOptions) error {
	in := "(" + placeholders(len(rids)) + ")"
	args := make([]any, len(rids))
	for i, id := range rids {
		args[i] = id
	}
	var have int
	if err := s.db.QueryRowContext(ctx, rebind(s.d, "SELECT COUNT(*) FROM orders WHERE restaurant_id IN "+in), args...).Scan(&have); err != nil {
		return err
	}
	// The same choices for the same starting point, so a data set (and
	// the plans the EXPLAIN test checks on it) can be reproduced.
	rng := rand.New(rand.NewPCG(42, uint64(have)))
	total := opts.Orders
	statuses := []string{StatusCompleted, StatusCompleted, StatusCompleted, StatusCompleted, StatusCancelled, StatusReady, StatusPreparing, StatusPending}
	now := time.Now()
	for done := have; done < total; {
		n := min(seedOrdersBatch, total-done)
		err := s.inTx(ctx, func(tx *sql.Tx) error {
			ids, err := s.reserveOrderIDs(ctx, tx, n)
			if err != nil {
				return err
			}
			orders := make([]any, 0, 7*n)
			var items []any
			for _, oid := range ids {
				rid := rids[rng.IntN(len(rids))]
				menu := menus[rid]
				if len(menu) == 0 {
					return fmt.Errorf("store: seed: restaurant %d has no menu", rid)
				}
				lines := 1 + rng.IntN(8)
				var sum int64
				seen := map[int64]bool{}
				for range lines {
					d := menu[rng.IntN(len(menu))]
					if seen[d.id] {
						continue
					}
					seen[d.id] = true
					q := 1 + rng.IntN(3)
					sum += d.price * int64(q)
					items = append(items, oid, d.id, d.name, q, d.price)
				}
				at := now.Add(-time.Duration(rng.Int64N(int64(90 * 24 * time.Hour))))
				orders = append(orders, oid, rid, "Guest "+fmt.Sprint(oid), statuses[rng.IntN(len(statuses))], sum, s.timeArg(at), s.timeArg(at))
			}
			if _, err := tx.ExecContext(ctx, rebind(s.d, `INSERT INTO orders (id, restaurant_id, customer_name, status, total_cents, created_at, updated_at) VALUES `+
				valueRows(n, 7)), orders...); err != nil {
				return err
			}
			_, err = tx.ExecContext(ctx, rebind(s.d, s.q.orderItemsHead+valueRows(len(items)/5, 5)), items...)
			return err
		})
		if err != nil {
			return err
		}
		done += n
		if opts.Progress != nil {
			opts.Progress(done, total)
		}
	}
	// Fresh statistics so the planner sees the new rows at once.
	_, err := s.db.ExecContext(ctx, "ANALYZE")
	return err
}

// reserveOrderIDs returns n fresh order ids: from the sequence on
// PostgreSQL, after MAX(id) on SQLite (safe: the write lock is held).
func (s *Store) reserveOrderIDs(ctx context.Context, tx *sql.Tx, n int) ([]int64, error) {
	if s.d == SQLite {
		var maxID int64
		if err := tx.QueryRowContext(ctx, "SELECT COALESCE(MAX(id), 0) FROM orders").Scan(&maxID); err != nil {
			return nil, err
		}
		ids := make([]int64, 0, n)
		for i := range n {
			ids = append(ids, maxID+1+int64(i))
		}
		return ids, nil
	}
	return queryAll(ctx, tx, scanID, "SELECT nextval(pg_get_serial_sequence('orders', 'id')) FROM generate_series(1, $1)", n)
}
