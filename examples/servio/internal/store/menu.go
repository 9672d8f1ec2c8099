package store

import (
	"context"
	"database/sql"
	"errors"
)

// Menu returns the available menu items of a restaurant ordered by name and
// price (one query on idx_menu_items_active; a second only when the menu is
// empty, to tell an empty menu from an unknown restaurant).
func (s *Store) Menu(ctx context.Context, restaurantID int64) (items []MenuItem, err error) {
	ctx = s.latest(ctx) // a cache fill: it must see every committed edit
	err = s.read(ctx, func(db Conn) error {
		items, err = queryAll(ctx, db, func(r *sql.Rows, m *MenuItem) error {
			return r.Scan(&m.ID, &m.RestaurantID, &m.Name, &m.Description, &m.PriceCents, &m.IsAvailable)
		}, s.q.menu, restaurantID)
		if err == nil && len(items) == 0 {
			err = s.mustRestaurant(ctx, db, restaurantID)
		}
		return err
	})
	return items, err
}

// mustRestaurant returns a NotFoundError unless a live restaurant has id.
func (s *Store) mustRestaurant(ctx context.Context, q queryer, id int64) error {
	ok, err := exists(ctx, q, s.q.restaurantExists, id)
	if err == nil && !ok {
		err = &NotFoundError{What: "restaurant", ID: id}
	}
	return err
}

// NewMenuItem is a dish to add; Stock and ReorderPoint seed its inventory row.
type NewMenuItem struct {
	RestaurantID int64
	Name         string
	Description  string
	PriceCents   int64
	IsAvailable  bool
	Stock        int
	ReorderPoint int
}

// AddMenuItem inserts a menu item and its inventory row in one transaction.
func (s *Store) AddMenuItem(ctx context.Context, in NewMenuItem) (MenuItem, error) {
	m := MenuItem{RestaurantID: in.RestaurantID, Name: in.Name, Description: in.Description,
		PriceCents: in.PriceCents, IsAvailable: in.IsAvailable}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if err := s.mustRestaurant(ctx, tx, in.RestaurantID); err != nil {
			return err
		}
		if err := tx.QueryRowContext(ctx, s.q.menuItemInsert, in.RestaurantID, in.Name, in.Description,
			in.PriceCents, in.IsAvailable).Scan(&m.ID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, s.q.inventoryInsert, in.RestaurantID, m.ID, in.Name, in.Stock, in.ReorderPoint)
		return err
	})
	return m, err
}

// MenuItemPatch changes a menu item; nil fields are left as they are.
type MenuItemPatch struct {
	PriceCents  *int64
	IsAvailable *bool
}

// UpdateMenuItem applies p to menu item id and returns the item as stored.
func (s *Store) UpdateMenuItem(ctx context.Context, id int64, p MenuItemPatch) (MenuItem, error) {
	var price, avail any
	if p.PriceCents != nil {
		price = *p.PriceCents
	}
	if p.IsAvailable != nil {
		avail = *p.IsAvailable
	}
	var m MenuItem
	err := s.db.QueryRowContext(ctx, s.q.menuItemUpdate, price, avail, id).
		Scan(&m.ID, &m.RestaurantID, &m.Name, &m.Description, &m.PriceCents, &m.IsAvailable)
	if errors.Is(err, sql.ErrNoRows) {
		return m, &NotFoundError{What: "menu item", ID: id}
	}
	if err == nil {
		s.wrote(ctx)
	}
	return m, err
}

// MenuItemRestaurant returns the restaurant a live menu item belongs to, so
// a caller can authorize a change before making it.
func (s *Store) MenuItemRestaurant(ctx context.Context, id int64) (int64, error) {
	var rid int64
	err := s.db.QueryRowContext(ctx, s.q.menuItemOwner, id).Scan(&rid)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, &NotFoundError{What: "menu item", ID: id}
	}
	return rid, err
}
