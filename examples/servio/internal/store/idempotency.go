package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"time"
)

// Idempotency keys (the Idempotency-Key header, after Stripe's keys and the
// IETF httpapi draft). A key lives in a scope (the route, its path and the
// caller) and is bound to the hash of the request that first used it:
//
//   - ClaimIdem records the key as in flight, owned by this request, for a
//     lease of IdemLease.
//   - The write then completes the key with its response (status and body)
//     in its own transaction (NewOrder.Idem, UpdateOrderStatus's idem), only
//     while it still owns the key: committed together or not at all.
//   - A later claim of the key with the same hash gets the stored response
//     (IdemReplay), with another hash IdemMismatch, while the first is in
//     flight IdemInFlight. A claim whose owner's lease ran out without a
//     completion (the owner failed before it could release the key, e.g.
//     the database went away) takes it over; the old owner's completion then
//     fails with ErrIdemLost and its write rolls back, so a key's write
//     commits at most once.
//   - ReleaseIdem gives an uncompleted key up after a write that failed, so
//     a retry runs again at once.
//   - Keys are kept IdemTTL (24 h) from their first use; an older one is
//     forgotten and its key may be used anew.

// Idempotency key defaults.
const (
	IdemTTL   = 24 * time.Hour
	IdemLease = 10 * time.Second
)

// ErrIdemLost is returned by a write whose idempotency key was taken over
// by a retry after its lease ran out; the write was rolled back.
var ErrIdemLost = errors.New("store: idempotency key taken over by a retry")

// IdemOutcome is what a claim found.
type IdemOutcome int

// The outcomes of ClaimIdem.
const (
	// IdemClaimed: the key is this request's; run the write.
	IdemClaimed IdemOutcome = iota
	// IdemReplay: the key completed earlier with the same request; answer
	// with Status and Body.
	IdemReplay
	// IdemMismatch: the key was used with another request (422).
	IdemMismatch
	// IdemInFlight: the first request with this key still runs (409).
	IdemInFlight
)

// IdemClaim is the result of ClaimIdem.
type IdemClaim struct {
	Outcome     IdemOutcome
	Scope, Key  string
	Owner       string // IdemClaimed: the token the completion must match
	Status      int    // IdemReplay
	Body        []byte // IdemReplay
	RetryAfter  time.Duration
	requestHash string
}

// IdemCompletion completes a claimed key inside a write's transaction:
// Respond turns the written order into the response stored with the key
// (and sent to the client).
type IdemCompletion struct {
	Claim   IdemClaim
	Respond func(Order) (status int, body []byte, err error)
	// Status and Body are the response Respond gave, set when the write
	// committed.
	Status int
	Body   []byte
}

// ClaimIdem claims key in scope for a request whose hash is requestHash, at
// time now (see the rules above).
func (s *Store) ClaimIdem(ctx context.Context, scope, key, requestHash string, now time.Time) (IdemClaim, error) {
	c := IdemClaim{Scope: scope, Key: key, requestHash: requestHash}
	if _, err := s.db.ExecContext(ctx, s.q.idemExpire, scope, key, s.timeArg(now.Add(-IdemTTL))); err != nil {
		return c, err
	}
	for range 3 {
		owner := newOwner()
		res, err := s.db.ExecContext(ctx, s.q.idemInsert, scope, key, requestHash, owner, s.timeArg(now.Add(IdemLease)), s.timeArg(now))
		if err != nil {
			return c, err
		}
		if n, err := res.RowsAffected(); err != nil {
			return c, err
		} else if n == 1 {
			c.Outcome, c.Owner = IdemClaimed, owner
			return c, nil
		}
		var hash string
		var status int
		var body []byte
		var until dbTime
		err = s.db.QueryRowContext(ctx, s.q.idemGet, scope, key).Scan(&hash, &status, &body, &until)
		if errors.Is(err, sql.ErrNoRows) {
			continue // released or expired meanwhile: claim again
		}
		if err != nil {
			return c, err
		}
		switch {
		case hash != requestHash:
			c.Outcome = IdemMismatch
			return c, nil
		case status > 0:
			c.Outcome, c.Status, c.Body = IdemReplay, status, body
			return c, nil
		case until.t.After(now):
			c.Outcome, c.RetryAfter = IdemInFlight, until.t.Sub(now)
			return c, nil
		}
		// The owner's lease ran out without a completion: take it over.
		res, err = s.db.ExecContext(ctx, s.q.idemTakeOver, owner, s.timeArg(now.Add(IdemLease)), scope, key, s.timeArg(now))
		if err != nil {
			return c, err
		}
		if n, err := res.RowsAffected(); err != nil {
			return c, err
		} else if n == 1 {
			c.Outcome, c.Owner = IdemClaimed, owner
			return c, nil
		}
	}
	c.Outcome, c.RetryAfter = IdemInFlight, time.Second
	return c, nil
}

// ReleaseIdem gives up a claimed key that was not completed (the write
// failed), so a retry runs again at once. A completed key stays.
func (s *Store) ReleaseIdem(ctx context.Context, c IdemClaim) error {
	if c.Outcome != IdemClaimed {
		return nil
	}
	_, err := s.db.ExecContext(ctx, s.q.idemRelease, c.Scope, c.Key, c.Owner)
	return err
}

// completeIdem stores the response of a claimed key in tx, or returns
// ErrIdemLost when the key is no longer this request's.
func (s *Store) completeIdem(ctx context.Context, tx *sql.Tx, ic *IdemCompletion, o Order) error {
	status, body, err := ic.Respond(o)
	if err != nil {
		return err
	}
	res, err := tx.ExecContext(ctx, s.q.idemComplete, status, body, ic.Claim.Scope, ic.Claim.Key, ic.Claim.Owner)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n != 1 {
		return ErrIdemLost
	}
	ic.Status, ic.Body = status, body
	return nil
}

func newOwner() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
