package ratelimit

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// IPConfig configures how ClientIP finds and groups a request's client
// address. The zero value trusts no proxy: the key is RemoteAddr's address,
// IPv6 grouped by /64.
type IPConfig struct {
	// TrustedProxies are the proxies (CIDRs such as "10.0.0.0/8", or single
	// addresses) whose forwarding header is believed. The entry "unix"
	// trusts a peer on a Unix socket (RemoteAddr "@", "" or a socket path),
	// which only a process on this host can be: a local reverse proxy. The header is read
	// right to left only while each hop is one of them; the first hop that is
	// not is the client. A forged header from anyone else changes nothing.
	TrustedProxies []string
	// Header is the forwarding header your proxies write: "X-Forwarded-For"
	// (default) or "Forwarded" (RFC 7239). Only one is read, so a client
	// cannot slip in the other.
	Header string
	// IPv6Prefix is how many leading bits of an IPv6 address form the key
	// (default 64, a customer's typical allocation; 56 groups more, 128
	// keys each address). IPv4 addresses are keyed whole.
	IPv6Prefix int
}

// ClientIP finds a request's client address through trusted proxies and
// turns it into a limiter key. It is safe for concurrent use.
type ClientIP struct {
	trusted   []netip.Prefix
	unix      bool // trust Unix-socket peers
	forwarded bool // read Forwarded, not X-Forwarded-For
	header    string
	v6bits    int
}

// NewClientIP validates cfg and returns a ClientIP.
func NewClientIP(cfg IPConfig) (*ClientIP, error) {
	c := &ClientIP{v6bits: cfg.IPv6Prefix, header: "X-Forwarded-For"}
	if c.v6bits == 0 {
		c.v6bits = 64
	}
	if c.v6bits < 1 || c.v6bits > 128 {
		return nil, errInvalid(fmt.Sprintf("IPv6Prefix %d not in 1..128", cfg.IPv6Prefix))
	}
	switch http.CanonicalHeaderKey(cfg.Header) {
	case "", "X-Forwarded-For":
	case "Forwarded":
		c.forwarded, c.header = true, "Forwarded"
	default:
		return nil, errInvalid("Header " + cfg.Header + " is neither X-Forwarded-For nor Forwarded")
	}
	for _, s := range cfg.TrustedProxies {
		if s == "unix" {
			c.unix = true
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return nil, errInvalid(fmt.Sprintf("trusted proxy %q: %v", s, err))
			}
			p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-96, 0))
		}
		c.trusted = append(c.trusted, p.Masked())
	}
	return c, nil
}

// Addr returns the client's address: RemoteAddr's, or, when RemoteAddr is a
// trusted proxy (or a Unix-socket peer and "unix" is trusted), the
// rightmost untrusted address of the forwarding header (the leftmost valid
// one when every hop is trusted). It returns the zero Addr when no IP
// address is known.
func (c *ClientIP) Addr(r *http.Request) netip.Addr {
	a, _ := c.find(r)
	return a
}

// Key returns the limiter key of a request's client: the IPv4 address, or
// the IPv6 prefix ("2001:db8:1:2::/64"). It falls back to RemoteAddr as it
// is when that is not an IP address (a Unix socket), and allocates nothing
// for an IPv4 client.
func (c *ClientIP) Key(r *http.Request) string {
	a, text := c.find(r)
	if !a.IsValid() {
		return r.RemoteAddr
	}
	if a.Is4() {
		if text != "" {
			return text
		}
		return a.String()
	}
	return netip.PrefixFrom(a, c.v6bits).Masked().String()
}

// TrustedPeer reports whether r came straight from a trusted proxy: its
// RemoteAddr is in TrustedProxies (or a Unix-socket peer, with "unix").
// Headers that such a proxy sets on every request, such as
// X-Request-Start, can then be believed; from any other peer they are
// the client's word.
func (c *ClientIP) TrustedPeer(r *http.Request) bool {
	peer, _ := parseHost(r.RemoteAddr)
	if peer.IsValid() {
		return c.isTrusted(peer)
	}
	return c.unix && unixPeer(r.RemoteAddr)
}

// find returns the client address and, when it is at hand, its canonical
// IPv4 text (a substring of the request, so no allocation).
func (c *ClientIP) find(r *http.Request) (netip.Addr, string) {
	peer, text := parseHost(r.RemoteAddr)
	switch {
	case peer.IsValid() && c.isTrusted(peer):
	case !peer.IsValid() && c.unix && unixPeer(r.RemoteAddr):
	default:
		return peer, text
	}
	vals := r.Header[c.header]
	for i := len(vals) - 1; i >= 0; i-- {
		v := vals[i]
		for v != "" {
			elem := v
			if j := strings.LastIndexByte(v, ','); j >= 0 {
				elem, v = v[j+1:], v[:j]
			} else {
				v = ""
			}
			var a netip.Addr
			var t string
			if c.forwarded {
				a, t = parseForwardedFor(elem)
			} else {
				a, t = parseHost(strings.TrimSpace(elem))
			}
			if !a.IsValid() {
				// a hop we cannot read: the last trusted hop is all we know
				return peer, text
			}
			peer, text = a, t
			if !c.isTrusted(a) {
				return peer, text
			}
		}
	}
	return peer, text
}

// unixPeer reports whether a RemoteAddr that is not an IP address is a
// Unix-socket peer: net/http gives "@" for an unnamed one, "" when the
// listener gave no address, or the peer's socket path.
func unixPeer(remote string) bool {
	return remote == "" || remote[0] == '@' || remote[0] == '/'
}

func (c *ClientIP) isTrusted(a netip.Addr) bool {
	for _, p := range c.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parseHost reads "1.2.3.4", "1.2.3.4:80", "::1", "[::1]:80" or "[::1]".
// The address is unmapped and unzoned; the text is returned only when it is
// the canonical form of an IPv4 address.
func parseHost(s string) (netip.Addr, string) {
	// Pick the parser by shape: a failed parse allocates its error.
	switch {
	case strings.HasPrefix(s, "["):
		if ap, err := netip.ParseAddrPort(s); err == nil {
			return unmap(ap.Addr())
		}
		if len(s) > 2 && s[len(s)-1] == ']' {
			if a, err := netip.ParseAddr(s[1 : len(s)-1]); err == nil && a.Is6() {
				return unmap(a)
			}
		}
	case strings.Count(s, ":") == 1:
		if ap, err := netip.ParseAddrPort(s); err == nil && ap.Addr().Is4() {
			return ap.Addr(), s[:strings.LastIndexByte(s, ':')]
		}
	default:
		if a, err := netip.ParseAddr(s); err == nil {
			if a.Is4() {
				return a, s
			}
			return unmap(a)
		}
	}
	return netip.Addr{}, ""
}

// unmap turns ::ffff:a.b.c.d into a.b.c.d and drops any zone.
func unmap(a netip.Addr) (netip.Addr, string) { return a.Unmap().WithZone(""), "" }

// parseForwardedFor reads the for= parameter of one Forwarded element
// (`for=192.0.2.60;proto=http`, `for="[2001:db8::1]:4711"`). "unknown" and
// obfuscated identifiers give the zero Addr.
func parseForwardedFor(elem string) (netip.Addr, string) {
	for elem != "" {
		pair := elem
		if j := strings.IndexByte(elem, ';'); j >= 0 {
			pair, elem = elem[:j], elem[j+1:]
		} else {
			elem = ""
		}
		pair = strings.TrimSpace(pair)
		if len(pair) < 4 || !strings.EqualFold(pair[:4], "for=") {
			continue
		}
		v := pair[4:]
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			v = v[1 : len(v)-1]
		}
		return parseHost(v)
	}
	return netip.Addr{}, ""
}
