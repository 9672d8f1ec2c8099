package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"strconv"
	"time"

	"github.com/servio/perfkit/examples/servio/internal/store"
)

// Cache TTLs. Menus change rarely; single orders change with their status
// (every change invalidates them); order lists and inventory change with
// every order and are not cached at all.
const (
	menuTTL      = 5 * time.Minute
	orderTTL     = time.Minute
	assistantTTL = time.Hour
)

func menuKey(restaurantID int64) string { return "menu:" + strconv.FormatInt(restaurantID, 10) }
func orderKey(orderID int64) string     { return "order:" + strconv.FormatInt(orderID, 10) }

// service is servio's business layer: the store's repositories with caching
// and metrics where the seed put its decorators. Methods returning []byte
// return the encoded JSON response, which is what the cache holds, so a hit
// costs neither a query nor an encode.
type service struct {
	st    *store.Store
	cache responseCache
	log   *slog.Logger

	Menu        func(ctx context.Context, restaurantID int64) ([]byte, error)
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
}

type menuResponse struct {
	RestaurantID int64            `json:"restaurant_id"`
	Items        []store.MenuItem `json:"items"`
}

func newService(st *store.Store, c responseCache, tr tracker, log *slog.Logger) *service {
	s := &service{st: st, cache: c, log: log}
	s.Menu = tracked(tr, "menu.get", s.menu)
	s.AddMenuItem = tracked(tr, "menu.add_item", s.addMenuItem)
	s.PatchMenu = tracked(tr, "menu.update_item", s.patchMenu)
	s.Order = tracked(tr, "order.get", s.order)
	s.Orders = tracked(tr, "order.list", st.Orders)
	s.CreateOrder = tracked(tr, "order.create", s.createOrder)
	s.PatchOrder = tracked(tr, "order.update_status", s.patchOrder)
	s.LowStock = tracked(tr, "inventory.low_stock", st.LowStock)
	return s
}

func (s *service) menu(ctx context.Context, rid int64) ([]byte, error) {
	return s.cache.GetOrLoad(ctx, menuKey(rid), menuTTL, func(ctx context.Context) ([]byte, error) {
		items, err := s.st.Menu(ctx, rid)
		if err != nil {
			return nil, err
		}
		return json.Marshal(menuResponse{RestaurantID: rid, Items: items})
	})
}

func (s *service) order(ctx context.Context, id int64) ([]byte, error) {
	return s.cache.GetOrLoad(ctx, orderKey(id), orderTTL, func(ctx context.Context) ([]byte, error) {
		o, err := s.st.Order(ctx, id)
		if err != nil {
			return nil, err
		}
		return json.Marshal(o)
	})
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

func (s *service) createOrder(ctx context.Context, in store.NewOrder) (store.Order, error) {
	return s.st.CreateOrder(ctx, in)
}

func (s *service) patchOrder(ctx context.Context, in orderPatch) (store.Order, error) {
	o, err := s.st.UpdateOrderStatus(ctx, in.ID, in.Status)
	if err == nil {
		s.invalidate(ctx, orderKey(in.ID))
	}
	return o, err
}

// invalidate drops keys after a committed write. A failure is logged, not
// returned: the write stands, and the entry expires with its TTL.
func (s *service) invalidate(ctx context.Context, keys ...string) {
	if err := s.cache.Delete(context.WithoutCancel(ctx), keys...); err != nil {
		s.log.WarnContext(ctx, "cache invalidation failed", "keys", keys, "err", err)
	}
}

// tracker is the metrics seam: it starts an observation of a named
// operation and returns the func that ends it (perfkit/metrics.Track when
// wired). nil records nothing.
type tracker func(ctx context.Context, name string) (context.Context, func(err error))

// tracked wraps fn so every call is observed by tr under name.
func tracked[A, T any](tr tracker, name string, fn func(context.Context, A) (T, error)) func(context.Context, A) (T, error) {
	if tr == nil {
		return fn
	}
	return func(ctx context.Context, a A) (T, error) {
		ctx, done := tr(ctx, name)
		v, err := fn(ctx, a)
		done(err)
		return v, err
	}
}
