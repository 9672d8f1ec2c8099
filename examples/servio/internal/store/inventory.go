package store

import (
	"context"
	"database/sql"
)

// LowStock returns a restaurant's inventory items under their reorder
// point, emptiest first (idx_inventory_low_stock_active). Inventory changes
// with every order, so callers should not cache it.
func (s *Store) LowStock(ctx context.Context, restaurantID int64) (items []InventoryItem, err error) {
	err = s.read(ctx, func(db Conn) error {
		items, err = queryAll(ctx, db, func(r *sql.Rows, it *InventoryItem) error {
			return r.Scan(&it.ID, &it.MenuItemID, &it.Name, &it.CurrentQuantity, &it.ReorderPoint)
		}, s.q.lowStock, restaurantID)
		if err == nil && len(items) == 0 {
			err = s.mustRestaurant(ctx, db, restaurantID)
		}
		return err
	})
	return items, err
}
