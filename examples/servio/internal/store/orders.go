package store

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Page sizes for Orders.
const (
	DefaultPageSize = 20
	MaxPageSize     = 100
)

type scanner interface{ Scan(dest ...any) error }

func scanOrder(r scanner) (Order, error) {
	var o Order
	var created, updated dbTime
	var items []byte
	var phone sql.NullString
	if err := r.Scan(&o.ID, &o.RestaurantID, &o.CustomerName, &o.Status, &o.TotalCents, &created, &updated, &items, &phone); err != nil {
		return o, err
	}
	o.CustomerPhone = phone.String
	o.CreatedAt, o.UpdatedAt = created.t, updated.t
	o.Items = []OrderItem{}
	if len(items) > 0 {
		var err error
		if o.Items, err = decodeItems(items); err != nil {
			return o, fmt.Errorf("store: order %d items: %w", o.ID, err)
		}
	}
	return o, nil
}

// Order returns one order with its items in one query.
func (s *Store) Order(ctx context.Context, id int64) (Order, error) {
	s.yielded()
	defer s.yielded()
	return s.order(ctx, s.db, id)
}

func (s *Store) order(ctx context.Context, q queryer, id int64) (Order, error) {
	o, err := scanOrder(q.QueryRowContext(ctx, s.q.orderGet, id))
	if errors.Is(err, sql.ErrNoRows) {
		return o, &NotFoundError{What: "order", ID: id}
	}
	return o, err
}

// OrdersQuery selects a page of a restaurant's orders.
type OrdersQuery struct {
	RestaurantID int64
	Status       string  // optional filter
	Limit        int     // 0 means DefaultPageSize; capped at MaxPageSize
	After        *Cursor // nil for the first page
}

// Orders returns one page of a restaurant's live orders, newest first, each
// with its items, in one query (two when the page is empty, to tell an
// unknown restaurant from one without orders).
func (s *Store) Orders(ctx context.Context, q OrdersQuery) (page OrderPage, err error) {
	err = s.read(ctx, func(db Conn) error {
		page, err = s.orders(ctx, db, q, &s.q.orderPage)
		return err
	})
	return page, err
}

// OrdersNPlusOne returns the same page as Orders the way the original TypeScript service
// did before its optimisation: one query for the page, then one more per
// order for its items. It exists only for servio's -baseline mode, so the
// before/after load test measures what batch loading saves.
func (s *Store) OrdersNPlusOne(ctx context.Context, q OrdersQuery) (page OrderPage, err error) {
	err = s.read(ctx, func(db Conn) error {
		if page, err = s.orders(ctx, db, q, &s.q.orderPageBare); err != nil {
			return err
		}
		for i := range page.Orders {
			if page.Orders[i].Items, err = s.orderItems(ctx, db, page.Orders[i].ID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return OrderPage{}, err
	}
	return page, nil
}

func (s *Store) orderItems(ctx context.Context, db Conn, orderID int64) ([]OrderItem, error) {
	return queryAll(ctx, db, func(r *sql.Rows, it *OrderItem) error {
		return r.Scan(&it.ID, &it.MenuItemID, &it.Name, &it.Quantity, &it.UnitPriceCents)
	}, s.q.orderItems, orderID)
}

func (s *Store) orders(ctx context.Context, db Conn, q OrdersQuery, pages *[2][2]string) (OrderPage, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultPageSize
	}
	limit = min(limit, MaxPageSize)
	args := make([]any, 0, 5)
	args = append(args, q.RestaurantID)
	hs, hc := 0, 0
	if q.Status != "" {
		hs = 1
		args = append(args, q.Status)
	}
	if q.After != nil {
		hc = 1
		args = append(args, s.timeArg(q.After.CreatedAt), q.After.ID)
	}
	args = append(args, limit+1) // one more tells whether a next page exists
	rows, err := db.QueryContext(ctx, pages[hs][hc], args...)
	if err != nil {
		return OrderPage{}, err
	}
	defer rows.Close()
	page := OrderPage{Orders: make([]Order, 0, min(limit, 32))}
	for rows.Next() {
		o, err := scanOrder(rows)
		if err != nil {
			return OrderPage{}, err
		}
		page.Orders = append(page.Orders, o)
	}
	if err := rows.Err(); err != nil {
		return OrderPage{}, err
	}
	if len(page.Orders) > limit {
		page.Orders = page.Orders[:limit]
		last := page.Orders[limit-1]
		page.NextCursor = Cursor{CreatedAt: last.CreatedAt, ID: last.ID}.Encode()
	}
	if len(page.Orders) == 0 && q.After == nil {
		if err := s.mustRestaurant(ctx, db, q.RestaurantID); err != nil {
			return OrderPage{}, err
		}
	}
	return page, nil
}

// NewOrder is an order to place.
type NewOrder struct {
	RestaurantID int64
	CustomerName string
	Items        []NewOrderItem
	// CustomerPhone is the E.164 number for the order's SMS
	// notifications; empty for none (stored as NULL). The caller validates.
	CustomerPhone string
	// Idem, when set, completes a claimed idempotency key with the
	// order's response in the order's transaction.
	Idem *IdemCompletion
	// InTx, when set, runs in the order's transaction once the order is
	// written (e.g. to enqueue its confirmation job); an error from it
	// rolls the order back.
	InTx TxHook
}

// TxHook runs inside a store transaction with the order as written in it;
// returning an error rolls the transaction back, so whatever the hook
// wrote exists if and only if the order's change commits.
type TxHook func(ctx context.Context, tx *sql.Tx, o Order) error

// NewOrderItem is one line of a NewOrder.
type NewOrderItem struct {
	MenuItemID int64
	Quantity   int
}

// CreateOrder places an order in one transaction: it prices the items from
// the menu, takes the stock of every item (refusing with a ConflictError
// when one is short or unavailable, and a NotFoundError for an unknown
// restaurant or an item not on its menu) and writes the order and its
// items. Nothing is written when it fails. Quantities must be positive (the
// caller validates). Every item is priced and checked before any stock is
// taken, in item id order: the first unknown or unavailable item is the
// error, even when another is out of stock. It costs 3 statements plus one
// per distinct item: the restaurant is checked by the menu query's join,
// and the order comes back from the inserts' RETURNING, not from a read
// after them.
func (s *Store) CreateOrder(ctx context.Context, in NewOrder) (Order, error) {
	// Merge repeated items and lock stock rows in id order so two orders
	// never deadlock on each other's rows.
	qty := map[int64]int{}
	for _, it := range in.Items {
		qty[it.MenuItemID] += it.Quantity
	}
	ids := make([]int64, 0, len(qty))
	for id := range qty {
		ids = append(ids, id)
	}
	slices.Sort(ids)

	var o Order
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		menu, err := s.menuForOrder(ctx, tx, in.RestaurantID, ids)
		if err != nil {
			return err
		}
		var total int64
		for _, id := range ids {
			m, ok := menu[id]
			if !ok {
				// Unknown restaurant, or an item not on its menu.
				if err := s.mustRestaurant(ctx, tx, in.RestaurantID); err != nil {
					return err
				}
				return &NotFoundError{What: "menu item", ID: id}
			}
			if !m.available {
				return &ConflictError{Reason: fmt.Sprintf("menu item %d (%s) is not available", id, m.name)}
			}
			total += m.price * int64(qty[id])
		}
		for _, id := range ids {
			res, err := tx.ExecContext(ctx, s.q.stockTake, qty[id], id, qty[id])
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil {
				return err
			} else if n == 0 {
				return s.shortOfStock(ctx, tx, id, menu[id].name, qty[id])
			}
		}
		o = Order{RestaurantID: in.RestaurantID, CustomerName: in.CustomerName, CustomerPhone: in.CustomerPhone, TotalCents: total}
		var created, updated dbTime
		phone := sql.NullString{String: in.CustomerPhone, Valid: in.CustomerPhone != ""}
		if err := tx.QueryRowContext(ctx, s.q.orderInsert, in.RestaurantID, in.CustomerName, total, phone).
			Scan(&o.ID, &o.Status, &created, &updated); err != nil {
			return err
		}
		o.CreatedAt, o.UpdatedAt = created.t, updated.t
		vals := make([]any, 0, 5*len(ids))
		for _, id := range ids {
			vals = append(vals, o.ID, id, menu[id].name, qty[id], menu[id].price)
		}
		// RETURNING's row order is not promised: sorted by item id below,
		// as Order returns them.
		o.Items, err = queryAll(ctx, tx, func(r *sql.Rows, it *OrderItem) error {
			if err := r.Scan(&it.ID, &it.MenuItemID); err != nil {
				return err
			}
			m := menu[it.MenuItemID]
			it.Name, it.Quantity, it.UnitPriceCents = m.name, qty[it.MenuItemID], m.price
			return nil
		}, rebind(s.d, s.q.orderItemsHead+valueRows(len(ids), 5)+" RETURNING id, menu_item_id"), vals...)
		if err != nil {
			return err
		}
		if len(o.Items) != len(ids) {
			return fmt.Errorf("store: order %d: %d items written, %d returned", o.ID, len(ids), len(o.Items))
		}
		slices.SortFunc(o.Items, func(a, b OrderItem) int { return cmp.Compare(a.ID, b.ID) })
		if in.InTx != nil {
			if err := in.InTx(ctx, tx, o); err != nil {
				return err
			}
		}
		if in.Idem != nil {
			return s.completeIdem(ctx, tx, in.Idem, o)
		}
		return nil
	})
	if err != nil {
		return Order{}, err
	}
	return o, nil
}

// shortOfStock is the ConflictError for an item with less stock than
// asked: it says how many are left (read in the order's transaction).
func (s *Store) shortOfStock(ctx context.Context, tx *sql.Tx, id int64, name string, asked int) error {
	var left int
	if err := tx.QueryRowContext(ctx, s.q.stockLeft, id).Scan(&left); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	if left == 0 {
		return &ConflictError{Reason: fmt.Sprintf("menu item %d (%s) is out of stock: %d asked, none left", id, name, asked)}
	}
	return &ConflictError{Reason: fmt.Sprintf("menu item %d (%s) is short of stock: %d asked, %d left", id, name, asked, left)}
}

// pricedItem is a menu item as an order prices it.
type pricedItem struct {
	name      string
	price     int64
	available bool
}

// menuForOrder returns the live items among ids on a live restaurant's menu.
func (s *Store) menuForOrder(ctx context.Context, tx *sql.Tx, restaurantID int64, ids []int64) (map[int64]pricedItem, error) {
	args := make([]any, 0, len(ids)+1)
	args = append(args, restaurantID)
	for _, id := range ids {
		args = append(args, id)
	}
	rows, err := tx.QueryContext(ctx, rebind(s.d, s.q.menuForOrder+placeholders(len(ids))+")"), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	menu := make(map[int64]pricedItem, len(ids))
	for rows.Next() {
		var id int64
		var m pricedItem
		if err := rows.Scan(&id, &m.name, &m.price, &m.available); err != nil {
			return nil, err
		}
		menu[id] = m
	}
	return menu, rows.Err()
}

// UpdateOrderStatus moves an order to status along the state machine
// (see CanTransition); any other move is a ConflictError naming the current
// status. Cancelling returns the order's items to stock in the same
// transaction, and since a cancelled order is final, stock comes back once.
// allow, when not nil, is called with the order's restaurant and current
// status while the row is locked (PostgreSQL: FOR UPDATE; SQLite: the
// immediate write transaction); an error from it aborts the change and is
// returned as it is, so authorization depends on the state it checked.
// idem, when not nil, completes a claimed idempotency key with the
// response in the same transaction. hooks run in the transaction after the
// change, with the order as changed (e.g. to enqueue a notification job);
// an error from one rolls the change back.
func (s *Store) UpdateOrderStatus(ctx context.Context, id int64, status string, allow func(restaurantID int64, current string) error, idem *IdemCompletion, hooks ...TxHook) (Order, error) {
	var o Order
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var rid int64
		var cur string
		err := tx.QueryRowContext(ctx, s.q.orderStatusGet, id).Scan(&rid, &cur)
		if errors.Is(err, sql.ErrNoRows) {
			return &NotFoundError{What: "order", ID: id}
		}
		if err != nil {
			return err
		}
		if allow != nil {
			if err := allow(rid, cur); err != nil {
				return err
			}
		}
		if !CanTransition(cur, status) {
			next := "none: it is final"
			if len(transitions[cur]) > 0 {
				next = strings.Join(transitions[cur], " or ")
			}
			return &ConflictError{Reason: fmt.Sprintf("order %d is %s and cannot become %s (allowed from %s: %s)", id, cur, status, cur, next)}
		}
		if _, err := tx.ExecContext(ctx, s.q.orderStatusSet, status, id); err != nil {
			return err
		}
		if status == StatusCancelled {
			if _, err := tx.ExecContext(ctx, s.q.stockRestore, id, id); err != nil {
				return err
			}
		}
		if o, err = s.order(ctx, tx, id); err != nil {
			return err
		}
		for _, h := range hooks {
			if err := h(ctx, tx, o); err != nil {
				return err
			}
		}
		if idem != nil {
			return s.completeIdem(ctx, tx, idem, o)
		}
		return nil
	})
	if err != nil {
		return Order{}, err
	}
	return o, nil
}

// valueRows returns "(?,?),(?,?)" for n rows of cols columns.
func valueRows(n, cols int) string {
	row := "(" + placeholders(cols) + ")"
	b := make([]byte, 0, n*(len(row)+1))
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, row...)
	}
	return string(b)
}
