package dbpool

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// The session table never holds more than MaxSessions keys, and a key it
// forgot still has its reads wait for its write (through the floor).
func TestSessionsBoundedWithoutLosingWrites(t *testing.T) {
	t.Parallel()
	s := newSessions(3)
	ctx := func(k string) context.Context { return WithSession(context.Background(), k) }
	for i := range 100 {
		s.record(ctx(fmt.Sprint("user-", i)), uint64(1000+i))
		assert.LessOrEqual(t, s.len(), 3)
	}
	for i := range 100 {
		assert.GreaterOrEqual(t, s.need(ctx(fmt.Sprint("user-", i))), uint64(1000+i), "user-%d", i)
	}
	assert.Equal(t, uint64(1096), s.need(ctx("someone-else")), "the floor is the last forgotten write")
	s.prune(1098)
	assert.Equal(t, 1, s.len(), "keys replayed everywhere are forgotten")
	assert.Equal(t, uint64(1099), s.need(ctx("user-99")))
}

// A write whose position could not be read holds every read on the primary
// until a check reads the primary's position after it; a check that read
// the position before it does not release the hold.
func TestSessionsUnknownPosition(t *testing.T) {
	t.Parallel()
	s := newSessions(10)
	bg := context.Background()
	before := s.generation()
	s.raiseFloor(lsnUnknown)
	s.record(bg, 50) // a write without a session during the hold
	s.resolveUnknown(before, 10)
	assert.Equal(t, lsnUnknown, s.need(bg), "a check that started before the failed write released the hold")
	s.resolveUnknown(s.generation(), 40)
	assert.Equal(t, uint64(50), s.need(bg))
	private := WithSession(bg, "")
	s.record(private, 70)
	assert.Equal(t, uint64(70), s.need(private))
	assert.Equal(t, uint64(50), s.need(WithSession(bg, "")), "a private session is private")
}

func TestParseLSN(t *testing.T) {
	t.Parallel()
	v, err := parseLSN("16/B374D848")
	assert.NoError(t, err)
	assert.Equal(t, uint64(0x16B374D848), v)
	for _, bad := range []string{"", "16", "x/1", "1/y", "1/100000000"} {
		_, err := parseLSN(bad)
		assert.Error(t, err, bad)
	}
}

// The lag clock measures time behind the primary, 0 on an idle primary
// whatever the time since the last transaction.
func TestLagClock(t *testing.T) {
	t.Parallel()
	l := newLagClock(4)
	t0 := testTime()
	for i := range 6 {
		l.add(t0.Add(secs(i)), 100) // idle primary
	}
	assert.Zero(t, l.lag(t0.Add(secs(60)), 100))
	l.add(t0.Add(secs(7)), 200)
	l.add(t0.Add(secs(8)), 300)
	assert.Equal(t, secs(3), l.lag(t0.Add(secs(10)), 100))
	assert.Equal(t, secs(2), l.lag(t0.Add(secs(10)), 250))
	assert.Zero(t, l.lag(t0.Add(secs(10)), 300))
}

func testTime() time.Time      { return time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC) }
func secs(n int) time.Duration { return time.Duration(n) * time.Second }

// A context in two sessions records its writes in both and waits for the
// writes of both.
func TestSessionsNest(t *testing.T) {
	t.Parallel()
	s := newSessions(10)
	bg := context.Background()
	user := WithSession(bg, "user-1")
	both := WithSession(user, "menu-7")
	s.record(both, 100)
	assert.Equal(t, uint64(100), s.need(WithSession(bg, "menu-7")), "the resource's session saw the write")
	assert.Equal(t, uint64(100), s.need(user), "the user's session saw the write")
	s.record(WithSession(bg, "menu-7"), 200)
	assert.Equal(t, uint64(200), s.need(WithSession(user, "menu-7")))
	assert.Equal(t, uint64(100), s.need(user))
	assert.Zero(t, s.need(bg))
}
