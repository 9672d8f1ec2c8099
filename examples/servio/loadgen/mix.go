package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"

	"github.com/servio/perfkit/examples/servio/internal/store"
)

// mix is the share of each kind of request; the rest are reads.
type mix struct {
	writes, logins, assistant float64
}

func (m mix) validate() error {
	for _, v := range []float64{m.writes, m.logins, m.assistant} {
		if v < 0 || v > 1 {
			return fmt.Errorf("shares must be within [0, 1]")
		}
	}
	if m.writes+m.logins+m.assistant > 1 {
		return fmt.Errorf("-writes + -logins + -assistant must not exceed 1")
	}
	return nil
}

// op is one request to send, with the route template it is reported under.
type op struct {
	route  string
	method string
	path   string
	body   []byte
	client string
	onBody func([]byte) // called with the response body of a 2xx answer
	auth   bool         // a staff route: send the signed-in user's token
	// key is the Idempotency-Key of a write: a 503 or a connection error is
	// retried with it (see engine.do), so a retry never writes twice.
	key string
}

// workload draws requests: reads spread over restaurants and orders with a
// Zipf skew (a few hot keys, a long tail), a share of writes, logins and
// assistant questions. Each worker has its own workload (own RNG); the menu
// knowledge needed to build valid orders is shared.
type workload struct {
	o    *options
	rng  *rand.Rand
	rest *rand.Zipf
	ord  *rand.Zipf
	menu *menus
}

// menus remembers the menu item ids seen per restaurant, for valid orders.
type menus struct {
	mu    sync.RWMutex
	items map[int][]int64
}

func (m *menus) get(r int) []int64 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.items[r]
}

func (m *menus) learn(r int) func([]byte) {
	return func(body []byte) {
		ids := itemIDs(body)
		if len(ids) == 0 {
			return
		}
		m.mu.Lock()
		m.items[r] = ids
		m.mu.Unlock()
	}
}

// itemIDs reads the "id" of each menu item from a menu response: either a
// JSON array of items or an object with an "items" array.
func itemIDs(body []byte) []int64 {
	type item struct {
		ID int64 `json:"id"`
	}
	var list []item
	if err := json.Unmarshal(body, &list); err != nil {
		var wrapped struct {
			Items []item `json:"items"`
		}
		if json.Unmarshal(body, &wrapped) != nil {
			return nil
		}
		list = wrapped.Items
	}
	ids := make([]int64, 0, len(list))
	for _, it := range list {
		if it.ID > 0 {
			ids = append(ids, it.ID)
		}
	}
	return ids
}

func newWorkload(o *options, seed uint64, m *menus) *workload {
	rng := rand.New(rand.NewPCG(uint64(o.seed), seed))
	return &workload{
		o:    o,
		rng:  rng,
		rest: rand.NewZipf(rng, o.zipfS, 1, uint64(o.restaurants-1)),
		ord:  rand.NewZipf(rng, o.zipfS, 1, uint64(o.orders-1)),
		menu: m,
	}
}

// statuses are the moves a kitchen makes; a move the order's state does
// not allow is a 409, counted with the other 4xx.
var statuses = []string{store.StatusPreparing, store.StatusReady, store.StatusCompleted, store.StatusCancelled}

func (w *workload) next() op {
	r := int(w.rest.Uint64()) + 1
	client := w.clientIP()
	x := w.rng.Float64()
	switch m := w.o.mix; {
	case x < m.writes:
		if w.rng.IntN(4) == 0 {
			id := w.ord.Uint64() + 1
			body, _ := json.Marshal(map[string]string{"status": statuses[w.rng.IntN(len(statuses))]})
			return op{route: "PATCH /orders/{id}", method: http.MethodPatch, path: "/orders/" + strconv.FormatUint(id, 10), body: body, client: client, auth: true, key: w.key()}
		}
		if ids := w.menu.get(r); len(ids) > 0 {
			return w.createOrder(r, ids, client)
		}
	case x < m.writes+m.logins:
		body, _ := json.Marshal(map[string]string{"email": "demo@servio.example", "password": "wrong-on-purpose"})
		return op{route: "POST /auth/login", method: http.MethodPost, path: "/auth/login", body: body, client: client}
	case x < m.writes+m.logins+m.assistant:
		q := [...]string{"What is vegetarian on the menu?", "Is the kitchen open late?", "Which dish is the most popular?", "Do you have gluten-free options?"}
		body, _ := json.Marshal(map[string]any{"restaurant_id": r, "question": q[w.rng.IntN(len(q))]})
		return op{route: "POST /assistant/query", method: http.MethodPost, path: "/assistant/query", body: body, client: client}
	}
	return w.read(r, client)
}

func (w *workload) read(r int, client string) op {
	rs := strconv.Itoa(r)
	switch x := w.rng.Float64(); {
	case x < 0.55:
		o := op{route: "GET /restaurants/{id}/menu", method: http.MethodGet, path: "/restaurants/" + rs + "/menu", client: client}
		if w.menu.get(r) == nil {
			// Learn a menu once: decoding every answer would spend the
			// CPU both services share with the load generator.
			o.onBody = w.menu.learn(r)
		}
		return o
	case x < 0.85:
		return op{route: "GET /orders/{id}", method: http.MethodGet, path: "/orders/" + strconv.FormatUint(w.ord.Uint64()+1, 10), client: client, auth: true}
	case x < 0.95:
		return op{route: "GET /restaurants/{id}/orders", method: http.MethodGet, path: "/restaurants/" + rs + "/orders?limit=20", client: client, auth: true}
	default:
		return op{route: "GET /restaurants/{id}/inventory/low-stock", method: http.MethodGet, path: "/restaurants/" + rs + "/inventory/low-stock", client: client, auth: true}
	}
}

func (w *workload) createOrder(r int, ids []int64, client string) op {
	n := 1 + w.rng.IntN(3)
	type line struct {
		MenuItemID int64 `json:"menu_item_id"`
		Quantity   int   `json:"quantity"`
	}
	lines := make([]line, 0, n)
	seen := map[int64]bool{}
	for range n {
		id := ids[w.rng.IntN(len(ids))]
		if !seen[id] {
			seen[id] = true
			lines = append(lines, line{id, 1})
		}
	}
	var buf bytes.Buffer
	_ = json.NewEncoder(&buf).Encode(map[string]any{"restaurant_id": r, "customer_name": "loadgen", "items": lines})
	return op{route: "POST /orders", method: http.MethodPost, path: "/orders", body: buf.Bytes(), client: client, key: w.key()}
}

// key returns a fresh Idempotency-Key.
func (w *workload) key() string {
	return fmt.Sprintf("loadgen-%016x%016x", w.rng.Uint64(), w.rng.Uint64())
}

// clientIP names one of the simulated clients, drawn uniformly (per-client
// rate limits then see a realistic share each), as an address of the
// benchmarking range 198.18.0.0/15 — only ever sent as a header value.
func (w *workload) clientIP() string {
	c := w.rng.IntN(w.o.clients)
	return fmt.Sprintf("198.18.%d.%d", (c>>8)&0xff, c&0xff)
}
