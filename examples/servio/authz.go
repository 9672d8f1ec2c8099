package main

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/servio/perfkit/examples/servio/internal/store"
)

// Authorization. A request carries at most one bearer token, either a
// user's (POST /auth/login) or a guest's order token (POST /orders). The
// rules, one per route, are in routes.go's table:
//
//   - public: the menu, login, the assistant, POST /orders (guest
//     checkout) and /health, /health/live, /health/ready. A token sent to
//     a public route is ignored, valid or not.
//   - a guest's order token reads its order and cancels it while pending.
//   - staff (and managers) of a restaurant read its orders, move them
//     along the state machine, list them, see its low stock and upload.
//   - managers of a restaurant also add and change its menu items.
//   - an admin may do all of it for every restaurant.
//
// No token, or one that does not verify or has expired: 401 with
// WWW-Authenticate. A valid token that does not reach the resource: 403.
// Both in servio's JSON error shape. /health/detailed and /health/metrics
// keep the health package's own rule (details to loopback and private
// networks only).

// Token roles beyond the users' (store.RoleAdmin, RoleManager, RoleStaff).
const roleGuest = "guest"

// principal is who a request acts as.
type principal struct {
	userID       int64
	role         string
	restaurantID int64 // the user's restaurant; the guest order's restaurant
	orderID      int64 // guest tokens only
}

// staffOf reports whether p may do a staff member's work for restaurant rid.
func (p principal) staffOf(rid int64) bool {
	switch p.role {
	case store.RoleAdmin:
		return true
	case store.RoleManager, store.RoleStaff:
		return p.restaurantID != 0 && p.restaurantID == rid
	}
	return false
}

// managerOf reports whether p may change restaurant rid's menu.
func (p principal) managerOf(rid int64) bool {
	return p.role == store.RoleAdmin || (p.role == store.RoleManager && p.restaurantID != 0 && p.restaurantID == rid)
}

// isStaff reports whether p is a user of any restaurant (not a guest).
func (p principal) isStaff() bool {
	switch p.role {
	case store.RoleAdmin, store.RoleManager, store.RoleStaff:
		return true
	}
	return false
}

// guestOf reports whether p is the guest token of order id.
func (p principal) guestOf(id int64) bool { return p.role == roleGuest && p.orderID == id }

var (
	errUnauthenticated = &httpError{http.StatusUnauthorized, "authentication required: send Authorization: Bearer <token> (POST /auth/login)"}
	errInvalidToken    = &httpError{http.StatusUnauthorized, "invalid or expired token"}
)

// forbidden is the 403 for a valid token that does not reach what.
func forbidden(what string) error {
	return &httpError{http.StatusForbidden, "this token does not give access to " + what}
}

// bearer returns the request's bearer token, or "".
func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) < 7 || !strings.EqualFold(h[:7], "Bearer ") {
		return ""
	}
	return strings.TrimSpace(h[7:])
}

// authenticate returns who the request acts as, or a 401 error.
func (a *App) authenticate(r *http.Request) (principal, error) {
	tok := bearer(r)
	if tok == "" {
		return principal{}, errUnauthenticated
	}
	c, err := a.tokens.verify(tok)
	if err != nil {
		return principal{}, errInvalidToken
	}
	return principal{userID: c.Sub, role: c.Role, restaurantID: c.Rid, orderID: c.Ord}, nil
}

// authStaff authenticates the request and requires staff rights for
// restaurant rid (401 or 403 otherwise).
func (a *App) authStaff(r *http.Request, rid int64) error {
	p, err := a.authenticate(r)
	if err != nil {
		return err
	}
	if !p.staffOf(rid) {
		return forbidden("restaurant " + strconv.FormatInt(rid, 10))
	}
	return nil
}

// authManager authenticates the request and requires a manager's rights
// for restaurant rid (401 or 403 otherwise).
func (a *App) authManager(r *http.Request, rid int64) error {
	p, err := a.authenticate(r)
	if err != nil {
		return err
	}
	if !p.managerOf(rid) {
		return forbidden("the menu of restaurant " + strconv.FormatInt(rid, 10))
	}
	return nil
}
