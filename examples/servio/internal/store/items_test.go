package store

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// itemSeeds are items as SQLite and PostgreSQL aggregate them, and inputs
// the direct reader must hand to encoding/json.
var itemSeeds = []string{
	`[]`,
	`[{"id":1,"menu_item_id":2,"name":"Pad Thai","quantity":3,"unit_price_cents":1299}]`,
	`[{"id":1,"menu_item_id":2,"name":"a","quantity":1,"unit_price_cents":0},{"id":2,"menu_item_id":9,"name":"b","quantity":2,"unit_price_cents":5}]`,
	"[{\"id\" : 1, \"menu_item_id\" : 2, \"name\" : \"Crème brûlée\", \"quantity\" : 1, \"unit_price_cents\" : 850}, \n {\"id\" : 7, \"menu_item_id\" : 3, \"name\" : \"x\", \"quantity\" : 4, \"unit_price_cents\" : 1}]",
	`[{"id":1,"name":"say \"hi\" \\ \u00e9 \ud83c\udf55","quantity":1}]`,
	`[{"ID":1}]`,
	`[{"id":1.0}]`,
	`[{"id":1e2}]`,
	`[{"id":01}]`,
	`[{"id":-0,"quantity":-3}]`,
	`[{"id":99999999999999999999}]`,
	`[{"name":null}]`,
	`[{"extra":[1,{"a":2}],"id":5}]`,
	`[{},{}]`,
	`[{"id":1,}]`,
	`[{"id":1}],`,
	`null`,
	`[{"name":"` + "\xff" + `"}]`,
	`[{"name":"tab	here"}]`,
	`[{"id":1,"id":2}]`,
	` [ { "id" : 1 } ] `,
}

// FuzzDecodeItems: decodeItems gives json.Unmarshal's result and error for
// every input, and whenever the direct reader accepts an input, that input
// is JSON encoding/json decodes to the same items.
func FuzzDecodeItems(f *testing.F) {
	for _, s := range itemSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		want := []OrderItem{}
		werr := json.Unmarshal(b, &want)
		if fast, ok := fastItems(b); ok {
			require.NoError(t, werr, "the direct reader accepted what encoding/json refuses: %q", b)
			require.Equal(t, want, fast, "%q", b)
		}
		got, err := decodeItems(b)
		if werr != nil {
			require.Error(t, err, "%q", b)
			return
		}
		require.NoError(t, err, "%q", b)
		require.Equal(t, want, got, "%q", b)
	})
}

// TestDecodeItemsReadsWhatTheDatabasesWrite: the direct reader, not the
// fallback, reads the items both databases aggregate, names with quotes,
// backslashes, accents and emoji included, and they match what was
// ordered.
func TestDecodeItemsReadsWhatTheDatabasesWrite(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, ctx context.Context, s *Store) {
		require.NoError(t, s.Seed(ctx, SeedOptions{Restaurants: 1, Items: 1, Orders: 1}))
		var rid int64
		require.NoError(t, s.db.QueryRowContext(ctx, "SELECT id FROM restaurants").Scan(&rid))
		names := []string{`say "hi"`, `back\slash`, "Crème brûlée", "🍕 slice", "tab\there", "</script>&"}
		var in []NewOrderItem
		for i, n := range names {
			m, err := s.AddMenuItem(ctx, NewMenuItem{RestaurantID: rid, Name: n, PriceCents: int64(100 + i), IsAvailable: true, Stock: 10})
			require.NoError(t, err)
			in = append(in, NewOrderItem{MenuItemID: m.ID, Quantity: i + 1})
		}
		placed, err := s.CreateOrder(ctx, NewOrder{RestaurantID: rid, CustomerName: "q", Items: in})
		require.NoError(t, err)
		rawItems := func(id int64) []byte {
			t.Helper()
			var o Order
			var created, updated dbTime
			var raw []byte
			var phone any
			require.NoError(t, s.db.QueryRowContext(ctx, s.q.orderGet, id).Scan(&o.ID, &o.RestaurantID, &o.CustomerName,
				&o.Status, &o.TotalCents, &created, &updated, &raw, &phone))
			return raw
		}
		var seeded int64
		require.NoError(t, s.db.QueryRowContext(ctx, "SELECT MIN(id) FROM orders").Scan(&seeded))
		_, ok := fastItems(rawItems(seeded))
		assert.True(t, ok, "the direct reader reads %s's items: %s", s.d, rawItems(seeded))
		raw := rawItems(placed.ID)
		got, err := s.Order(ctx, placed.ID)
		require.NoError(t, err)
		require.Len(t, got.Items, len(names))
		for i, it := range got.Items {
			assert.Equal(t, names[i], it.Name)
			assert.Equal(t, i+1, it.Quantity)
			assert.Equal(t, int64(100+i), it.UnitPriceCents)
		}
		assert.Equal(t, placed.Items, got.Items)
		want := []OrderItem{}
		require.NoError(t, json.Unmarshal(raw, &want))
		assert.Equal(t, want, got.Items)
	})
}

// TestOrderItemsInIDOrderWhateverTheIndex: on SQLite the items reach the
// aggregate from a subquery ordered by id, not through the aggregate's own
// ORDER BY. With the order_id index replaced by one that yields an order's
// items by quantity, descending (a control shows it does), single orders
// and order pages still list their items in id order.
func TestOrderItemsInIDOrderWhateverTheIndex(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t, SQLite)
	require.NoError(t, s.Seed(ctx, SeedOptions{Restaurants: 1, Items: 5, Orders: 1}))
	var rid int64
	require.NoError(t, s.db.QueryRowContext(ctx, "SELECT id FROM restaurants").Scan(&rid))
	var menu []int64
	rows, err := s.db.QueryContext(ctx, "SELECT id FROM menu_items WHERE restaurant_id = ? ORDER BY id", rid)
	require.NoError(t, err)
	for rows.Next() {
		var id int64
		require.NoError(t, rows.Scan(&id))
		menu = append(menu, id)
	}
	require.NoError(t, rows.Err())
	require.NoError(t, rows.Close())
	var in []NewOrderItem
	for i, id := range menu {
		in = append(in, NewOrderItem{MenuItemID: id, Quantity: i + 1}) // quantity rises with the item's id
	}
	var placed []Order
	for range 3 {
		o, err := s.CreateOrder(ctx, NewOrder{RestaurantID: rid, CustomerName: "q", Items: in})
		require.NoError(t, err)
		placed = append(placed, o)
	}
	_, err = s.db.ExecContext(ctx, "DROP INDEX idx_order_items_order; CREATE INDEX test_items_by_quantity ON order_items (order_id, quantity DESC)")
	require.NoError(t, err)

	// Control: without an ORDER BY the index's order shows.
	var firstUnordered int64
	require.NoError(t, s.db.QueryRowContext(ctx, "SELECT id FROM order_items WHERE order_id = ? LIMIT 1", placed[0].ID).Scan(&firstUnordered))
	require.Equal(t, placed[0].Items[len(placed[0].Items)-1].ID, firstUnordered, "the index yields the highest quantity, the last id, first")
	plan := queryPlan(t, s.db.(*sql.DB), "EXPLAIN QUERY PLAN "+s.q.orderGet, placed[0].ID)
	require.Contains(t, plan, "test_items_by_quantity", plan)

	inIDOrder := func(items []OrderItem) {
		t.Helper()
		assert.True(t, slices.IsSortedFunc(items, func(a, b OrderItem) int { return cmp.Compare(a.ID, b.ID) }), "%+v", items)
	}
	for _, o := range placed {
		got, err := s.Order(ctx, o.ID)
		require.NoError(t, err)
		require.Len(t, got.Items, len(menu))
		inIDOrder(got.Items)
		assert.Equal(t, o.Items, got.Items)
	}
	page, err := s.Orders(ctx, OrdersQuery{RestaurantID: rid, Limit: 10})
	require.NoError(t, err)
	require.Len(t, page.Orders, len(placed)+1)
	for _, o := range page.Orders {
		inIDOrder(o.Items)
	}
}
