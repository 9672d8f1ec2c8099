package ratelimit

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
)

// KeyFunc returns the key a request is limited by. An empty key means the
// request is not limited by this middleware (compose with FirstKey to fall
// back, e.g. to the client IP for anonymous users).
type KeyFunc func(r *http.Request) string

// RemoteIP keys by RemoteAddr's address, IPv6 grouped by /64. It trusts no
// forwarding header; use ClientIPKey behind a proxy.
func RemoteIP(r *http.Request) string {
	c := ClientIP{v6bits: 64, header: "X-Forwarded-For"} // NewClientIP(IPConfig{}), without a global
	return c.Key(r)
}

// ClientIPKey returns a KeyFunc keying by the client address found as cfg
// says (trusted proxies, header, IPv6 grouping).
func ClientIPKey(cfg IPConfig) (KeyFunc, error) {
	c, err := NewClientIP(cfg)
	if err != nil {
		return nil, err
	}
	return c.Key, nil
}

// HeaderKey keys by a request header such as an API key. The value is
// hashed (SHA-256, 128 bits in hex) so secrets never appear in Redis keys or
// logs; a missing header gives the empty key.
func HeaderKey(name string) KeyFunc {
	name = http.CanonicalHeaderKey(name)
	return func(r *http.Request) string {
		v := r.Header.Get(name)
		if v == "" {
			return ""
		}
		sum := sha256.Sum256([]byte(v))
		return "h:" + hex.EncodeToString(sum[:16])
	}
}

// FirstKey returns the first non-empty key of fns, so "user:42" for a
// signed-in user and the client IP otherwise: FirstKey(userKey, RemoteIP).
func FirstKey(fns ...KeyFunc) KeyFunc {
	return func(r *http.Request) string {
		for _, f := range fns {
			if k := f(r); k != "" {
				return k
			}
		}
		return ""
	}
}
