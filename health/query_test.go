package health

import (
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestParseQuery(t *testing.T) {
	t.Parallel()
	tests := []struct {
		raw     string
		verbose bool
		exclude []string
		err     bool
	}{
		{"", false, nil, false},
		{"verbose", true, nil, false},
		{"verbose=1", true, nil, false},
		{"verbose=false", false, nil, false},
		{"verbose=yes", true, nil, false},
		{"exclude=db", false, []string{"db"}, false},
		{"exclude=db,redis&exclude=llm&exclude=db", false, []string{"db", "redis", "llm"}, false},
		{"exclude=+db+,,", false, []string{"db"}, false},
		{"other=1", false, nil, false},
		{"exclude=%zz", false, nil, true},
		{"exclude=" + manyNames(maxExcludes+1), false, nil, true},
	}
	for _, tt := range tests {
		q, err := parseQuery(tt.raw)
		assert.Equal(t, tt.err, err != nil, "%q: error %v", tt.raw, err)
		assert.Equal(t, tt.verbose, q.verbose, "%q verbose", tt.raw)
		assert.Equal(t, tt.exclude, q.exclude, "%q exclude", tt.raw)
	}
}

func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{"", "verbose", "exclude=a,b&exclude=c", "verbose=0&exclude=%20x%20", "exclude=%zz", ";;&&=="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := parseQuery(raw)
		if err != nil {
			return
		}
		if len(q.exclude) > maxExcludes {
			t.Fatalf("%d excludes", len(q.exclude))
		}
		seen := map[string]bool{}
		for _, name := range q.exclude {
			if name == "" || strings.Contains(name, ",") || strings.TrimSpace(name) != name || seen[name] {
				t.Fatalf("bad exclude name %q in %q", name, q.exclude)
			}
			seen[name] = true
			if !q.excluded(name) {
				t.Fatalf("%q listed but not excluded", name)
			}
		}
	})
}

func manyNames(n int) string {
	names := make([]string, n)
	for i := range names {
		names[i] = "c" + strconv.Itoa(i)
	}
	return strings.Join(names, ",")
}
