package cache

// Test access to the replay of invalidations, for the external tests.

// PendingCount returns how many invalidations c still has to replay.
func PendingCount(c *Cache) int { return c.pendingCount() }

// SetReplayHook makes c call h in every replay round that replays keys,
// patterns or tags: before the round's first Redis write (landed false)
// and after its last (landed true). nil removes it.
func SetReplayHook(c *Cache, h func(landed bool, keys, patterns, tags []string)) {
	if h == nil {
		c.pend.hook.Store(nil)
		return
	}
	c.pend.hook.Store(&h)
}
