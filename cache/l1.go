package cache

import (
	"slices"
	"time"
)

// entry is what L1 holds for a key: the decoded value (or a cached error)
// and what is needed to invalidate it.
type entry struct {
	key   string
	val   any
	err   error    // non-nil for a negative entry
	epoch uint64   // flushEpoch at fill time; older epochs are flushed
	fresh int64    // Unix ns after which the value is stale; 0: fresh until it expires
	tags  []string // tags given at Set, for local tag invalidation
}

// stale reports whether e is past its fresh deadline (stale-while-revalidate).
func (c *Cache) stale(e *entry) bool {
	return e.fresh != 0 && c.cfg.Now().UnixNano() > e.fresh
}

// Test hooks (nil outside tests): testHookBeforePut runs in putL1 after
// the snapshot check, before the L1 write; testHookBeforeSettle runs in
// settleL1 once the write is applied, before the snapshot is checked again.
var testHookBeforePut, testHookBeforeSettle func(key string)

// fillL1 puts e in L1 for ttl unless key was invalidated since snap was
// taken, and makes it visible to the next Get (ristretto applies new keys
// asynchronously).
func (c *Cache) fillL1(e *entry, ttl time.Duration, snap uint64) {
	// A flush or Close holds l1mu: skip the fill rather than wait for it.
	if !c.l1mu.TryRLock() {
		return
	}
	defer c.l1mu.RUnlock()
	if c.putL1(e, ttl, snap) {
		c.settleL1(e.key, snap)
	}
}

// putL1 queues e in L1 unless key was invalidated since snap. It reports
// whether the write was queued; settleL1 must follow. The caller holds
// l1mu read-locked.
func (c *Cache) putL1(e *entry, ttl time.Duration, snap uint64) bool {
	if ttl <= 0 || c.closed.Load() || c.snapshot(e.key) != snap {
		return false
	}
	if testHookBeforePut != nil {
		testHookBeforePut(e.key)
	}
	e.epoch = c.flushEpoch.Load()
	if !c.l1.SetWithTTL(e.key, e, 1, ttl) {
		c.st.l1Drops.Add(1)
		return false
	}
	return true
}

// settleL1 waits for queued L1 writes and undoes the write of key if an
// invalidation ran between putL1's check and its Set.
func (c *Cache) settleL1(key string, snap uint64) {
	c.l1.Wait()
	if testHookBeforeSettle != nil {
		testHookBeforeSettle(key)
	}
	if c.snapshot(key) != snap {
		c.l1.Del(key)
	}
}

// settleMany is settleL1 for a batch: it waits once for the L1 writes of
// keys[i] for each i in queued, then undoes those whose key was
// invalidated since snaps[i].
func (c *Cache) settleMany(keys []string, snaps []uint64, queued []int) {
	if len(queued) == 0 {
		return
	}
	c.l1.Wait()
	for _, i := range queued {
		if c.snapshot(keys[i]) != snaps[i] {
			c.l1.Del(keys[i])
		}
	}
}

// newEntry builds the L1 entry of a value for the TTL l1 (with the stale
// window when StaleFor is set, so the stored TTL is l1+StaleFor).
func (c *Cache) newEntry(key string, val any, err error, l1 time.Duration, o *itemOptions) (*entry, time.Duration) {
	e := &entry{key: key, val: val, err: err}
	if o != nil {
		e.tags = o.tags
	}
	if c.cfg.StaleFor > 0 && err == nil {
		e.fresh = c.cfg.Now().Add(l1).UnixNano()
		l1 += c.cfg.StaleFor
	}
	return e, l1
}

// delLocal removes keys from this instance's L1: it bumps their
// generations (a fill that read before this is refused or undone, see
// fillL1), detaches their in-flight loads, waits for the fills already
// past their check and deletes their entries.
func (c *Cache) delLocal(keys ...string) {
	for _, k := range keys {
		c.bumpKey(k)
	}
	c.forgetKeys(keys)
	c.settleFills()
	c.delL1(keys)
}

// settleFills returns once every L1 fill that passed its snapshot check
// before the call has settled. A fill holds l1mu read-locked from its
// check to its settle, which undoes the fill when the key was invalidated
// meanwhile; so once an invalidation has bumped what the snapshots read,
// taking the write lock once is a barrier: after it, no value of a load
// that began before the invalidation can be written to L1 or stay there.
// Without it, a fill checked just before the bump wrote its value after
// the invalidation returned (or, queued in ristretto, was invisible to a
// pattern or tag invalidation's iteration), and reads saw the old value
// until the fill undid itself.
func (c *Cache) settleFills() {
	c.l1mu.Lock()
	//lint:ignore SA2001 an empty critical section is the barrier
	c.l1mu.Unlock()
}

// delL1 deletes keys' L1 entries. It waits for a flush or Close that holds
// l1mu (no L1 write is in flight then; a flush empties L1 anyway).
func (c *Cache) delL1(keys []string) {
	c.l1mu.RLock()
	defer c.l1mu.RUnlock()
	if c.closed.Load() {
		return
	}
	for _, k := range keys {
		c.l1.Del(k)
	}
}

// A local write of keys (Set, SetMany, Delete, and the replay of a
// failed one) runs in three steps, so that no read on this instance can
// see the old value once it returned (read-your-writes):
//
//  1. beginWrite: delLocal — later fills of what a read got before are
//     refused, and calls that could share such a read are detached;
//  2. the Redis write;
//  3. endWrite: delLocal again — a read that began during step 2 may have
//     read the old L2 value; its fill is refused (its snapshot predates
//     this bump) or, if already in L1, deleted, and later callers do not
//     join its call. A Set then puts its own value in L1, but only if no
//     other invalidation of the key (a message from another instance, a
//     pattern, a flush) came in since step 1: that one may be newer in
//     Redis than this write.
type writeMark struct {
	keys  []string
	gens  []uint64 // the generation bucket of each key after step 1
	inv   uint64
	flush uint64
}

func (c *Cache) beginWrite(keys []string) writeMark {
	c.delLocal(keys...)
	w := writeMark{keys: keys, gens: make([]uint64, len(keys)), inv: c.inv.Load(), flush: c.flushEpoch.Load()}
	for i, k := range keys {
		w.gens[i] = c.gens[c.bucket(k)].Load()
	}
	return w
}

// endWrite is step 3. When entries is not nil (a Set: entries[i] is the
// new value of keys[i], ttls[i] its L1 TTL) the values are put in L1 for
// the keys no other invalidation touched since beginWrite.
func (c *Cache) endWrite(w writeMark, entries []*entry, ttls []time.Duration) {
	own := make([]bool, len(w.keys)) // the key's bucket moved only by this write
	if entries != nil {
		var casDone []int // buckets this write moved, to share the answer
		var casOK []bool
		for i, k := range w.keys {
			b := c.bucket(k)
			if j := slices.Index(casDone, b); j >= 0 {
				own[i] = casOK[j]
				continue
			}
			ok := c.gens[b].CompareAndSwap(w.gens[i], w.gens[i]+1)
			casDone, casOK = append(casDone, b), append(casOK, ok)
			own[i] = ok
		}
	}
	quiet := c.inv.Load() == w.inv && c.flushEpoch.Load() == w.flush
	for i, k := range w.keys {
		if !own[i] {
			c.bumpKey(k)
		}
	}
	c.forgetKeys(w.keys)
	c.settleFills()
	c.delL1(w.keys)
	if entries == nil || !quiet {
		return
	}
	// Wait out a flush or another write's barrier rather than skip: the
	// snapshots below are taken under the lock, so a flush that ran
	// meanwhile is seen and the value goes in after it.
	c.l1mu.RLock()
	defer c.l1mu.RUnlock()
	snaps := make([]uint64, 0, len(w.keys))
	queued := make([]int, 0, len(w.keys))
	for i, k := range w.keys {
		snaps = append(snaps, c.snapshot(k))
		if own[i] && c.putL1(entries[i], ttls[i], snaps[i]) {
			queued = append(queued, i)
		}
	}
	c.settleMany(w.keys, snaps, queued)
}

// delLocalWhere removes the L1 entries for which match is true, and
// detaches the in-flight loads for which forget is true.
func (c *Cache) delLocalWhere(match func(*entry) bool, forget func(string, *call) bool) int {
	c.inv.Add(1)
	c.forgetWhere(forget)
	c.settleFills() // fills checked before the bump are now applied or undone
	var keys []string
	c.l1.IterValues(func(e *entry) bool {
		if match(e) {
			keys = append(keys, e.key)
		}
		return false
	})
	c.delLocal(keys...)
	return len(keys)
}

// delLocalPattern removes the L1 keys matching a Redis glob pattern.
func (c *Cache) delLocalPattern(pattern string) int {
	return c.delLocalWhere(func(e *entry) bool { return globMatch(pattern, e.key) },
		func(k string, _ *call) bool { return globMatch(pattern, k) })
}

// delLocalTags removes the L1 entries carrying any of tags.
func (c *Cache) delLocalTags(tags []string) int {
	anyOf := func(have []string) bool {
		for _, t := range have {
			if slices.Contains(tags, t) {
				return true
			}
		}
		return false
	}
	return c.delLocalWhere(func(e *entry) bool { return anyOf(e.tags) },
		func(_ string, cl *call) bool { return anyOf(cl.tags) })
}

// flushLocal empties L1 at once: entries of an older epoch read as misses,
// then the memory is released.
func (c *Cache) flushLocal() {
	c.flushEpoch.Add(1)
	c.inv.Add(1)
	c.forgetAll()
	c.st.invalidations.Add(1) // L1 reads miss from here on; Clear frees the memory
	c.l1mu.Lock()
	defer c.l1mu.Unlock()
	if !c.closed.Load() {
		c.l1.Clear()
	}
}
