package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/servio/perfkit/examples/servio/internal/store"
)

// Input bounds. Keeping quantities and prices small keeps every total far
// from int64 overflow (50 lines × 1,000 × 100,000,000 cents < 2^63).
const (
	maxNameLen     = 200
	maxDescLen     = 2000
	maxPriceCents  = 100_000_000 // $1,000,000.00
	maxQuantity    = 1000
	maxOrderLines  = 50
	maxStock       = 1_000_000
	defaultStock   = 100
	defaultReorder = 10
)

func (a *App) getMenu(w http.ResponseWriter, r *http.Request) {
	rid, err := pathID(r, "id")
	if err != nil {
		a.fail(w, r, err)
		return
	}
	menu, err := a.svc.Menu(r.Context(), rid)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	serveMenu(w, r, menu) // ETag, Cache-Control, 304 (menucache_http.go)
}

type addMenuItemRequest struct {
	Name         string `json:"name"`
	Description  string `json:"description"`
	PriceCents   *int64 `json:"price_cents"`
	IsAvailable  *bool  `json:"is_available"`
	Stock        *int   `json:"stock"`
	ReorderPoint *int   `json:"reorder_point"`
}

func (a *App) addMenuItem(w http.ResponseWriter, r *http.Request) {
	rid, err := pathID(r, "id")
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if err := a.authManager(r, rid); err != nil {
		a.fail(w, r, err)
		return
	}
	var req addMenuItemRequest
	if err := decodeJSON(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	in := store.NewMenuItem{RestaurantID: rid, Name: strings.TrimSpace(req.Name), Description: req.Description,
		IsAvailable: true, Stock: defaultStock, ReorderPoint: defaultReorder}
	switch {
	case !plainText(req.Name, false):
		err = badRequest("name must not hold control characters")
	case !plainText(in.Description, true):
		err = badRequest("description must not hold control characters other than tab and line breaks")
	case in.Name == "" || utf8.RuneCountInString(in.Name) > maxNameLen:
		err = badRequest("name is required (at most %d characters)", maxNameLen)
	case utf8.RuneCountInString(in.Description) > maxDescLen:
		err = badRequest("description is longer than %d characters", maxDescLen)
	case req.PriceCents == nil:
		err = badRequest("price_cents is required")
	case *req.PriceCents < 0 || *req.PriceCents > maxPriceCents:
		err = badRequest("price_cents must be within 0..%d", maxPriceCents)
	case req.Stock != nil && (*req.Stock < 0 || *req.Stock > maxStock):
		err = badRequest("stock must be within 0..%d", maxStock)
	case req.ReorderPoint != nil && (*req.ReorderPoint < 0 || *req.ReorderPoint > maxStock):
		err = badRequest("reorder_point must be within 0..%d", maxStock)
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	in.PriceCents = *req.PriceCents
	if req.IsAvailable != nil {
		in.IsAvailable = *req.IsAvailable
	}
	if req.Stock != nil {
		in.Stock = *req.Stock
	}
	if req.ReorderPoint != nil {
		in.ReorderPoint = *req.ReorderPoint
	}
	m, err := a.svc.AddMenuItem(r.Context(), in)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, m)
}

type patchMenuItemRequest struct {
	PriceCents  *int64 `json:"price_cents"`
	IsAvailable *bool  `json:"is_available"`
}

func (a *App) patchMenuItem(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r, "id")
	if err != nil {
		a.fail(w, r, err)
		return
	}
	p, err := a.authenticate(r)
	if err == nil && !p.isStaff() {
		err = forbidden("menu items")
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	var req patchMenuItemRequest
	if err := decodeJSON(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	switch {
	case req.PriceCents == nil && req.IsAvailable == nil:
		err = badRequest("nothing to change: give price_cents and/or is_available")
	case req.PriceCents != nil && (*req.PriceCents < 0 || *req.PriceCents > maxPriceCents):
		err = badRequest("price_cents must be within 0..%d", maxPriceCents)
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	rid, err := a.st.MenuItemRestaurant(r.Context(), id)
	if err == nil && !p.managerOf(rid) {
		err = forbidden("the menu of restaurant " + strconv.FormatInt(rid, 10))
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	m, err := a.svc.PatchMenu(r.Context(), menuPatch{ID: id, Patch: store.MenuItemPatch{PriceCents: req.PriceCents, IsAvailable: req.IsAvailable}})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, m)
}

func (a *App) getOrder(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r, "id")
	if err != nil {
		a.fail(w, r, err)
		return
	}
	p, err := a.authenticate(r)
	if err == nil && !p.guestOf(id) && !p.isStaff() {
		err = forbidden("order " + strconv.FormatInt(id, 10))
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	b, err := a.svc.Order(r.Context(), id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	// The response may come from the cache: whose it is is checked on
	// the bytes about to be served, every time.
	if !p.guestOf(id) {
		rid, err := orderRestaurant(b)
		if err == nil && !p.staffOf(rid) {
			err = forbidden("order " + strconv.FormatInt(id, 10))
		}
		if err != nil {
			a.fail(w, r, err)
			return
		}
	}
	writeRaw(w, http.StatusOK, b)
}

// orderRestaurant reads the restaurant of an encoded order.
func orderRestaurant(b []byte) (int64, error) {
	var o struct {
		RestaurantID int64 `json:"restaurant_id"`
	}
	if err := json.Unmarshal(b, &o); err != nil {
		return 0, fmt.Errorf("servio: cached order: %w", err)
	}
	return o.RestaurantID, nil
}

func (a *App) listOrders(w http.ResponseWriter, r *http.Request) {
	rid, err := pathID(r, "id")
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if err := a.authStaff(r, rid); err != nil {
		a.fail(w, r, err)
		return
	}
	params, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		a.fail(w, r, badRequest("malformed query string"))
		return
	}
	q := store.OrdersQuery{RestaurantID: rid, Status: params.Get("status")}
	if q.Status != "" && !store.ValidStatus(q.Status) {
		a.fail(w, r, badRequest("status must be one of pending, preparing, ready, completed, cancelled"))
		return
	}
	if v := params.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > store.MaxPageSize {
			a.fail(w, r, badRequest("limit must be an integer within 1..%d", store.MaxPageSize))
			return
		}
		q.Limit = n
	}
	if v := params.Get("cursor"); v != "" {
		c, err := store.DecodeCursor(v)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		q.After = &c
	}
	page, err := a.svc.Orders(r.Context(), q)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, page)
}

type createOrderRequest struct {
	RestaurantID int64  `json:"restaurant_id"`
	CustomerName string `json:"customer_name"`
	// CustomerPhone (optional, E.164) gets the order's SMS notifications.
	CustomerPhone string `json:"customer_phone"`
	Items         []struct {
		MenuItemID int64 `json:"menu_item_id"`
		Quantity   int   `json:"quantity"`
	} `json:"items"`
}

func (a *App) createOrder(w http.ResponseWriter, r *http.Request) {
	var req createOrderRequest
	raw, err := readJSONBody(w, r)
	if err == nil {
		err = decodeJSONBytes(raw, &req)
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	in := store.NewOrder{RestaurantID: req.RestaurantID, CustomerName: strings.TrimSpace(req.CustomerName), CustomerPhone: req.CustomerPhone}
	switch {
	case req.CustomerPhone != "" && !validPhone(req.CustomerPhone):
		err = badRequest("customer_phone must be an E.164 number such as +14155550100")
	case req.RestaurantID <= 0:
		err = badRequest("restaurant_id must be a positive integer")
	case !plainText(req.CustomerName, false):
		err = badRequest("customer_name must not hold control characters")
	case utf8.RuneCountInString(in.CustomerName) > maxNameLen:
		err = badRequest("customer_name is longer than %d characters", maxNameLen)
	case len(req.Items) == 0 || len(req.Items) > maxOrderLines:
		err = badRequest("items must hold 1..%d lines", maxOrderLines)
	}
	for i, it := range req.Items {
		if err != nil {
			break
		}
		switch {
		case it.MenuItemID <= 0:
			err = badRequest("items[%d].menu_item_id must be a positive integer", i)
		case it.Quantity <= 0 || it.Quantity > maxQuantity:
			err = badRequest("items[%d].quantity must be within 1..%d", i, maxQuantity)
		}
		in.Items = append(in.Items, store.NewOrderItem{MenuItemID: it.MenuItemID, Quantity: it.Quantity})
	}
	// The cap is per item, not per line: repeated lines of one item are
	// added up first (the store merges them the same way).
	total := map[int64]int{}
	for _, it := range in.Items {
		if err != nil {
			break
		}
		if total[it.MenuItemID] += it.Quantity; total[it.MenuItemID] > maxQuantity {
			err = badRequest("menu item %d is ordered %d times over its lines; at most %d", it.MenuItemID, total[it.MenuItemID], maxQuantity)
		}
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	key, err := idemKey(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	var id int64
	respond := func(o store.Order) (int, []byte, error) {
		id = o.ID
		tok, exp, err := a.tokens.issueGuest(o)
		if err != nil {
			return 0, nil, err
		}
		b, err := json.Marshal(createdOrder{Order: o, OrderToken: tok, OrderTokenExpiresAt: exp})
		return http.StatusCreated, b, err
	}
	location := func(h http.Header) { h.Set("Location", "/orders/"+strconv.FormatInt(id, 10)) }
	if key == "" {
		o, err := a.svc.CreateOrder(r.Context(), in)
		var b []byte
		if err == nil {
			_, b, err = respond(o)
		}
		if err != nil {
			a.fail(w, r, err)
			return
		}
		location(w.Header())
		writeRaw(w, http.StatusCreated, b)
		return
	}
	p, authErr := a.authenticate(r)
	claim, handled := a.claimIdem(w, r, idemScope(r, p, authErr == nil), key, raw)
	if handled {
		return
	}
	in.Idem = &store.IdemCompletion{Claim: claim, Respond: respond}
	_, err = a.svc.CreateOrder(r.Context(), in)
	a.finishIdem(w, r, in.Idem, err, location)
}

// createdOrder is POST /orders' answer: the order and the guest's
// order-scoped token, which reads it and cancels it while pending.
type createdOrder struct {
	store.Order
	OrderToken          string    `json:"order_token"`
	OrderTokenExpiresAt time.Time `json:"order_token_expires_at"`
}

type patchOrderRequest struct {
	Status string `json:"status"`
}

func (a *App) patchOrder(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r, "id")
	if err != nil {
		a.fail(w, r, err)
		return
	}
	p, err := a.authenticate(r)
	if err == nil && !p.guestOf(id) && !p.isStaff() {
		err = forbidden("order " + strconv.FormatInt(id, 10))
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	var req patchOrderRequest
	raw, err := readJSONBody(w, r)
	if err == nil {
		err = decodeJSONBytes(raw, &req)
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	key, err := idemKey(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if !store.ValidStatus(req.Status) {
		a.fail(w, r, badRequest("status must be one of pending, preparing, ready, completed, cancelled"))
		return
	}
	guest := p.guestOf(id)
	if guest && req.Status != store.StatusCancelled {
		a.fail(w, r, forbidden("changing order "+strconv.FormatInt(id, 10)+" (an order token may only cancel it)"))
		return
	}
	// Checked with the order's row locked, against its restaurant and
	// the status it has at that moment.
	allow := func(rid int64, cur string) error {
		switch {
		case guest && cur != store.StatusPending:
			return &store.ConflictError{Reason: fmt.Sprintf("order %d is %s; its order token can cancel it only while pending", id, cur)}
		case !guest && !p.staffOf(rid):
			return forbidden("order " + strconv.FormatInt(id, 10))
		}
		return nil
	}
	if key == "" {
		o, err := a.svc.PatchOrder(r.Context(), orderPatch{ID: id, Status: req.Status, Allow: allow})
		if err != nil {
			a.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, o)
		return
	}
	claim, handled := a.claimIdem(w, r, idemScope(r, p, true), key, raw)
	if handled {
		return
	}
	ic := &store.IdemCompletion{Claim: claim, Respond: func(o store.Order) (int, []byte, error) {
		b, err := json.Marshal(o)
		return http.StatusOK, b, err
	}}
	_, err = a.svc.PatchOrder(r.Context(), orderPatch{ID: id, Status: req.Status, Allow: allow, Idem: ic})
	a.finishIdem(w, r, ic, err, nil)
}

type lowStockResponse struct {
	RestaurantID int64                 `json:"restaurant_id"`
	Items        []store.InventoryItem `json:"items"`
}

func (a *App) lowStock(w http.ResponseWriter, r *http.Request) {
	rid, err := pathID(r, "id")
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if err := a.authStaff(r, rid); err != nil {
		a.fail(w, r, err)
		return
	}
	items, err := a.svc.LowStock(r.Context(), rid)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, lowStockResponse{RestaurantID: rid, Items: items})
}

// plainText reports whether s holds no control characters (Unicode Cc:
// C0, DEL, C1 — NUL among them, which PostgreSQL refuses to store); with
// multiline, tab, line feed and carriage return are allowed. Every string
// a client sends is checked, so SQLite and PostgreSQL store the same.
func plainText(s string, multiline bool) bool {
	for _, r := range s {
		if unicode.IsControl(r) && !(multiline && (r == '\t' || r == '\n' || r == '\r')) {
			return false
		}
	}
	return true
}
