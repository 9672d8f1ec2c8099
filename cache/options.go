package cache

import "time"

// Option adjusts one write (Set, SetMany, GetOrSet's fill).
type Option func(*itemOptions)

type itemOptions struct {
	l1TTL time.Duration
	tags  []string
}

// WithTags attaches tags to the key: InvalidateTags(ctx, tag) removes it
// from L2 and from every instance's L1.
func WithTags(tags ...string) Option {
	return func(o *itemOptions) { o.tags = append(o.tags, tags...) }
}

// WithL1TTL sets the L1 TTL of this write instead of Config.L1TTL (still
// capped by the call's TTL).
func WithL1TTL(d time.Duration) Option {
	return func(o *itemOptions) { o.l1TTL = d }
}

func buildOptions(opts []Option) *itemOptions {
	if len(opts) == 0 {
		return nil
	}
	o := &itemOptions{}
	for _, f := range opts {
		if f != nil {
			f(o)
		}
	}
	return o
}
