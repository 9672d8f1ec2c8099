package store

import "fmt"

// queries holds every statement, rebound for the dialect once.
type queries struct {
	restaurantExists string

	menu            string
	menuItemInsert  string
	inventoryInsert string
	menuItemUpdate  string
	menuItemOwner   string

	orderGet       string
	orderPage      [2][2]string // [hasStatus][hasCursor]
	orderPageBare  [2][2]string // the same pages without items (the N+1 baseline)
	orderItems     string       // one order's items (the N+1 baseline's "+1")
	orderExport    [2]string    // [hasCursor] ascending keyset pages of ExportOrders
	menuForOrder   string       // prefix; "(?,…))" appended per call
	stockTake      string
	stockLeft      string
	orderInsert    string
	orderItemsHead string
	orderStatusGet string
	orderStatusSet string
	stockRestore   string

	lowStock string

	userByEmail string

	idemExpire   string
	idemInsert   string
	idemGet      string
	idemTakeOver string
	idemRelease  string
	idemComplete string
}

func buildQueries(d Dialect) queries {
	now := "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
	// The items come from a subquery in id order rather than through the
	// aggregate's own ORDER BY, which sorts every order's items in a
	// temporary b-tree even though idx_order_items_order already yields
	// them by (order_id, rowid = id). SQLite's documentation leaves an
	// aggregate's input order unspecified without that ORDER BY; SQLite
	// does not flatten an ordered subquery into an aggregate query and
	// keeps its ORDER BY, which TestOrderItemsInIDOrderWhateverTheIndex
	// checks where the index would yield them in another order.
	items := `(SELECT json_group_array(json_object('id', oi.id, 'menu_item_id', oi.menu_item_id, 'name', oi.name,
		'quantity', oi.quantity, 'unit_price_cents', oi.unit_price_cents))
		FROM (SELECT id, menu_item_id, name, quantity, unit_price_cents FROM order_items
			WHERE order_id = o.id ORDER BY id) oi)`
	forUpdate := ""
	if d == Postgres {
		now = "now()"
		items = `COALESCE((SELECT json_agg(json_build_object('id', oi.id, 'menu_item_id', oi.menu_item_id, 'name', oi.name,
		'quantity', oi.quantity, 'unit_price_cents', oi.unit_price_cents) ORDER BY oi.id)
		FROM order_items oi WHERE oi.order_id = o.id), '[]'::json)`
		forUpdate = " FOR UPDATE"
	}
	orderCols := "o.id, o.restaurant_id, o.customer_name, o.status, o.total_cents, o.created_at, o.updated_at, " + items + ", o.customer_phone"
	bareCols := "o.id, o.restaurant_id, o.customer_name, o.status, o.total_cents, o.created_at, o.updated_at, NULL, o.customer_phone"
	q := queries{
		restaurantExists: "SELECT 1 FROM restaurants WHERE id = ? AND deleted_at IS NULL",
		menu: `SELECT id, restaurant_id, name, description, price_cents, is_available FROM menu_items
			WHERE restaurant_id = ? AND is_available AND deleted_at IS NULL ORDER BY name, price_cents`,
		menuItemInsert: `INSERT INTO menu_items (restaurant_id, name, description, price_cents, is_available)
			VALUES (?, ?, ?, ?, ?) RETURNING id`,
		inventoryInsert: `INSERT INTO inventory_items (restaurant_id, menu_item_id, name, current_quantity, reorder_point)
			VALUES (?, ?, ?, ?, ?)`,
		menuItemUpdate: `UPDATE menu_items SET price_cents = COALESCE(?, price_cents), is_available = COALESCE(?, is_available),
			updated_at = ` + now + ` WHERE id = ? AND deleted_at IS NULL
			RETURNING id, restaurant_id, name, description, price_cents, is_available`,
		menuItemOwner: "SELECT restaurant_id FROM menu_items WHERE id = ? AND deleted_at IS NULL",
		orderGet:      "SELECT " + orderCols + " FROM orders o WHERE o.id = ? AND o.deleted_at IS NULL",
		menuForOrder: `SELECT m.id, m.name, m.price_cents, m.is_available FROM menu_items m
			JOIN restaurants r ON r.id = m.restaurant_id AND r.deleted_at IS NULL
			WHERE m.restaurant_id = ? AND m.deleted_at IS NULL AND m.id IN (`,
		stockTake: `UPDATE inventory_items SET current_quantity = current_quantity - ?, updated_at = ` + now + `
			WHERE menu_item_id = ? AND deleted_at IS NULL AND current_quantity >= ?`,
		stockLeft: "SELECT current_quantity FROM inventory_items WHERE menu_item_id = ? AND deleted_at IS NULL",
		orderInsert: `INSERT INTO orders (restaurant_id, customer_name, status, total_cents, customer_phone)
			VALUES (?, ?, 'pending', ?, ?) RETURNING id, status, created_at, updated_at`,
		orderItemsHead: "INSERT INTO order_items (order_id, menu_item_id, name, quantity, unit_price_cents) VALUES ",
		orderStatusGet: "SELECT restaurant_id, status FROM orders WHERE id = ? AND deleted_at IS NULL" + forUpdate,
		orderStatusSet: "UPDATE orders SET status = ?, updated_at = " + now + " WHERE id = ?",
		stockRestore: `UPDATE inventory_items SET current_quantity = current_quantity +
			(SELECT SUM(oi.quantity) FROM order_items oi WHERE oi.order_id = ? AND oi.menu_item_id = inventory_items.menu_item_id),
			updated_at = ` + now + `
			WHERE menu_item_id IN (SELECT menu_item_id FROM order_items WHERE order_id = ?)`,
		orderItems: "SELECT id, menu_item_id, name, quantity, unit_price_cents FROM order_items WHERE order_id = ? ORDER BY id",
		lowStock: `SELECT id, menu_item_id, name, current_quantity, reorder_point FROM inventory_items
			WHERE restaurant_id = ? AND deleted_at IS NULL AND current_quantity < reorder_point
			ORDER BY current_quantity, id`,
		userByEmail: "SELECT id, email, name, role, password_hash, restaurant_id FROM users WHERE email = ? AND deleted_at IS NULL",
	}
	q.idemExpire = "DELETE FROM idempotency_keys WHERE scope = ? AND idem_key = ? AND created_at < ?"
	q.idemInsert = `INSERT INTO idempotency_keys (scope, idem_key, request_hash, owner, locked_until, status, created_at)
		VALUES (?, ?, ?, ?, ?, 0, ?) ON CONFLICT (scope, idem_key) DO NOTHING`
	q.idemGet = "SELECT request_hash, status, body, locked_until FROM idempotency_keys WHERE scope = ? AND idem_key = ?"
	q.idemTakeOver = `UPDATE idempotency_keys SET owner = ?, locked_until = ?
		WHERE scope = ? AND idem_key = ? AND status = 0 AND locked_until <= ?`
	q.idemRelease = "DELETE FROM idempotency_keys WHERE scope = ? AND idem_key = ? AND owner = ? AND status = 0"
	q.idemComplete = `UPDATE idempotency_keys SET status = ?, body = ?, owner = NULL, locked_until = NULL
		WHERE scope = ? AND idem_key = ? AND owner = ? AND status = 0`
	for hs := range 2 {
		for hc := range 2 {
			where := "o.restaurant_id = ? AND o.deleted_at IS NULL"
			if hs == 1 {
				where += " AND o.status = ?"
			}
			if hc == 1 {
				where += " AND (o.created_at, o.id) < (?, ?)"
			}
			q.orderPage[hs][hc] = fmt.Sprintf("SELECT %s FROM orders o WHERE %s ORDER BY o.created_at DESC, o.id DESC LIMIT ?", orderCols, where)
			q.orderPageBare[hs][hc] = fmt.Sprintf("SELECT %s FROM orders o WHERE %s ORDER BY o.created_at DESC, o.id DESC LIMIT ?", bareCols, where)
		}
	}
	// The comment names the statement in pg_stat_activity.
	exportHead := "SELECT /* servio:orders-export */ " + orderCols + " FROM orders o WHERE o.restaurant_id = ? AND o.deleted_at IS NULL AND "
	exportTail := " AND o.created_at < ? ORDER BY o.created_at, o.id LIMIT ?"
	q.orderExport[0] = exportHead + "o.created_at >= ?" + exportTail
	q.orderExport[1] = exportHead + "(o.created_at, o.id) > (?, ?)" + exportTail
	for _, p := range []*string{&q.orderExport[0], &q.orderExport[1], &q.restaurantExists, &q.menu, &q.menuItemInsert, &q.inventoryInsert, &q.menuItemUpdate, &q.menuItemOwner,
		&q.orderGet, &q.orderPage[0][0], &q.orderPage[0][1], &q.orderPage[1][0], &q.orderPage[1][1],
		&q.orderPageBare[0][0], &q.orderPageBare[0][1], &q.orderPageBare[1][0], &q.orderPageBare[1][1], &q.orderItems,
		&q.stockTake, &q.stockLeft, &q.orderInsert, &q.orderStatusGet, &q.orderStatusSet, &q.stockRestore, &q.lowStock, &q.userByEmail,
		&q.idemExpire, &q.idemInsert, &q.idemGet, &q.idemTakeOver, &q.idemRelease, &q.idemComplete} {
		*p = rebind(d, *p)
	}
	return q
}
