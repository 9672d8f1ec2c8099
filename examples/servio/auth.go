package main

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/servio/perfkit/examples/servio/internal/store"
	"github.com/servio/perfkit/metrics"
	"github.com/servio/perfkit/resilience"
)

// Password hashing for the demo users: PBKDF2-HMAC-SHA256 from the standard
// library (bcrypt/argon2 would need x/crypto, which perfkit does not pull in).
// The iteration count is below OWASP's 600,000 to keep the demo's startup
// and tests quick; a production service would raise it or use argon2id.
const pbkdf2Iterations = 100_000

// hashPassword returns "pbkdf2-sha256$<iterations>$<salt>$<key>".
func hashPassword(password string, iterations int) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key, err := pbkdf2.Key(sha256.New, password, salt, iterations, 32)
	if err != nil {
		return "", err
	}
	enc := base64.RawStdEncoding
	return fmt.Sprintf("pbkdf2-sha256$%d$%s$%s", iterations, enc.EncodeToString(salt), enc.EncodeToString(key)), nil
}

// checkPassword reports whether password matches the stored hash, in time
// independent of where they differ.
func checkPassword(hash, password string) bool {
	parts := strings.Split(hash, "$")
	if len(parts) != 4 || parts[0] != "pbkdf2-sha256" {
		return false
	}
	iter, err := strconv.Atoi(parts[1])
	if err != nil || iter < 1 || iter > 10_000_000 {
		return false
	}
	enc := base64.RawStdEncoding
	salt, err1 := enc.DecodeString(parts[2])
	want, err2 := enc.DecodeString(parts[3])
	if err1 != nil || err2 != nil || len(want) == 0 {
		return false
	}
	got, err := pbkdf2.Key(sha256.New, password, salt, iter, len(want))
	return err == nil && subtle.ConstantTimeCompare(got, want) == 1
}

// tokenSigner issues HMAC-SHA256 signed bearer tokens:
// base64url(claims JSON) "." base64url(mac).
type tokenSigner struct {
	key []byte
	ttl time.Duration
	now func() time.Time
}

// tokenClaims are what a token says. A user's token has Sub, Email, Role
// (admin, manager, staff) and Rid, the user's restaurant (0 for an admin);
// a guest's order token has Role "guest", Ord (the order) and Rid (its
// restaurant).
type tokenClaims struct {
	Sub   int64  `json:"sub,omitempty"`
	Email string `json:"email,omitempty"`
	Role  string `json:"role"`
	Rid   int64  `json:"rid,omitempty"`
	Ord   int64  `json:"ord,omitempty"`
	Exp   int64  `json:"exp"`
}

// issue returns a user's token and when it expires.
func (s *tokenSigner) issue(u store.User) (string, time.Time, error) {
	return s.sign(tokenClaims{Sub: u.ID, Email: u.Email, Role: u.Role, Rid: u.RestaurantID})
}

// issueGuest returns the order-scoped token of a guest checkout.
func (s *tokenSigner) issueGuest(o store.Order) (string, time.Time, error) {
	return s.sign(tokenClaims{Role: roleGuest, Rid: o.RestaurantID, Ord: o.ID})
}

// sign sets c's expiry and returns it signed.
func (s *tokenSigner) sign(c tokenClaims) (string, time.Time, error) {
	exp := s.now().Add(s.ttl).UTC().Truncate(time.Second)
	c.Exp = exp.Unix()
	payload, err := json.Marshal(c)
	if err != nil {
		return "", time.Time{}, err
	}
	body := base64.RawURLEncoding.EncodeToString(payload)
	return body + "." + s.mac(body), exp, nil
}

func (s *tokenSigner) mac(body string) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(body))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

var errBadToken = errors.New("invalid or expired token")

// verify checks a token's signature and expiry and returns its claims.
func (s *tokenSigner) verify(tok string) (tokenClaims, error) {
	body, sig, ok := strings.Cut(tok, ".")
	if !ok || !hmac.Equal([]byte(sig), []byte(s.mac(body))) {
		return tokenClaims{}, errBadToken
	}
	raw, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil {
		return tokenClaims{}, errBadToken
	}
	var c tokenClaims
	if err := json.Unmarshal(raw, &c); err != nil || s.now().Unix() >= c.Exp {
		return tokenClaims{}, errBadToken
	}
	return c, nil
}

type loginRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

type loginResponse struct {
	Token     string     `json:"token"`
	TokenType string     `json:"token_type"`
	ExpiresAt time.Time  `json:"expires_at"`
	User      store.User `json:"user"`
}

func (a *App) login(w http.ResponseWriter, r *http.Request) {
	var req loginRequest
	if err := decodeJSON(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	if req.Email == "" || req.Password == "" || len(req.Email) > 320 || len(req.Password) > 1024 {
		a.fail(w, r, badRequest("email and password are required"))
		return
	}
	if !plainText(req.Email, false) || !plainText(req.Password, false) {
		a.fail(w, r, badRequest("email and password must not hold control characters"))
		return
	}
	u, err := a.st.UserByEmail(r.Context(), strings.ToLower(strings.TrimSpace(req.Email)))
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		a.fail(w, r, err)
		return
	}
	hash := u.PasswordHash
	if err != nil {
		// An unknown email costs as much as a wrong password.
		hash = a.dummyHash
	}
	ok, gateErr := a.checkPassword(r, hash, req.Password)
	if gateErr != nil {
		if errors.Is(gateErr, resilience.ErrBulkheadFull) {
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusServiceUnavailable, "too many logins in progress, retry shortly")
			return
		}
		a.fail(w, r, gateErr)
		return
	}
	if !ok || err != nil {
		writeError(w, http.StatusUnauthorized, "wrong email or password")
		return
	}
	tok, exp, err := a.tokens.issue(u)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, loginResponse{Token: tok, TokenType: "Bearer", ExpiresAt: exp, User: u})
}

// newHashGate returns the bulkhead password checks run in. A check is
// PBKDF2 with 100,000 iterations — tens of milliseconds of one core, by
// design — so a burst of logins could otherwise take every core and stall
// the cheap requests queued behind them. The gate keeps half the cores
// (at least one check at a time) for hashing; up to 64 logins wait, at
// most 2 s, then get 503 with Retry-After.
func newHashGate(mp *metrics.Provider) (*resilience.Bulkhead, error) {
	return resilience.NewBulkhead(resilience.BulkheadConfig{Name: "password-hash",
		MaxConcurrent: max(1, runtime.GOMAXPROCS(0)/2), MaxQueue: 64, QueueTimeout: 2 * time.Second,
		MeterProvider: mp})
}

// checkPassword checks password against hash, through the hash gate when
// there is one; the error is the gate's (full, timed out, ctx done).
func (a *App) checkPassword(r *http.Request, hash, password string) (bool, error) {
	if a.hashGate == nil {
		return checkPassword(hash, password), nil
	}
	var ok bool
	err := a.hashGate.Do(r.Context(), func(context.Context) error {
		ok = checkPassword(hash, password)
		return nil
	})
	return ok, err
}
