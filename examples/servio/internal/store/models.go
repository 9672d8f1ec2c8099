package store

import "time"

// Order statuses.
const (
	StatusPending   = "pending"
	StatusPreparing = "preparing"
	StatusReady     = "ready"
	StatusCompleted = "completed"
	StatusCancelled = "cancelled"
)

// transitions lists the statuses each status may move to: the kitchen's
// pending → preparing → ready → completed, and cancelled from pending or
// preparing. Completed and cancelled are final.
var transitions = map[string][]string{
	StatusPending:   {StatusPreparing, StatusCancelled},
	StatusPreparing: {StatusReady, StatusCancelled},
	StatusReady:     {StatusCompleted},
}

// CanTransition reports whether an order may move from status from to
// status to.
func CanTransition(from, to string) bool {
	for _, s := range transitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// ValidStatus reports whether s is an order status.
func ValidStatus(s string) bool {
	switch s {
	case StatusPending, StatusPreparing, StatusReady, StatusCompleted, StatusCancelled:
		return true
	}
	return false
}

// MenuItem is one dish of a restaurant's menu. Prices are integer cents.
type MenuItem struct {
	ID           int64  `json:"id"`
	RestaurantID int64  `json:"restaurant_id"`
	Name         string `json:"name"`
	Description  string `json:"description"`
	PriceCents   int64  `json:"price_cents"`
	IsAvailable  bool   `json:"is_available"`
}

// OrderItem is one line of an order, priced when the order was placed.
type OrderItem struct {
	ID             int64  `json:"id"`
	MenuItemID     int64  `json:"menu_item_id"`
	Name           string `json:"name"`
	Quantity       int    `json:"quantity"`
	UnitPriceCents int64  `json:"unit_price_cents"`
}

// Order is an order with its items.
type Order struct {
	ID           int64  `json:"id"`
	RestaurantID int64  `json:"restaurant_id"`
	CustomerName string `json:"customer_name"`
	// CustomerPhone is where the order's SMS notifications go (E.164);
	// omitted when the guest gave none.
	CustomerPhone string      `json:"customer_phone,omitempty"`
	Status        string      `json:"status"`
	TotalCents    int64       `json:"total_cents"`
	CreatedAt     time.Time   `json:"created_at"`
	UpdatedAt     time.Time   `json:"updated_at"`
	Items         []OrderItem `json:"items"`
}

// OrderPage is one keyset page of a restaurant's orders, newest first.
// NextCursor is empty on the last page.
type OrderPage struct {
	Orders     []Order `json:"orders"`
	NextCursor string  `json:"next_cursor,omitempty"`
}

// InventoryItem is the stock of one menu item.
type InventoryItem struct {
	ID              int64  `json:"id"`
	MenuItemID      int64  `json:"menu_item_id"`
	Name            string `json:"name"`
	CurrentQuantity int    `json:"current_quantity"`
	ReorderPoint    int    `json:"reorder_point"`
}

// User roles. An admin works for every restaurant with a manager's
// rights; a manager or staff member works for RestaurantID only.
const (
	RoleAdmin   = "admin"
	RoleManager = "manager"
	RoleStaff   = "staff"
)

// User is a staff account that can log in.
type User struct {
	ID    int64  `json:"id"`
	Email string `json:"email"`
	Name  string `json:"name"`
	Role  string `json:"role"`
	// RestaurantID is the restaurant a manager or staff member works for;
	// 0 for an admin (and for a user no restaurant was given: it reaches none).
	RestaurantID int64  `json:"restaurant_id,omitempty"`
	PasswordHash string `json:"-"`
}
