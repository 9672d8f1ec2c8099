package cache_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servio/perfkit/cache"
	"github.com/servio/perfkit/internal/testenv"
)

// The tests of this file reproduce, one interleaving each, the ways the
// cache broke its consistency contract (issue 16); the history checker of
// checker_test.go explores the rest.

// holdHook holds the n-th Redis call (command or pipeline, counted from
// arm) of its client until release is closed; held is closed when it is
// reached. Calls that match skip are neither counted nor held.
type holdHook struct {
	mu      sync.Mutex
	n       int  // calls still to let through before holding; <0: disarmed
	after   bool // hold once Redis answered instead of before sending
	skip    func(names []string, pipe bool) bool
	held    chan struct{}
	release chan struct{}
}

func newHoldHook() *holdHook { return &holdHook{n: -1} }

// arm holds the n-th next call (1: the next one) not matched by skip.
func (h *holdHook) arm(n int, skip func(names []string, pipe bool) bool) {
	h.armAt(n, false, skip)
}

// armAt is arm; with after set the call is held once Redis answered it.
func (h *holdHook) armAt(n int, after bool, skip func(names []string, pipe bool) bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.n, h.after, h.skip = n, after, skip
	h.held, h.release = make(chan struct{}), make(chan struct{})
}

func (h *holdHook) gate(names []string, pipe, after bool) {
	h.mu.Lock()
	if h.n <= 0 || h.after != after || connSetup1(names) || (h.skip != nil && h.skip(names, pipe)) {
		h.mu.Unlock()
		return
	}
	h.n--
	if h.n > 0 {
		h.mu.Unlock()
		return
	}
	h.n = -1
	held, release := h.held, h.release
	h.mu.Unlock()
	close(held)
	<-release
}

func connSetup1(names []string) bool {
	return len(names) > 0 && (names[0] == "hello" || names[0] == "client")
}

func (h *holdHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *holdHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.gate([]string{cmd.Name()}, false, false)
		err := next(ctx, cmd)
		h.gate([]string{cmd.Name()}, false, true)
		return err
	}
}
func (h *holdHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		names := make([]string, len(cmds))
		for i, c := range cmds {
			names[i] = c.Name()
		}
		h.gate(names, true, false)
		err := next(ctx, cmds)
		h.gate(names, true, true)
		return err
	}
}

// onlyGets skips plain GETs (reads), so a hold catches a write's call.
func onlyGets(names []string, pipe bool) bool { return !pipe && names[0] == "get" }

// withHold returns a twin of rdb with a holdHook.
func withHold(t *testing.T, rdb *redis.Client) (*redis.Client, *holdHook) {
	t.Helper()
	c := twin(t, rdb)
	h := newHoldHook()
	c.AddHook(h)
	return c, h
}

// Read-your-writes: a reader that misses L1 while this instance's Delete
// is on its way to Redis reads the old L2 value; it must not leave it in
// L1 once Delete returned.
func TestReadYourWritesDeleteRacingRead(t *testing.T) {
	t.Parallel()
	rdb, prefix := testenv.Redis(t)
	ctx := t.Context()
	rc, hold := withHold(t, rdb)
	a := newCache(t, rc, prefix, cache.Config{})
	require.NoError(t, cache.Set(ctx, a, "menu:1", "old", 0))

	hold.arm(1, onlyGets)
	done := make(chan error, 1)
	go func() { done <- a.Delete(ctx, "menu:1") }()
	<-hold.held // Delete cleared L1; its Redis call waits
	v, err := cache.GetOrSet(ctx, a, "menu:1", 0, func(context.Context) (string, error) { return "new", nil })
	require.NoError(t, err)
	t.Logf("read during the Delete: %q", v)
	close(hold.release)
	require.NoError(t, <-done)

	v, err = cache.GetOrSet(ctx, a, "menu:1", 0, func(context.Context) (string, error) { return "new", nil })
	require.NoError(t, err)
	assert.Equal(t, "new", v, "after Delete returned, this instance serves the old value")
}

// Read-your-writes for Set: a caller arriving after Set returned must not
// share a read that got the old value from Redis before Set reached it.
func TestReadYourWritesSetRacingRead(t *testing.T) {
	t.Parallel()
	rdb, prefix := testenv.Redis(t)
	ctx := t.Context()
	rc, holdSet := withHold(t, rdb)
	holdGet := newHoldHook()
	rc.AddHook(holdGet)
	a := newCache(t, rc, prefix, cache.Config{})
	require.NoError(t, cache.Set(ctx, a, "menu:1", "old", 0))
	require.NoError(t, a.Flush(ctx)) // "old" only in L2

	holdSet.arm(1, onlyGets)
	done := make(chan error, 1)
	go func() { done <- cache.Set(ctx, a, "menu:1", "new", 0) }()
	<-holdSet.held // Set started; its Redis write waits
	holdGet.armAt(1, true, nil)
	first := make(chan string, 1)
	go func() {
		v, _ := cache.GetOrSet(ctx, a, "menu:1", 0, func(context.Context) (string, error) { return "loaded", nil })
		first <- v
	}()
	select {
	case <-holdGet.held: // the reader's GET has read "old"
	case v := <-first: // served without reading Redis (from L1)
		close(holdSet.release)
		require.NoError(t, <-done)
		assert.Equal(t, "new", v, "a read during Set served from L1")
		return
	}
	close(holdSet.release)
	require.NoError(t, <-done)
	later := make(chan string, 1)
	go func() {
		v, _ := cache.GetOrSet(ctx, a, "menu:1", 0, func(context.Context) (string, error) { return "loaded", nil })
		later <- v
	}()
	time.Sleep(20 * time.Millisecond) // let the later caller join the held read, if it can
	close(holdGet.release)
	t.Logf("the racing read got %q", <-first)
	assert.Equal(t, "new", <-later, "a read begun after Set returned")
	v, err := cache.Get[string](ctx, a, "menu:1")
	require.NoError(t, err)
	assert.Equal(t, "new", v)
}

// No stale resurrection: a load that read the source before a Delete must
// not reach L2 after the Delete returned, even when its SET is already on
// the wire.
func TestLoadDoesNotResurrectAfterDelete(t *testing.T) {
	t.Parallel()
	rdb, prefix := testenv.Redis(t)
	ctx := t.Context()
	rc, hold := withHold(t, rdb)
	a := newCache(t, rc, prefix, cache.Config{})
	b := newCache(t, twin(t, rdb), prefix, cache.Config{})
	waitSubscribed(t, b, a)

	// Hold a's first write after the miss's reads: the load's fill.
	// (a miss reads with single commands: GET, and the SET NX GET of the
	// invalidation epoch).
	hold.arm(1, func(names []string, pipe bool) bool {
		return !pipe && (names[0] == "get" || names[0] == "set")
	})
	got := make(chan string, 1)
	go func() {
		v, _ := cache.GetOrSet(ctx, a, "menu:1", 0, func(context.Context) (string, error) { return "stale", nil })
		got <- v
	}()
	<-hold.held
	require.NoError(t, b.Delete(ctx, "menu:1"))
	close(hold.release)
	<-got

	for name, c := range map[string]*cache.Cache{"a": a, "b": b} {
		v, err := cache.Get[string](ctx, c, "menu:1")
		assert.ErrorIs(t, err, cache.ErrMiss, "%s: the load's value reached a tier after Delete: %q", name, v)
	}
}

// gateCodec is JSON whose Marshal calls before first (once armed).
type gateCodec struct {
	cache.JSON
	before atomic.Pointer[func()]
}

func (g *gateCodec) Marshal(v any) ([]byte, error) {
	if f := g.before.Swap(nil); f != nil {
		(*f)()
	}
	return g.JSON.Marshal(v)
}

// Set must replace the old L1 value even when an unrelated pattern
// invalidation runs while it encodes.
func TestSetWinsOverUnrelatedPatternInvalidation(t *testing.T) {
	t.Parallel()
	rdb, prefix := testenv.Redis(t)
	ctx := t.Context()
	codec := &gateCodec{}
	a := newCache(t, rdb, prefix, cache.Config{Codec: codec})
	require.NoError(t, cache.Set(ctx, a, "menu:1", "old", 0))
	f := func() { _, _ = a.InvalidatePattern(ctx, "unrelated:*") }
	codec.before.Store(&f)
	require.NoError(t, cache.Set(ctx, a, "menu:1", "new", 0))
	v, err := cache.Get[string](ctx, a, "menu:1")
	require.NoError(t, err)
	assert.Equal(t, "new", v, "L1 kept the old value after Set returned nil")
	b := newCache(t, twin(t, rdb), prefix, cache.Config{DisablePubSub: true})
	v, err = cache.Get[string](ctx, b, "menu:1")
	require.NoError(t, err)
	assert.Equal(t, "new", v, "L2 kept the old value after Set returned nil")
}

// No lost write: every Set that returned nil is in L2, while unrelated
// pattern invalidations run all along.
func TestNoLostSetUnderPatternInvalidations(t *testing.T) {
	t.Parallel()
	rdb, prefix := testenv.Redis(t)
	ctx := t.Context()
	a := newCache(t, rdb, prefix, cache.Config{})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				_, _ = a.InvalidatePattern(ctx, "unrelated:*")
			}
		}
	})
	lost := 0
	for i := range 1000 {
		k := fmt.Sprint("k:", i)
		require.NoError(t, cache.Set(ctx, a, k, i, 0))
		if n, _ := rdb.Exists(ctx, prefix+k).Result(); n == 0 {
			lost++
		}
	}
	close(stop)
	wg.Wait()
	assert.Zero(t, lost, "Sets that returned nil and are not in L2")
}

// Tags: a key tagged while InvalidateTags runs is either invalidated or
// still tracked by the tag.
func TestTagAddedDuringInvalidateTagsStaysTracked(t *testing.T) {
	t.Parallel()
	rdb, prefix := testenv.Redis(t)
	ctx := t.Context()
	rc, hold := withHold(t, rdb)
	a := newCache(t, rc, prefix, cache.Config{})
	b := newCache(t, twin(t, rdb), prefix, cache.Config{})
	require.NoError(t, cache.Set(ctx, b, "menu:1", "v1", 0, cache.WithTags("r1")))

	hold.arm(2, nil) // InvalidateTags' second call: after it read the set
	done := make(chan error, 1)
	go func() { _, err := a.InvalidateTags(ctx, "r1"); done <- err }()
	<-hold.held
	require.NoError(t, cache.Set(ctx, b, "menu:2", "v2", 0, cache.WithTags("r1")))
	close(hold.release)
	require.NoError(t, <-done)

	_, err := a.InvalidateTags(ctx, "r1")
	require.NoError(t, err)
	l2 := newCache(t, twin(t, rdb), prefix, cache.Config{DisablePubSub: true}) // reads L2
	for _, k := range []string{"menu:1", "menu:2"} {
		v, err := cache.Get[string](ctx, l2, k)
		assert.ErrorIs(t, err, cache.ErrMiss, "%s survived InvalidateTags: %q", k, v)
	}
}

// failHook fails every call while on.
type failHook struct{ on atomic.Bool }

var errInjected = errors.New("injected redis failure")

func (h *failHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *failHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if h.on.Load() {
			cmd.SetErr(errInjected)
			return errInjected
		}
		return next(ctx, cmd)
	}
}
func (h *failHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if h.on.Load() {
			for _, c := range cmds {
				c.SetErr(errInjected)
			}
			return errInjected
		}
		return next(ctx, cmds)
	}
}

// A failed InvalidateTags must not leave in this L1 the tagged values it
// read from L2 (they carry no tags there).
func TestFailedInvalidateTagsClearsL1FromL2(t *testing.T) {
	t.Parallel()
	rdb, prefix := testenv.Redis(t)
	ctx := t.Context()
	rc := twin(t, rdb)
	fail := &failHook{}
	rc.AddHook(fail)
	a := newCache(t, rc, prefix, cache.Config{BreakerConsecutiveFailures: 1000})
	b := newCache(t, twin(t, rdb), prefix, cache.Config{})
	waitSubscribed(t, b, a)
	seen := a.Stats().Invalidations
	require.NoError(t, cache.Set(ctx, b, "menu:1", "old", 0, cache.WithTags("r1")))
	require.Eventually(t, func() bool { return a.Stats().Invalidations > seen }, settle, time.Millisecond)
	v, err := cache.Get[string](ctx, a, "menu:1") // fills a's L1 from L2
	require.NoError(t, err)
	require.Equal(t, "old", v)

	fail.on.Store(true)
	_, err = a.InvalidateTags(ctx, "r1")
	require.ErrorIs(t, err, cache.ErrUnavailable)
	v, err = cache.Get[string](ctx, a, "menu:1")
	assert.Error(t, err, "after a failed InvalidateTags this L1 still serves %q", v)
	fail.on.Store(false)
}

// A pattern invalidation of other keys must not restart the in-flight
// load of a key: later callers still share it.
func TestPatternInvalidationKeepsUnrelatedLoadsShared(t *testing.T) {
	t.Parallel()
	rdb, prefix := testenv.Redis(t)
	ctx := t.Context()
	a := newCache(t, rdb, prefix, cache.Config{})
	waitSubscribed(t, newCache(t, twin(t, rdb), prefix, cache.Config{}), a) // no late first-subscribe flush
	var loads atomic.Int32
	started, release := make(chan struct{}), make(chan struct{})
	load := func(context.Context) (string, error) {
		if loads.Add(1) == 1 {
			close(started)
		}
		<-release
		return "v", nil
	}
	var wg sync.WaitGroup
	wg.Go(func() { _, _ = cache.GetOrSet(ctx, a, "menu:1", 0, load) })
	<-started
	_, err := a.InvalidatePattern(ctx, "order:*")
	require.NoError(t, err)
	wg.Go(func() { _, _ = cache.GetOrSet(ctx, a, "menu:1", 0, load) })
	require.Eventually(t, func() bool { return a.Stats().SharedLoads == 1 || loads.Load() == 2 },
		settle, time.Millisecond, "the second caller joined the load or started its own")
	close(release)
	wg.Wait()
	assert.Equal(t, int32(1), loads.Load(), "loads of menu:1")
}

// A negative entry reads back with the same error identity from L1 and
// from L2.
func TestNegativeEntryMatchesSameSentinelsInBothTiers(t *testing.T) {
	t.Parallel()
	rdb, prefix := testenv.Redis(t)
	ctx := t.Context()
	errNoRows := errors.New("no rows")
	cfg := cache.Config{NegativeTTL: time.Minute}
	a := newCache(t, rdb, prefix, cfg)
	b := newCache(t, twin(t, rdb), prefix, cfg)
	load := func(context.Context) (string, error) {
		return "", fmt.Errorf("order 9: %w: %w", cache.ErrNotFound, errNoRows)
	}
	_, err := cache.GetOrSet(ctx, a, "order:9", 0, load)
	require.ErrorIs(t, err, cache.ErrNotFound)
	_, fromL1 := cache.GetOrSet(ctx, a, "order:9", 0, load)
	_, fromL2 := cache.GetOrSet(ctx, b, "order:9", 0, load)
	require.ErrorIs(t, fromL1, cache.ErrNotFound)
	require.ErrorIs(t, fromL2, cache.ErrNotFound)
	assert.Equal(t, errors.Is(fromL1, errNoRows), errors.Is(fromL2, errNoRows), "L1: %v, L2: %v", fromL1, fromL2)
	assert.Equal(t, fromL1.Error(), fromL2.Error())
}

// Found by the 10-minute checker run: an instance's own InvalidateTags
// must drop the tagged values it read from L2 even when another
// instance's concurrent InvalidateTags already took the tag set (and its
// message has not arrived yet — here it never does: pub/sub is off). L2
// values carry their tags, so L1 copies filled from L2 keep them.
func TestInvalidateTagsDropsL2FilledCopyWhenSetAlreadyTaken(t *testing.T) {
	t.Parallel()
	rdb, prefix := testenv.Redis(t)
	ctx := t.Context()
	x := newCache(t, rdb, prefix, cache.Config{DisablePubSub: true})
	y := newCache(t, twin(t, rdb), prefix, cache.Config{DisablePubSub: true})
	require.NoError(t, cache.Set(ctx, y, "menu:1", "old", 0, cache.WithTags("r1")))
	v, err := cache.Get[string](ctx, x, "menu:1") // x's L1 copy, from L2
	require.NoError(t, err)
	require.Equal(t, "old", v)
	_, err = y.InvalidateTags(ctx, "r1") // takes the set
	require.NoError(t, err)
	_, err = x.InvalidateTags(ctx, "r1") // finds it empty
	require.NoError(t, err)
	v, err = cache.Get[string](ctx, x, "menu:1")
	assert.ErrorIs(t, err, cache.ErrMiss, "x still serves %q after its own InvalidateTags returned", v)
}

// An invalidation that returned ErrUnavailable on one instance is
// replayed later, possibly after another instance wrote its keys again
// (the history checker's cluster runs caught it: "no-lost-write" on a
// SetMany). The contract counts the replay as a delete of that later
// value, never as a way back to an older one: here a's replay round is
// held, once Redis answers again, until b rewrote every key it covers (a
// key, a tag's member, a pattern's match), then lets it land. Every
// instance and L2 then hold b's value or nothing, never the value the
// invalidations were meant to remove.
func TestReplayLandingAfterAnotherInstancesWriteNeverRestoresOldValue(t *testing.T) {
	t.Parallel()
	rdb, prefix := testenv.Redis(t)
	ctx := t.Context()
	rc := twin(t, rdb)
	fail := &failHook{}
	rc.AddHook(fail)
	a := newCache(t, rc, prefix, cache.Config{BreakerConsecutiveFailures: 1000})
	b := newCache(t, twin(t, rdb), prefix, cache.Config{})
	waitSubscribed(t, a, b)
	waitSubscribed(t, b, a)
	keys := []string{"menu:1", "menu:2", "order:3"}
	set := func(v string) {
		t.Helper()
		require.NoError(t, cache.Set(ctx, b, "menu:1", v, 0))
		require.NoError(t, cache.Set(ctx, b, "menu:2", v, 0, cache.WithTags("r2")))
		require.NoError(t, cache.Set(ctx, b, "order:3", v, 0))
	}
	set("old")

	held, release, landed := make(chan struct{}), make(chan struct{}), make(chan struct{})
	var once sync.Once
	cache.SetReplayHook(a, func(done bool, _, _, _ []string) {
		if !done {
			once.Do(func() { close(held) })
			<-release
			return
		}
		select {
		case <-landed:
		default:
			close(landed)
		}
	})
	fail.on.Store(true)
	require.ErrorIs(t, a.Delete(ctx, "menu:1"), cache.ErrUnavailable)
	_, err := a.InvalidateTags(ctx, "r2")
	require.ErrorIs(t, err, cache.ErrUnavailable)
	_, err = a.InvalidatePattern(ctx, "order:*")
	require.ErrorIs(t, err, cache.ErrUnavailable)
	require.Equal(t, 3, cache.PendingCount(a))
	fail.on.Store(false)

	select {
	case <-held: // a's replay round is about to write
	case <-time.After(settle):
		t.Fatal("a's replay round did not start once Redis answered")
	}
	set("new") // b's writes get through before the replay lands
	close(release)
	select {
	case <-landed:
	case <-time.After(settle):
		t.Fatal("a's replay round did not end")
	}
	require.Zero(t, cache.PendingCount(a), "everything replayed")

	fresh := newCache(t, twin(t, rdb), prefix, cache.Config{DisablePubSub: true}) // reads L2
	for _, k := range keys {
		for name, c := range map[string]*cache.Cache{"a": a, "b": b, "L2": fresh} {
			v, err := cache.Get[string](ctx, c, k)
			if err == nil {
				assert.Equal(t, "new", v, "%s serves %s from before the invalidation", name, k)
			} else {
				assert.ErrorIs(t, err, cache.ErrMiss)
			}
		}
		v, err := cache.Get[string](ctx, fresh, k)
		t.Logf("L2 after the late replay: %s = %q (%v)", k, v, err)
	}
}
