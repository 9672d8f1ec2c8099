package store

import (
	"context"
	"encoding/json"
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
