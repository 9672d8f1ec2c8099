package store

import (
	"context"
	"database/sql"
)

// LowStock returns a restaurant's inventory items under their reorder
// point, emptiest first (idx_inventory_low_stock_active). Inventory changes
// with every order, so callers should not cache it.
func (s *Store) LowStock(ctx context.Context, restaurantID int64) ([]InventoryItem, error) {
	items, err := queryAll(ctx, s.db, func(r *sql.Rows, it *InventoryItem) error {
		return r.Scan(&it.ID, &it.MenuItemID, &it.Name, &it.CurrentQuantity, &it.ReorderPoint)
	}, s.q.lowStock, restaurantID)
	if err == nil && len(items) == 0 {
		err = s.mustRestaurant(ctx, s.db, restaurantID)
	}
	return items, err
}
