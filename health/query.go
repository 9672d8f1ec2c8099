package health

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// query holds the options of a probe's query string.
type query struct {
	verbose bool
	exclude []string
}

func (q query) excluded(name string) bool {
	return len(q.exclude) > 0 && slices.Contains(q.exclude, name)
}

// maxExcludes bounds the work a hostile query string can cause.
const maxExcludes = 64

// parseQuery parses ?verbose and ?exclude=a&exclude=b,c in the Kubernetes
// style. verbose without a value (or any value but a false boolean) turns
// verbose output on; empty exclude names are ignored; other parameters are
// ignored.
func parseQuery(raw string) (query, error) {
	var q query
	if raw == "" {
		return q, nil
	}
	vals, err := url.ParseQuery(raw)
	if err != nil {
		return q, fmt.Errorf("health: bad query: %w", err)
	}
	if v, ok := vals["verbose"]; ok {
		q.verbose = true
		if len(v) > 0 && v[0] != "" {
			if b, err := strconv.ParseBool(v[0]); err == nil {
				q.verbose = b
			}
		}
	}
	for _, v := range vals["exclude"] {
		for name := range strings.SplitSeq(v, ",") {
			name = strings.TrimSpace(name)
			if name == "" || slices.Contains(q.exclude, name) {
				continue
			}
			if len(q.exclude) == maxExcludes {
				return query{}, fmt.Errorf("health: bad query: more than %d exclude names", maxExcludes)
			}
			q.exclude = append(q.exclude, name)
		}
	}
	return q, nil
}
