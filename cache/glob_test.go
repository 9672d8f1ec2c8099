package cache

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestGlobMatch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		pattern, s string
		want       bool
	}{
		{"*", "", true},
		{"*", "anything", true},
		{"menu:*", "menu:1", true},
		{"menu:*", "menus:1", false},
		{"menu:?", "menu:1", true},
		{"menu:?", "menu:12", false},
		{"*:1", "menu:1", true},
		{"m*u:*1", "menu:21", true},
		{"m*u:*1", "menu:12", false},
		{"[mo]*", "order", true},
		{"[^mo]*", "order", false},
		{"[a-c]x", "bx", true},
		{"[c-a]x", "bx", true},
		{"[a-c]x", "dx", false},
		{`a\*b`, "a*b", true},
		{`a\*b`, "axb", false},
		{`[\]]`, "]", true},
		{"[abc", "a", true},
		{`\`, `\`, true},
		{"", "", true},
		{"", "x", false},
	} {
		assert.Equal(t, tc.want, globMatch(tc.pattern, tc.s), "%q ~ %q", tc.pattern, tc.s)
	}
}

func TestEscapePattern(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "plain", EscapePattern("plain"))
	assert.Equal(t, `a\*b\?c\[d\]e\\f`, EscapePattern(`a*b?c[d]e\f`))
}

// FuzzEscapePattern checks that an escaped string matches itself and only
// itself (against itself with one byte changed).
func FuzzEscapePattern(f *testing.F) {
	for _, s := range []string{"", "menu:1", "a*b", "[x]", `\`, "?*[^]-\\"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p := EscapePattern(s)
		if !globMatch(p, s) {
			t.Fatalf("EscapePattern(%q) = %q does not match it", s, p)
		}
		if globMatch(p, s+"x") {
			t.Fatalf("EscapePattern(%q) = %q matches a longer string", s, p)
		}
		_ = globMatch(s, s) // raw patterns never panic
	})
}
