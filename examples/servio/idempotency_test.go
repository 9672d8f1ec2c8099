package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/servio/perfkit/examples/servio/internal/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sendKeyed sends a request with an Idempotency-Key (and a token when tok
// is set) and returns the status, the replay header and the body.
func sendKeyed(t *testing.T, a *testApp, method, path, key, tok, body string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(method, a.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header.Get("Idempotent-Replayed"), string(b)
}

// TestIdempotencyKey: a retry with the same key and body gets the original
// answer (same order, same status) and writes nothing; another body is a
// 422; a key in flight a 409; a refused write is not stored; PATCH replays
// its first answer although the order moved on.
func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	for _, dialect := range dialects {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			a := newTestApp(t, dialect)
			admin := a.admin()
			stock := func() int {
				var low lowStockResponse
				admin.doJSON("GET", "/restaurants/1/inventory/low-stock", "", http.StatusOK, &low)
				return low.Items[0].CurrentQuantity // Lasagne (item 3), 6 at the start
			}
			body := `{"restaurant_id":1,"customer_name":"Retry","items":[{"menu_item_id":3,"quantity":1}]}`
			code, replayed, first := sendKeyed(t, a, "POST", "/orders", "order-key-1", "", body)
			require.Equal(t, http.StatusCreated, code, first)
			assert.Empty(t, replayed)
			code, replayed, again := sendKeyed(t, a, "POST", "/orders", "order-key-1", "", body)
			assert.Equal(t, http.StatusCreated, code, "the original status")
			assert.Equal(t, "true", replayed)
			assert.Equal(t, first, again, "the original body: same order, same token")
			assert.Equal(t, 5, stock(), "one order, one unit of stock, however many retries")

			code, _, msg := sendKeyed(t, a, "POST", "/orders", "order-key-1", "", strings.Replace(body, `"quantity":1`, `"quantity":2`, 1))
			assert.Equal(t, http.StatusUnprocessableEntity, code, msg)

			// In flight: the key is claimed (as by a request still running).
			sum := sha256.Sum256([]byte(body))
			c, err := a.st.ClaimIdem(t.Context(), "POST /orders anonymous", "order-key-2", hex.EncodeToString(sum[:]), time.Now())
			require.NoError(t, err)
			require.Equal(t, store.IdemClaimed, c.Outcome)
			code, _, msg = sendKeyed(t, a, "POST", "/orders", "order-key-2", "", body)
			assert.Equal(t, http.StatusConflict, code, msg)
			assert.Contains(t, msg, "in flight")
			assert.Equal(t, 5, stock())

			// A refused write is not stored: the retry runs again.
			big := `{"restaurant_id":1,"items":[{"menu_item_id":3,"quantity":50}]}`
			for range 2 {
				code, replayed, msg = sendKeyed(t, a, "POST", "/orders", "order-key-3", "", big)
				assert.Equal(t, http.StatusConflict, code, msg)
				assert.Empty(t, replayed)
			}

			code, _, msg = sendKeyed(t, a, "POST", "/orders", "bad key", "", body)
			assert.Equal(t, http.StatusBadRequest, code, msg)

			staff := a.tokenFor("staff@servio.dev")
			var o struct{ ID int64 }
			require.NoError(t, jsonUnmarshal(first, &o))
			path := fmt.Sprintf("/orders/%d", o.ID)
			code, _, p1 := sendKeyed(t, a, "PATCH", path, "patch-key-1", staff, `{"status":"preparing"}`)
			require.Equal(t, http.StatusOK, code, p1)
			code, replayed, p2 := sendKeyed(t, a, "PATCH", path, "patch-key-1", staff, `{"status":"preparing"}`)
			assert.Equal(t, http.StatusOK, code, "a replay, not preparing → preparing's 409: %s", p2)
			assert.Equal(t, "true", replayed)
			assert.Equal(t, p1, p2)
			code, _, p3 := sendKeyed(t, a, "PATCH", path, "patch-key-2", staff, `{"status":"preparing"}`)
			assert.Equal(t, http.StatusConflict, code, "a new key is a new request: %s", p3)
		})
	}
}
