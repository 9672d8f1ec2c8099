package cache_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/servio/perfkit"
	"github.com/servio/perfkit/cache"
	"github.com/servio/perfkit/internal/testenv"
)

// The history checker: several Cache instances on one private Redis,
// workers doing random Set/Delete/GetOrSet/Get/GetMany/SetMany/
// InvalidateTags/InvalidatePattern/Flush against a versioned source of
// truth, with injected delays (hooks that hold Redis calls, a slow codec, a
// slow loader) and faults (Redis killed and restarted, paused, the pub/sub
// connections killed with CLIENT KILL TYPE pubsub). Every operation is
// recorded; the history is then checked, exactly, against the package's
// consistency contract:
//
//   - RYW: a read on instance I invoked after a write of the key on I
//     returned nil never returns a version older than that write's.
//   - bound: a read on another instance invoked more than crossBound after
//     the write returned nil never returns an older version, unless a
//     fault overlapped that interval (then L1TTL bounds it; see final).
//   - final (no lost write, no stale resurrection, nothing stale after
//     Redis returns): once the workers stopped, Redis is healthy and the
//     instances replayed their pending invalidations (waited for up to
//     settle), every instance serves, for every key, the current version
//     or a miss; L2 holds nothing older than the truth, and holds the
//     last Set's version unless a fault, or the replay of an invalidation
//     that had returned ErrUnavailable, came after that Set began (the
//     contract lets such a replay remove it; see final).
//
// Writers of a key are serialized (like a row lock in the database), so
// each key's truth is a sequence of versions; reads are not.
//
// The normal test command runs fixed seeds for a few seconds each;
// PERFKIT_CACHE_CHECK_DURATION=10m runs one random seed that long
// (PERFKIT_CACHE_CHECK_SEED picks it). A failure prints that random seed and the
// offending history.

const (
	ckKeys      = 4
	ckInstances = 3
	ckWorkers   = 6
)

// crossBound is the cross-instance staleness the checker allows while
// Redis is healthy: the pub/sub delivery on a loaded 2-core machine under
// -race (the production figure is measured in TestCrossInstanceInvalidation
// and RELIABILITY.md).
const crossBound = time.Second

var ckPatterns = map[string][]int{"k*": {0, 1, 2, 3}, "k1": {1}, "k[23]": {2, 3}}

func ckKey(i int) string { return fmt.Sprint("k", i) }
func ckTag(i int) string { return fmt.Sprint("t", i%2) }

type ckOp struct {
	inst     int
	kind     string
	keys     []int
	vers     []int64 // versions written (writes) or read (reads; -1 = miss)
	inv, ret int64   // ns since start
	err      error
}

func (o ckOp) String() string {
	e := ""
	if o.err != nil {
		e = " err=" + o.err.Error()
	}
	return fmt.Sprintf("[%9.3fms → %9.3fms] inst%d %-17s keys=%v vers=%v%s",
		float64(o.inv)/1e6, float64(o.ret)/1e6, o.inst, o.kind, o.keys, o.vers, e)
}

func (o ckOp) write() bool {
	switch o.kind {
	case "Set", "SetMany", "Delete", "InvalidateTags", "InvalidatePattern":
		return true
	}
	return false
}

type checker struct {
	t     testing.TB
	seed  uint64
	start time.Time

	locks [ckKeys]sync.Mutex
	db    [ckKeys]atomic.Int64 // the source of truth: a version per key

	mu     sync.Mutex
	hist   []ckOp
	faults [][2]int64 // [start, end] of each fault
	nFault map[string]int

	// replayEnd[k] is when the last replay round covering key k ended
	// (ns since start; 0: none): its tombstones or UNLINKs may have landed
	// until then; inflight[k] counts those running (see final).
	rmu       sync.Mutex
	replayEnd [ckKeys]int64
	inflight  [ckKeys]int

	loadDelay, codecDelay, hookDelay atomic.Bool
	cluster                          bool
}

func (ck *checker) now() int64 { return int64(time.Since(ck.start)) }

func (ck *checker) record(o ckOp) {
	ck.mu.Lock()
	ck.hist = append(ck.hist, o)
	ck.mu.Unlock()
}

// delayHook sleeps a random while before or after some Redis calls: a
// held command lets other operations overtake it at every step.
type delayHook struct {
	ck *checker
	r  func() float64
}

func (h *delayHook) pause() {
	if h.ck.hookDelay.Load() && h.r() < 0.2 {
		time.Sleep(time.Duration(h.r() * float64(2*time.Millisecond)))
	}
}
func (h *delayHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *delayHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.pause()
		err := next(ctx, cmd)
		h.pause()
		return err
	}
}
func (h *delayHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.pause()
		err := next(ctx, cmds)
		h.pause()
		return err
	}
}

// slowCodec is JSON that sometimes sleeps while encoding or decoding.
type slowCodec struct {
	cache.JSON
	ck *checker
}

func (s slowCodec) nap() {
	if s.ck.codecDelay.Load() && rand.Float64() < 0.1 {
		time.Sleep(time.Duration(rand.Int64N(int64(time.Millisecond))))
	}
}
func (s slowCodec) Marshal(v any) ([]byte, error)   { s.nap(); return s.JSON.Marshal(v) }
func (s slowCodec) Unmarshal(b []byte, v any) error { s.nap(); return s.JSON.Unmarshal(b, v) }
func (s slowCodec) ID() byte                        { return s.JSON.ID() }
func lockedRand(mu *sync.Mutex, r *rand.Rand) func() float64 {
	return func() float64 { mu.Lock(); defer mu.Unlock(); return r.Float64() }
}

func TestHistoryChecker(t *testing.T) {
	if d := os.Getenv("PERFKIT_CACHE_CHECK_DURATION"); d != "" {
		dur, err := time.ParseDuration(d)
		if err != nil {
			t.Fatalf("PERFKIT_CACHE_CHECK_DURATION: %v", err)
		}
		seed := uint64(time.Now().UnixNano())
		if s := os.Getenv("PERFKIT_CACHE_CHECK_SEED"); s != "" {
			_, _ = fmt.Sscan(s, &seed)
		}
		if os.Getenv("PERFKIT_CACHE_CHECK_CLUSTER") != "" {
			runChecker(t, seed, dur, true, true)
		} else {
			runChecker(t, seed, dur, true, false)
		}
		return
	}
	for _, seed := range []uint64{1, 2} {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			runChecker(t, seed, 5*time.Second, true, false)
		})
	}
	t.Run("cluster/seed=3", func(t *testing.T) {
		runChecker(t, 3, 5*time.Second, true, true)
	})
}

// runChecker runs one history. On a cluster (3 masters, no replicas) the
// faults kill and restart one node.
func runChecker(t *testing.T, seed uint64, dur time.Duration, faults, cluster bool) {
	t.Logf("seed %d, %v, faults %v, cluster %v (rerun: PERFKIT_CACHE_CHECK_DURATION=%v PERFKIT_CACHE_CHECK_SEED=%d PERFKIT_CACHE_CHECK_CLUSTER=%v)",
		seed, dur, faults, cluster, dur, seed, cluster)
	var (
		srv *testenv.RedisServer
		cl  *testenv.Cluster
	)
	if cluster {
		cl = testenv.RedisCluster(t)
	} else {
		srv = testenv.StartRedis(t)
	}
	ck := &checker{t: t, seed: seed, start: time.Now(), nFault: map[string]int{}, cluster: cluster}
	ck.loadDelay.Store(true)
	ck.codecDelay.Store(true)
	ck.hookDelay.Store(true)
	var rmu sync.Mutex
	master := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	newClient := func() redis.UniversalClient {
		var c redis.UniversalClient
		if cluster {
			opt := perfkit.RedisClusterOptions(cl.Addrs...)
			opt.MaxRetries = 1 // one node-level retry too, as for a single server
			c = redis.NewClusterClient(opt)
		} else {
			opt, err := perfkit.RedisOptions("redis://" + srv.Addr)
			if err != nil {
				t.Fatal(err)
			}
			c = redis.NewClient(opt)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	cfg := cache.Config{
		L1TTL: time.Minute, TTL: 5 * time.Minute, TTLJitter: -1,
		RedisTimeout: 500 * time.Millisecond, LoadTimeout: 2 * time.Second,
		BreakerConsecutiveFailures: 3, BreakerOpenTimeout: 100 * time.Millisecond,
		Codec: slowCodec{ck: ck}, Logger: quiet,
	}
	insts := make([]*cache.Cache, ckInstances)
	for i := range insts {
		rc := newClient()
		rc.AddHook(&delayHook{ck: ck, r: lockedRand(&rmu, rand.New(rand.NewPCG(seed+uint64(i), 7)))})
		c := cfg
		c.Redis = rc
		c.Name = fmt.Sprint("inst", i)
		var err error
		if insts[i], err = cache.New(c); err != nil {
			t.Fatal(err)
		}
		cache.SetReplayHook(insts[i], ck.replayed)
		t.Cleanup(func() { _ = insts[i].Close() })
	}
	for i := range insts[1:] {
		waitSubscribed(t, insts[0], insts[i+1])
	}
	admin := newClient()

	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	var wg sync.WaitGroup
	for w := range ckWorkers {
		r := rand.New(rand.NewPCG(master.Uint64(), uint64(w)))
		wg.Go(func() {
			for ctx.Err() == nil {
				ck.step(r, insts)
			}
		})
	}
	if faults {
		r := rand.New(rand.NewPCG(master.Uint64(), 99))
		wg.Go(func() { ck.injectFaults(ctx, r, srv, cl, admin) })
	}
	wg.Wait()

	// Quiesce: no delays, Redis healthy; the replays and resubscriptions
	// settle. Then the final state must be current everywhere.
	ck.loadDelay.Store(false)
	ck.codecDelay.Store(false)
	ck.hookDelay.Store(false)
	violations := ck.check()
	violations = append(violations, ck.final(insts, newClient())...)
	writes, reads := 0, 0
	for _, o := range ck.hist {
		if o.write() {
			writes++
		} else {
			reads++
		}
	}
	rules := map[string]int{}
	for _, v := range violations {
		if _, r, ok := strings.Cut(v, "rule "); ok {
			rules[strings.Fields(r)[0]]++
		}
	}
	t.Logf("seed %d: %d operations (%d writes, %d reads), faults %v, violations %d %v",
		seed, len(ck.hist), writes, reads, ck.nFault, len(violations), rules)
	if len(violations) > 0 {
		for _, v := range violations[:min(len(violations), 5)] {
			t.Error(v)
		}
		t.Fatalf("seed %d: %d violations of the consistency contract (rerun with PERFKIT_CACHE_CHECK_SEED=%d; interleavings are timing-dependent)",
			seed, len(violations), seed)
	}
}

// step runs one random operation on a random instance.
func (ck *checker) step(r *rand.Rand, insts []*cache.Cache) {
	ctx := context.Background()
	ii := r.IntN(len(insts))
	c := insts[ii]
	k := r.IntN(ckKeys)
	load := func(k int) func(context.Context) (int64, error) {
		return func(context.Context) (int64, error) {
			v := ck.db[k].Load()
			if ck.loadDelay.Load() && r2() < 0.3 {
				time.Sleep(time.Duration(r2() * float64(3*time.Millisecond)))
			}
			return v, nil
		}
	}
	op := ckOp{inst: ii, inv: ck.now()}
	switch p := r.IntN(100); {
	case p < 30:
		op.kind, op.keys = "GetOrSet", []int{k}
		v, err := cache.GetOrSet(ctx, c, ckKey(k), 0, load(k), cache.WithTags(ckTag(k)))
		op.vers, op.err = []int64{v}, err
	case p < 45:
		op.kind, op.keys = "Get", []int{k}
		v, err := cache.Get[int64](ctx, c, ckKey(k))
		if err != nil {
			v, err = -1, nil
		}
		op.vers, op.err = []int64{v}, err
	case p < 55:
		op.kind = "GetMany"
		keys := []string{}
		for i := range ckKeys {
			if r.IntN(2) == 0 {
				op.keys = append(op.keys, i)
				keys = append(keys, ckKey(i))
			}
		}
		got, err := cache.GetMany[int64](ctx, c, keys)
		op.err = err
		for _, i := range op.keys {
			v, ok := got[ckKey(i)]
			if !ok {
				v = -1
			}
			op.vers = append(op.vers, v)
		}
	case p < 70:
		op.kind, op.keys = "Set", []int{k}
		ck.writeKeys(&op, func() error {
			return cache.Set(ctx, c, ckKey(k), op.vers[0], 0, cache.WithTags(ckTag(k)))
		})
	case p < 78:
		op.kind = "SetMany" // keys of one tag
		t := r.IntN(2)
		for i := t; i < ckKeys; i += 2 {
			op.keys = append(op.keys, i)
		}
		ck.writeKeys(&op, func() error {
			items := map[string]int64{}
			for j, i := range op.keys {
				items[ckKey(i)] = op.vers[j]
			}
			return cache.SetMany(ctx, c, items, 0, cache.WithTags(ckTag(t)))
		})
	case p < 88:
		op.kind, op.keys = "Delete", []int{k}
		ck.writeKeys(&op, func() error { return c.Delete(ctx, ckKey(k)) })
	case p < 93:
		op.kind = "InvalidateTags"
		t := r.IntN(2)
		for i := t; i < ckKeys; i += 2 {
			op.keys = append(op.keys, i)
		}
		ck.writeKeys(&op, func() error { _, err := c.InvalidateTags(ctx, ckTag(t)); return err })
	case p < 98:
		pats := []string{"k*", "k1", "k[23]"}
		pat := pats[r.IntN(len(pats))]
		op.kind, op.keys = "InvalidatePattern", ckPatterns[pat]
		ck.writeKeys(&op, func() error { _, err := c.InvalidatePattern(ctx, pat); return err })
	default:
		op.kind = "Flush"
		op.err = c.Flush(ctx)
	}
	if op.ret == 0 {
		op.ret = ck.now()
	}
	ck.record(op)
}

func r2() float64 { return rand.Float64() }

// writeKeys locks op.keys, moves each key's truth to a new version (the
// source of truth is updated first, as a service writes its database and
// then the cache) and runs the cache write.
func (ck *checker) writeKeys(op *ckOp, write func() error) {
	slices.Sort(op.keys)
	for _, k := range op.keys {
		ck.locks[k].Lock()
	}
	op.inv = ck.now()
	for _, k := range op.keys {
		op.vers = append(op.vers, ck.db[k].Add(1))
	}
	op.err = write()
	op.ret = ck.now()
	for _, k := range op.keys {
		ck.locks[k].Unlock()
	}
}

// injectFaults kills, pauses or cuts the pub/sub of Redis now and then.
func (ck *checker) injectFaults(ctx context.Context, r *rand.Rand, srv *testenv.RedisServer, cl *testenv.Cluster, admin redis.UniversalClient) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Duration(300+r.IntN(700)) * time.Millisecond):
		}
		start := ck.now()
		var kind string
		switch n := r.IntN(3); {
		case cl != nil:
			kind = "cluster-node-kill+restart"
			cl.Servers[n].Kill()
			time.Sleep(time.Duration(20+r.IntN(200)) * time.Millisecond)
			cl.Servers[n].Restart()
			time.Sleep(time.Second) // the node rejoins; its slots serve again
		case n == 0:
			kind = "kill+restart"
			srv.Kill()
			time.Sleep(time.Duration(20+r.IntN(200)) * time.Millisecond)
			srv.Restart()
		case n == 1:
			kind = "pause"
			srv.Pause()
			time.Sleep(time.Duration(20+r.IntN(300)) * time.Millisecond)
			srv.Resume()
		default:
			kind = "client-kill-pubsub"
			kctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = admin.Do(kctx, "CLIENT", "KILL", "TYPE", "pubsub").Err()
			cancel()
		}
		// Recovery: breakers (BreakerOpenTimeout), resubscription, replays.
		time.Sleep(300 * time.Millisecond)
		ck.mu.Lock()
		ck.faults = append(ck.faults, [2]int64{start, ck.now()})
		ck.nFault[kind]++
		ck.mu.Unlock()
	}
}

// replayed records a replay round of an instance's pending invalidations
// when it starts and when it ends: the keys it may remove from L2 while
// it runs.
func (ck *checker) replayed(landed bool, keys, patterns, tags []string) {
	now := ck.now()
	var covered [ckKeys]bool
	for _, k := range keys {
		var i int
		if _, err := fmt.Sscanf(k, "k%d", &i); err == nil && i >= 0 && i < ckKeys {
			covered[i] = true
		}
	}
	for _, p := range patterns {
		for _, i := range ckPatterns[p] {
			covered[i] = true
		}
	}
	for _, tg := range tags {
		for i := range ckKeys {
			covered[i] = covered[i] || ckTag(i) == tg
		}
	}
	ck.rmu.Lock()
	defer ck.rmu.Unlock()
	for i, c := range covered {
		switch {
		case !c:
		case landed:
			ck.inflight[i]--
			ck.replayEnd[i] = max(ck.replayEnd[i], now)
		default:
			ck.inflight[i]++
		}
	}
}

// inFault reports whether a fault overlapped [from, to]. Faults are
// recorded in order and do not overlap.
func (ck *checker) inFault(from, to int64) bool {
	n := sort.Search(len(ck.faults), func(i int) bool { return ck.faults[i][0] > to })
	return n > 0 && ck.faults[n-1][1] >= from
}

// check applies the RYW and bound rules to the history. Writers of a key
// are serialized, so a key's successful writes in return order are in
// version order: for a read, the write to compare with is found by binary
// search (the latest one that returned before the read began, overall
// and by the read's instance).
func (ck *checker) check() []string {
	ck.mu.Lock()
	defer ck.mu.Unlock()
	type w struct {
		op  *ckOp
		ver int64
	}
	var all [ckKeys][]w
	var mine [ckInstances][ckKeys][]w
	for i := range ck.hist {
		o := &ck.hist[i]
		if !o.write() || o.err != nil {
			continue
		}
		for j, k := range o.keys {
			all[k] = append(all[k], w{o, o.vers[j]})
			mine[o.inst][k] = append(mine[o.inst][k], w{o, o.vers[j]})
		}
	}
	for k := range ckKeys {
		slices.SortFunc(all[k], func(a, b w) int { return int(a.ver - b.ver) })
		for i := range ckInstances {
			slices.SortFunc(mine[i][k], func(a, b w) int { return int(a.ver - b.ver) })
		}
	}
	// lastBefore returns the write of ws with the highest version among
	// those that returned before t (ret grows with the version).
	lastBefore := func(ws []w, t int64) *w {
		n := sort.Search(len(ws), func(i int) bool { return ws[i].op.ret >= t })
		if n == 0 {
			return nil
		}
		return &ws[n-1]
	}
	var out []string
	maxLag := int64(0)
	for i := range ck.hist {
		r := &ck.hist[i]
		if r.write() || r.kind == "Flush" || r.err != nil {
			continue
		}
		for j, k := range r.keys {
			got := r.vers[j]
			if got < 0 {
				continue // a miss is never stale
			}
			if wr := lastBefore(mine[r.inst][k], r.inv); wr != nil && wr.ver > got {
				out = append(out, ck.explain("RYW", r, wr.op, k))
				continue
			}
			if wr := lastBefore(all[k], r.inv-int64(crossBound)); wr != nil && wr.ver > got && !ck.inFault(wr.op.ret, r.inv) {
				out = append(out, ck.explain("bound", r, wr.op, k))
				continue
			}
			// The staleness of this read: since the first newer write returned.
			n := sort.Search(len(all[k]), func(i int) bool { return all[k][i].ver > got })
			if n < len(all[k]) && all[k][n].op.ret < r.inv && !ck.inFault(all[k][n].op.ret, r.inv) {
				maxLag = max(maxLag, r.inv-all[k][n].op.ret)
			}
		}
	}
	ck.t.Logf("largest cross-instance staleness seen outside faults: %.3f ms", float64(maxLag)/1e6)
	return out
}

// explain prints a violation with the history of key around it.
func (ck *checker) explain(rule string, r, w *ckOp, k int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d: rule %s broken on %s:\n  read:  %v\n  write: %v\n  history of %s:\n",
		ck.seed, rule, ckKey(k), r, w, ckKey(k))
	var ops []ckOp
	for _, o := range ck.hist {
		if o.ret >= w.inv-int64(20*time.Millisecond) && o.inv <= r.ret && (o.kind == "Flush" || slices.Contains(o.keys, k)) {
			ops = append(ops, o)
		}
	}
	sort.Slice(ops, func(i, j int) bool { return ops[i].inv < ops[j].inv })
	for _, o := range ops[:min(len(ops), 60)] {
		fmt.Fprintf(&b, "    %v\n", o)
	}
	for _, f := range ck.faults {
		if f[0] <= r.ret && w.inv <= f[1] {
			fmt.Fprintf(&b, "  fault [%.3fms, %.3fms]\n", float64(f[0])/1e6, float64(f[1])/1e6)
		}
	}
	return b.String()
}

// final checks the state once everything settled (the instances
// replayed their pending invalidations: waited for up to settle, then a
// note is logged): each instance serves the current version or a miss
// (Get), L2 holds nothing older than the truth, and no write was lost.
func (ck *checker) final(insts []*cache.Cache, rc redis.UniversalClient) []string {
	ctx := context.Background()
	var out []string
	deadline := time.Now().Add(settle)
	for {
		left := 0
		for _, c := range insts {
			left += cache.PendingCount(c)
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			// Not a violation in itself (the contract replays them until
			// Redis takes them); the rules below see what they left.
			ck.t.Logf("%d invalidations still not replayed %v after the run", left, settle)
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	deadline = time.Now().Add(settle)
	for {
		out = out[:0]
		for i, c := range insts {
			for k := range ckKeys {
				cur := ck.db[k].Load()
				v, err := cache.Get[int64](ctx, c, ckKey(k))
				if err == nil && v != cur {
					out = append(out, fmt.Sprintf("seed %d: rule final: inst%d serves %s=%d, truth %d (stale after the run)", ck.seed, i, ckKey(k), v, cur))
				}
			}
		}
		if len(out) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A read that fails reads as a miss: a generous RedisTimeout keeps a
	// slow round trip on a loaded machine from passing for a lost write.
	l2, err := cache.New(cache.Config{Redis: rc, DisablePubSub: true, Codec: slowCodec{ck: ck}, Logger: quiet,
		RedisTimeout: 5 * time.Second})
	if err != nil {
		return append(out, err.Error())
	}
	defer l2.Close()
	for k := range ckKeys {
		cur := ck.db[k].Load()
		if v, err := cache.Get[int64](ctx, l2, ckKey(k)); err == nil && v != cur {
			out = append(out, fmt.Sprintf("seed %d: rule final-L2: L2 holds %s=%d, truth %d", ck.seed, ckKey(k), v, cur))
		}
	}
	// No lost write: the last write of each key, if a Set or SetMany that
	// returned nil with no fault and no replay covering the key after it
	// began, is in L2. A replay is the background part of an invalidation
	// (or of a write) that returned ErrUnavailable: the contract (doc.go,
	// "No lost write" and "Outage") lets it land after a later write of
	// its keys on another instance — only a write of the key on the
	// replaying instance cancels a key's replay — and a replayed pattern
	// or tag invalidation removes every key that matches it by then. So
	// such a write may leave L2 (a miss, never an older value: the rules
	// above check that), and is not lost.
	ck.mu.Lock()
	defer ck.mu.Unlock()
	ck.rmu.Lock()
	defer ck.rmu.Unlock()
	checked, afterFault, afterReplay := 0, 0, 0
	for k := range ckKeys {
		var last *ckOp
		ver := int64(0)
		for i := range ck.hist {
			o := &ck.hist[i]
			if j := slices.Index(o.keys, k); o.write() && j >= 0 && (last == nil || o.vers[j] > ver) {
				last, ver = o, o.vers[j]
			}
		}
		switch {
		case last == nil || last.err != nil || (last.kind != "Set" && last.kind != "SetMany"):
			continue
		case ck.inFault(last.inv, 1<<62):
			afterFault++
			continue
		}
		v, err := cache.Get[int64](ctx, l2, ckKey(k))
		// rmu is held: a replay round that removed the value before this
		// read has ended (replayEnd) or is still running (inflight).
		if ck.replayEnd[k] >= last.inv || ck.inflight[k] > 0 {
			afterReplay++
			continue
		}
		checked++
		if err != nil || v != ver {
			out = append(out, fmt.Sprintf("seed %d: rule no-lost-write: L2 holds %s=%d (%v) after %v (last replay covering %s ended at %.3fms)",
				ck.seed, ckKey(k), v, err, *last, ckKey(k), float64(ck.replayEnd[k])/1e6))
		}
	}
	ck.t.Logf("no-lost-write: %d keys checked; skipped: %d written before a fault ended, %d before a replay covering them ended",
		checked, afterFault, afterReplay)
	return out
}
