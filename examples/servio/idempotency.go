package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/servio/perfkit/examples/servio/internal/store"
)

// Idempotency-Key on POST /orders and PATCH /orders/{id}, after Stripe's
// idempotency keys and the IETF httpapi Idempotency-Key draft:
//
//   - The key (1–255 printable ASCII characters, bare or as a structured
//     header string "...") is scoped to the method, the path and the caller
//     (the signed-in user, the guest order token, or anonymous).
//   - The key and the response are stored in the transaction of the write
//     itself, so a write commits with its response or not at all.
//   - A retry with the same key and the same body bytes gets the original
//     response — same status, same body (same order id), with
//     Idempotent-Replayed: true. The same key with another body is a 422.
//     While the first request runs, a retry is a 409 with Retry-After.
//   - Only successful writes are stored: a refused one (4xx) or a failed
//     one (5xx) releases its key, and a retry runs again. A request that
//     could not release its key (the database went away) holds it for the
//     store's lease (10 s), after which a retry takes it over; the first
//     request's write, if it still runs, then rolls back.
//   - Keys are kept 24 h from first use.
//
// Clients should send a fresh random key (a UUID) per intended write and
// retry 503s and connection errors with the same key and body.

const idemHeader = "Idempotency-Key"

// idemKey returns the request's Idempotency-Key, "" when none is sent, or a
// 400 for a malformed one.
func idemKey(r *http.Request) (string, error) {
	v := r.Header.Get(idemHeader)
	if v == "" {
		return "", nil
	}
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	if v == "" || len(v) > 255 || strings.IndexFunc(v, func(c rune) bool { return c < 0x21 || c > 0x7e }) >= 0 {
		return "", badRequest("Idempotency-Key must be 1..255 printable ASCII characters")
	}
	return v, nil
}

// idemScope is where a key lives: method, path and caller.
func idemScope(r *http.Request, p principal, signedIn bool) string {
	who := "anonymous"
	switch {
	case signedIn && p.role == roleGuest:
		who = "order:" + strconv.FormatInt(p.orderID, 10)
	case signedIn:
		who = "user:" + strconv.FormatInt(p.userID, 10)
	}
	return r.Method + " " + r.URL.Path + " " + who
}

// claimIdem claims key for this request. It answers the request itself —
// a replay, a 422, a 409 or an error — and returns handled = true, unless
// the key is now this request's to complete.
func (a *App) claimIdem(w http.ResponseWriter, r *http.Request, scope, key string, body []byte) (claim store.IdemClaim, handled bool) {
	sum := sha256.Sum256(body)
	c, err := a.st.ClaimIdem(r.Context(), scope, key, hex.EncodeToString(sum[:]), time.Now())
	if err != nil {
		a.fail(w, r, err)
		return c, true
	}
	switch c.Outcome {
	case store.IdemReplay:
		w.Header().Set("Idempotent-Replayed", "true")
		if c.Status == http.StatusCreated {
			var o struct {
				ID int64 `json:"id"`
			}
			if json.Unmarshal(c.Body, &o) == nil && o.ID > 0 {
				w.Header().Set("Location", "/orders/"+strconv.FormatInt(o.ID, 10))
			}
		}
		writeRaw(w, c.Status, c.Body)
		return c, true
	case store.IdemMismatch:
		writeError(w, http.StatusUnprocessableEntity, "this Idempotency-Key was used with another request body; use a new key for a new request")
		return c, true
	case store.IdemInFlight:
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(c.RetryAfter.Seconds())))))
		writeError(w, http.StatusConflict, "a request with this Idempotency-Key is still in flight; retry shortly")
		return c, true
	}
	return c, false
}

// finishIdem answers a write made under a claimed key: the stored response
// when it committed, else the error, after giving the key up so a retry
// runs again.
func (a *App) finishIdem(w http.ResponseWriter, r *http.Request, ic *store.IdemCompletion, err error, header func(http.Header)) {
	if err != nil {
		if relErr := a.st.ReleaseIdem(context.WithoutCancel(r.Context()), ic.Claim); relErr != nil {
			a.log.DebugContext(r.Context(), "idempotency key not released; it is retried after its lease", "err", relErr)
		}
		if errors.Is(err, store.ErrIdemLost) {
			writeError(w, http.StatusConflict, "a retry with this Idempotency-Key took this request over; its answer is the one that counts")
			return
		}
		a.fail(w, r, err)
		return
	}
	if header != nil {
		header(w.Header())
	}
	writeRaw(w, ic.Status, ic.Body)
}
