package store

import "context"

// LowStock returns a restaurant's inventory items under their reorder
// point, emptiest first (idx_inventory_low_stock_active). Inventory changes
// with every order, so callers should not cache it.
func (s *Store) LowStock(ctx context.Context, restaurantID int64) ([]InventoryItem, error) {
	rows, err := s.db.QueryContext(ctx, s.q.lowStock, restaurantID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	items := []InventoryItem{}
	for rows.Next() {
		var it InventoryItem
		if err := rows.Scan(&it.ID, &it.MenuItemID, &it.Name, &it.CurrentQuantity, &it.ReorderPoint); err != nil {
			return nil, err
		}
		items = append(items, it)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(items) == 0 {
		if err := s.mustRestaurant(ctx, restaurantID); err != nil {
			return nil, err
		}
	}
	return items, nil
}
