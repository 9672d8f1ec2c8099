package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"strconv"
	"time"

	"github.com/servio/perfkit/cache"
	"github.com/servio/perfkit/examples/servio/internal/store"
	"github.com/servio/perfkit/metrics"
)

// Cache TTLs (L2; L1 keeps entries at most cache.Config.L1TTL, 60 s).
// Menus change rarely; single orders change with their status (every change
// invalidates them); order lists and inventory change with every order and
// are not cached at all — the original service's rule "don't cache rapidly changing data".
const (
	menuTTL      = 5 * time.Minute
	orderTTL     = time.Minute
	assistantTTL = time.Hour
)

func menuKey(restaurantID int64) string { return "menu:" + strconv.FormatInt(restaurantID, 10) }
func orderKey(orderID int64) string     { return "order:" + strconv.FormatInt(orderID, 10) }

// service is servio's business layer: the store's repositories wrapped with
// perfkit where the original service put its decorators — metrics.Track on every method
// (@Track), cache.Cacheable on menus and single orders (@Cacheable).
// Cached methods return the encoded JSON response (a menu with its ETag:
// menuDoc), which is what the cache holds, so a hit costs neither a query
// nor an encode.
type service struct {
	st    *store.Store
	cache *cache.Cache
	log   *slog.Logger

	Menu        func(ctx context.Context, restaurantID int64) (menuDoc, error)
	AddMenuItem func(ctx context.Context, in store.NewMenuItem) (store.MenuItem, error)
	PatchMenu   func(ctx context.Context, in menuPatch) (store.MenuItem, error)
	Order       func(ctx context.Context, id int64) ([]byte, error)
	Orders      func(ctx context.Context, q store.OrdersQuery) (store.OrderPage, error)
	CreateOrder func(ctx context.Context, in store.NewOrder) (store.Order, error)
	PatchOrder  func(ctx context.Context, in orderPatch) (store.Order, error)
	LowStock    func(ctx context.Context, restaurantID int64) ([]store.InventoryItem, error)
}

type menuPatch struct {
	ID    int64
	Patch store.MenuItemPatch
}

type orderPatch struct {
	ID     int64
	Status string
	// Allow authorizes the change with the order's row locked (see
	// store.UpdateOrderStatus).
	Allow func(restaurantID int64, current string) error
	// Idem completes a claimed idempotency key in the same transaction.
	Idem *store.IdemCompletion
	// Hooks run in the change's transaction (e.g. to enqueue a job).
	Hooks []store.TxHook
}

type menuResponse struct {
	RestaurantID int64            `json:"restaurant_id"`
	Items        []store.MenuItem `json:"items"`
}

// newService wires the methods; with baseline the reads are not cached and
// order pages load their items one query per order (the original service's "before").
func newService(st *store.Store, c *cache.Cache, tr *metrics.Tracker, log *slog.Logger, baseline bool) *service {
	s := &service{st: st, cache: c, log: log}
	menu, order := cache.Cacheable(c, menuKey, menuTTL, s.loadMenu), cache.Cacheable(c, orderKey, orderTTL, s.loadOrder)
	orders := st.Orders
	if baseline {
		menu, order, orders = s.loadMenu, s.loadOrder, st.OrdersNPlusOne
	}
	s.Menu = metrics.TrackWith1(tr, "menu.get", menu)
	s.AddMenuItem = metrics.TrackWith1(tr, "menu.add_item", s.addMenuItem)
	s.PatchMenu = metrics.TrackWith1(tr, "menu.update_item", s.patchMenu)
	s.Order = metrics.TrackWith1(tr, "order.get", order)
	s.Orders = metrics.TrackWith1(tr, "order.list", orders)
	// Placing an order invalidates nothing: it changes stock, which no
	// cached value holds (menus list availability, not stock), and orders
	// quote names and prices as placed, so no cached order changes either.
	s.CreateOrder = metrics.TrackWith1(tr, "order.create", st.CreateOrder)
	s.PatchOrder = metrics.TrackWith1(tr, "order.update_status", s.patchOrder)
	s.LowStock = metrics.TrackWith1(tr, "inventory.low_stock", st.LowStock)
	return s
}

func (s *service) loadMenu(ctx context.Context, rid int64) (menuDoc, error) {
	items, err := s.st.Menu(ctx, rid)
	if err != nil {
		return menuDoc{}, err
	}
	b, err := json.Marshal(menuResponse{RestaurantID: rid, Items: items})
	if err != nil {
		return menuDoc{}, err
	}
	return newMenuDoc(b), nil
}

func (s *service) loadOrder(ctx context.Context, id int64) ([]byte, error) {
	o, err := s.st.Order(ctx, id)
	if err != nil {
		return nil, err
	}
	return json.Marshal(o)
}

func (s *service) addMenuItem(ctx context.Context, in store.NewMenuItem) (store.MenuItem, error) {
	m, err := s.st.AddMenuItem(ctx, in)
	if err == nil {
		s.invalidate(ctx, menuKey(in.RestaurantID))
	}
	return m, err
}

func (s *service) patchMenu(ctx context.Context, in menuPatch) (store.MenuItem, error) {
	m, err := s.st.UpdateMenuItem(ctx, in.ID, in.Patch)
	if err == nil {
		s.invalidate(ctx, menuKey(m.RestaurantID))
	}
	return m, err
}

func (s *service) patchOrder(ctx context.Context, in orderPatch) (store.Order, error) {
	o, err := s.st.UpdateOrderStatus(ctx, in.ID, in.Status, in.Allow, in.Idem, in.Hooks...)
	if err == nil {
		s.invalidate(ctx, orderKey(in.ID))
	}
	return o, err
}

// invalidate drops keys after a committed write, here and (through Redis
// pub/sub) on every other instance. A failure is logged, not returned: the
// write stands, L1 is cleared anyway, and the cache replays the rest once
// Redis answers.
func (s *service) invalidate(ctx context.Context, keys ...string) {
	if err := s.cache.Delete(context.WithoutCancel(ctx), keys...); err != nil {
		s.log.WarnContext(ctx, "cache invalidation failed", "keys", keys, "err", err)
	}
}
