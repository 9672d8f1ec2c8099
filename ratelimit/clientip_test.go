package ratelimit_test

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/servio/perfkit/ratelimit"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func request(remote string, hdr ...string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = remote
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Add(hdr[i], hdr[i+1])
	}
	return r
}

func TestClientIPForwardedFor(t *testing.T) {
	t.Parallel()
	c, err := ratelimit.NewClientIP(ratelimit.IPConfig{TrustedProxies: []string{"10.0.0.0/8", "192.0.2.7"}})
	require.NoError(t, err)
	tests := []struct {
		name string
		req  *http.Request
		want string
	}{
		{"no header", request("203.0.113.9:5000"), "203.0.113.9"},
		{"forged header from untrusted peer ignored", request("203.0.113.9:5000", "X-Forwarded-For", "1.1.1.1"), "203.0.113.9"},
		{"trusted proxy honoured", request("10.1.2.3:443", "X-Forwarded-For", "198.51.100.4"), "198.51.100.4"},
		{"forged left part skipped, right-to-left", request("10.1.2.3:443", "X-Forwarded-For", "1.1.1.1, 198.51.100.4"), "198.51.100.4"},
		{"chain of trusted proxies", request("10.1.2.3:443", "X-Forwarded-For", "198.51.100.4, 192.0.2.7, 10.9.9.9"), "198.51.100.4"},
		{"several header lines", request("10.1.2.3:443", "X-Forwarded-For", "1.1.1.1", "X-Forwarded-For", "198.51.100.4, 10.0.0.2"), "198.51.100.4"},
		{"garbage stops at last trusted hop", request("10.1.2.3:443", "X-Forwarded-For", "1.1.1.1, garbage, 10.0.0.2"), "10.0.0.2"},
		{"all trusted gives leftmost", request("10.1.2.3:443", "X-Forwarded-For", "10.0.0.9, 10.0.0.2"), "10.0.0.9"},
		{"port in entry", request("10.1.2.3:443", "X-Forwarded-For", "198.51.100.4:1234"), "198.51.100.4"},
		{"v6 entry grouped", request("10.1.2.3:443", "X-Forwarded-For", "[2001:db8:1:2:3:4:5:6]:99"), "2001:db8:1:2::/64"},
		{"Forwarded ignored when XFF configured", request("10.1.2.3:443", "Forwarded", "for=1.1.1.1"), "10.1.2.3"},
		{"mapped v4 peer", request("[::ffff:203.0.113.9]:5000"), "203.0.113.9"},
		{"unix socket peer", request("@"), "@"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, c.Key(tt.req), tt.name)
	}
}

func TestClientIPForwarded(t *testing.T) {
	t.Parallel()
	c, err := ratelimit.NewClientIP(ratelimit.IPConfig{TrustedProxies: []string{"10.0.0.0/8", "2001:db8:ffff::/48"}, Header: "forwarded"})
	require.NoError(t, err)
	tests := []struct {
		name string
		req  *http.Request
		want string
	}{
		{"untrusted peer", request("203.0.113.9:1", "Forwarded", "for=1.1.1.1"), "203.0.113.9"},
		{"simple", request("10.0.0.1:1", "Forwarded", "for=198.51.100.4;proto=https"), "198.51.100.4"},
		{"quoted v6 with port", request("10.0.0.1:1", "Forwarded", `for="[2001:db8:cafe::17]:4711"`), "2001:db8:cafe::/64"},
		{"case and spaces", request("10.0.0.1:1", "Forwarded", "For=1.1.1.1, proto=http; FOR=198.51.100.4"), "198.51.100.4"},
		{"trusted v6 proxy hop", request("[2001:db8:ffff::1]:1", "Forwarded", "for=198.51.100.4, for=\"[2001:db8:ffff::2]\""), "198.51.100.4"},
		{"unknown stops", request("10.0.0.1:1", "Forwarded", "for=1.1.1.1, for=unknown"), "10.0.0.1"},
		{"obfuscated stops", request("10.0.0.1:1", "Forwarded", "for=_hidden"), "10.0.0.1"},
		{"XFF ignored when Forwarded configured", request("10.0.0.1:1", "X-Forwarded-For", "1.1.1.1"), "10.0.0.1"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, c.Key(tt.req), tt.name)
	}
}

func TestClientIPv6Grouping(t *testing.T) {
	t.Parallel()
	tests := []struct {
		bits int
		addr string
		want string
	}{
		{0, "[2001:db8:aa:bb:1:2:3:4]:1", "2001:db8:aa:bb::/64"},
		{64, "[2001:db8:aa:bb:ffff::1]:1", "2001:db8:aa:bb::/64"},
		{56, "[2001:db8:aa:bbcc:1:2:3:4]:1", "2001:db8:aa:bb00::/56"},
		{56, "[2001:db8:aa:bbff:1:2:3:4]:1", "2001:db8:aa:bb00::/56"},
		{128, "[2001:db8::1]:1", "2001:db8::1/128"},
		{64, "[fe80::1%eth0]:1", "fe80::/64"},
		{64, "192.0.2.1:1", "192.0.2.1"},
	}
	for _, tt := range tests {
		k, err := ratelimit.ClientIPKey(ratelimit.IPConfig{IPv6Prefix: tt.bits})
		require.NoError(t, err)
		assert.Equal(t, tt.want, k(request(tt.addr)), "/%d of %s", tt.bits, tt.addr)
	}
	// two addresses of one /64 share a key; another /64 does not
	assert.Equal(t, ratelimit.RemoteIP(request("[2001:db8::1]:1")), ratelimit.RemoteIP(request("[2001:db8::ffff:1]:2")))
	assert.NotEqual(t, ratelimit.RemoteIP(request("[2001:db8::1]:1")), ratelimit.RemoteIP(request("[2001:db8:0:1::1]:1")))
}

func TestClientIPConfigErrors(t *testing.T) {
	t.Parallel()
	for _, cfg := range []ratelimit.IPConfig{
		{TrustedProxies: []string{"not-an-ip"}},
		{TrustedProxies: []string{"10.0.0.0/33"}},
		{Header: "X-Real-IP"},
		{IPv6Prefix: 129},
		{IPv6Prefix: -1},
	} {
		_, err := ratelimit.NewClientIP(cfg)
		assert.ErrorIs(t, err, ratelimit.ErrInvalidConfig, "%+v", cfg)
	}
}

func TestKeyFuncs(t *testing.T) {
	t.Parallel()
	r := request("192.0.2.1:1", "X-Api-Key", "secret-key")
	k := ratelimit.HeaderKey("x-api-key")(r)
	assert.True(t, strings.HasPrefix(k, "h:"), k)
	assert.NotContains(t, k, "secret")
	assert.Equal(t, "", ratelimit.HeaderKey("X-Other")(r))
	user := func(r *http.Request) string { return r.Header.Get("X-User") }
	first := ratelimit.FirstKey(user, ratelimit.RemoteIP)
	assert.Equal(t, "192.0.2.1", first(r))
	r.Header.Set("X-User", "u42")
	assert.Equal(t, "u42", first(r))
}

// FuzzClientIP: whatever the headers, Key never panics, an untrusted peer's
// key never depends on them, and the key is the peer, an address or a
// prefix.
func FuzzClientIP(f *testing.F) {
	f.Add("10.0.0.1:80", "1.2.3.4, 10.0.0.2", "for=1.2.3.4;proto=http")
	f.Add("203.0.113.1:1", "::1", `for="[::1]:80"`)
	f.Add("[2001:db8::1]:5", "garbage,,, ,", "for=;for=\"")
	f.Add("", "[::ffff:1.2.3.4]:9", "for=unknown, for=_x")
	f.Add("10.0.0.1", "1.2.3.4%eth0", `for="[fe80::1%25eth0]"`)
	xff, err := ratelimit.NewClientIP(ratelimit.IPConfig{TrustedProxies: []string{"10.0.0.0/8", "::1/128"}})
	require.NoError(f, err)
	fwd, err := ratelimit.NewClientIP(ratelimit.IPConfig{TrustedProxies: []string{"10.0.0.0/8", "::1/128"}, Header: "Forwarded", IPv6Prefix: 56})
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, remote, xffVal, fwdVal string) {
		r := request(remote, "X-Forwarded-For", xffVal, "Forwarded", fwdVal)
		bare := request(remote)
		for _, c := range []*ratelimit.ClientIP{xff, fwd} {
			k := c.Key(r)
			peer := c.Addr(bare)
			if !peer.IsValid() {
				assert.Equal(t, remote, k)
				continue
			}
			if !(peer.Unmap().Is4() && strings.HasPrefix(peer.String(), "10.")) && peer != netip.IPv6Loopback() {
				assert.Equal(t, c.Key(bare), k, "untrusted peer %q: headers must not matter", remote)
			}
			if _, err := netip.ParseAddr(k); err != nil {
				_, perr := netip.ParsePrefix(k)
				assert.NoError(t, perr, "key %q is neither address nor prefix", k)
			}
		}
	})
}

func TestClientIPTrustedPeer(t *testing.T) {
	t.Parallel()
	c, err := ratelimit.NewClientIP(ratelimit.IPConfig{TrustedProxies: []string{"10.0.0.0/8", "::1"}})
	require.NoError(t, err)
	for remote, want := range map[string]bool{
		"10.1.2.3:443":           true,
		"[::1]:80":               true,
		"[::ffff:10.0.0.1]:5000": true, // mapped v4
		"203.0.113.9:5000":       false,
		"@":                      false, // a Unix-socket peer, "unix" not trusted
		"garbage":                false,
	} {
		// A forwarding header naming a trusted hop does not make the peer trusted.
		assert.Equal(t, want, c.TrustedPeer(request(remote, "X-Forwarded-For", "10.0.0.2")), remote)
	}
	u, err := ratelimit.NewClientIP(ratelimit.IPConfig{TrustedProxies: []string{"unix"}})
	require.NoError(t, err)
	assert.True(t, u.TrustedPeer(request("@")), "a Unix-socket peer with unix trusted")
	assert.False(t, u.TrustedPeer(request("10.1.2.3:443")))
}
