package dbpool_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/servio/perfkit/dbpool"
)

// countingConnector is a driver whose connections count as alive from the
// moment a dial starts (a server holds a backend from then) until Close
// returns; most is the most ever alive at once. Dials take up to dialMax.
type countingConnector struct {
	dialMax    time.Duration
	live, most atomic.Int64
	dials      atomic.Int64
}

func (c *countingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	n := c.live.Add(1)
	for m := c.most.Load(); n > m && !c.most.CompareAndSwap(m, n); m = c.most.Load() {
	}
	c.dials.Add(1)
	if c.dialMax > 0 {
		select {
		case <-time.After(time.Duration(randN(int(c.dialMax)))):
		case <-ctx.Done():
			c.live.Add(-1)
			return nil, ctx.Err()
		}
	}
	return &countedConn{fakeConn: &fakeConn{c: &fakeConnector{}}, cc: c}, nil
}

func (c *countingConnector) Driver() driver.Driver { return fakeDriver{} }

type countedConn struct {
	*fakeConn
	cc     *countingConnector
	closed atomic.Bool
}

func (c *countedConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.cc.live.Add(-1)
	}
	return nil
}

// acquisition is one caller of the state machine: a connection being
// acquired (done open), held (conn set) or given up.
type acquisition struct {
	cancel context.CancelFunc
	done   chan struct{}
	conn   *sql.Conn
	err    error
}

// poolMachine drives a pool through random interleavings of acquires,
// releases, cancellations while waiting, statements (which retire
// connections after MaxUses) and pauses, and checks after every step that
// the connections alive on the driver's side never exceeded MaxOpen.
type poolMachine struct {
	t       *rapid.T
	maxOpen int
	cc      *countingConnector
	db      *dbpool.DB
	acqs    []*acquisition
	bg      sync.WaitGroup
	bgErr   atomic.Pointer[error] // the first unexpected error of a background statement
	steps   int
}

func newPoolMachine(t *rapid.T) *poolMachine {
	m := &poolMachine{t: t, cc: &countingConnector{dialMax: 2 * time.Millisecond}}
	m.maxOpen = rapid.IntRange(1, 4).Draw(t, "maxOpen")
	cfg := dbpool.Config{
		MaxOpen:          m.maxOpen,
		MinConns:         rapid.IntRange(-1, m.maxOpen).Draw(t, "minConns"),
		MaxUses:          rapid.IntRange(1, 4).Draw(t, "maxUses"),
		MaxUsesJitter:    -1,
		EagerDial:        rapid.Bool().Draw(t, "eagerDial"),
		AcquireTimeout:   time.Duration(rapid.IntRange(1, 50).Draw(t, "acquireTimeoutMs")) * time.Millisecond,
		IdleTimeout:      time.Duration(rapid.IntRange(-1, 20).Draw(t, "idleTimeoutMs")) * time.Millisecond,
		MaintainInterval: time.Millisecond,
		Logger:           quiet,
	}
	if cfg.MinConns == 0 {
		cfg.MinConns = -1
	}
	var err error
	m.db, err = dbpool.OpenConnector(context.Background(), m.cc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func (m *poolMachine) check() {
	if most := m.cc.most.Load(); most > int64(m.maxOpen) {
		m.t.Fatalf("%d connections alive at once on the driver's side, MaxOpen %d", most, m.maxOpen)
	}
}

// Acquire starts a caller taking a connection (it may wait).
func (m *poolMachine) Acquire(t *rapid.T) {
	ctx, cancel := context.WithCancel(context.Background())
	a := &acquisition{cancel: cancel, done: make(chan struct{})}
	m.acqs = append(m.acqs, a)
	m.bg.Go(func() {
		defer close(a.done)
		a.conn, a.err = m.db.Conn(ctx)
	})
	m.check()
}

// Query runs one statement through the pool in the background.
func (m *poolMachine) Query(t *rapid.T) {
	timeout := time.Duration(rapid.IntRange(0, 5000).Draw(t, "queryTimeoutUs")) * time.Microsecond
	m.bg.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		var one int
		err := m.db.QueryRowContext(ctx, "SELECT 1").Scan(&one)
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			m.bgErr.CompareAndSwap(nil, &err)
		}
	})
	m.check()
}

// pick draws one acquisition, or nil when there is none.
func (m *poolMachine) pick(t *rapid.T) (int, *acquisition) {
	if len(m.acqs) == 0 {
		t.Skip("no acquisition")
	}
	i := rapid.IntRange(0, len(m.acqs)-1).Draw(t, "acq")
	return i, m.acqs[i]
}

// Cancel gives up a caller's acquisition (while it waits, or after).
func (m *poolMachine) Cancel(t *rapid.T) {
	_, a := m.pick(t)
	a.cancel()
	m.check()
}

// Use runs a statement on a held connection (a use towards MaxUses).
func (m *poolMachine) Use(t *rapid.T) {
	_, a := m.pick(t)
	select {
	case <-a.done:
	default:
		t.Skip("still acquiring")
	}
	if a.conn == nil {
		t.Skip("acquisition failed")
	}
	if _, err := a.conn.ExecContext(context.Background(), "SELECT 1"); err != nil && !errors.Is(err, sql.ErrConnDone) {
		t.Fatal(err)
	}
	m.check()
}

// Release returns a held connection (or forgets a failed acquisition).
func (m *poolMachine) Release(t *rapid.T) {
	i, a := m.pick(t)
	select {
	case <-a.done:
	default:
		t.Skip("still acquiring")
	}
	if a.conn != nil {
		_ = a.conn.Close()
	}
	a.cancel()
	m.acqs = append(m.acqs[:i], m.acqs[i+1:]...)
	m.check()
}

// Pause lets the maintainer and waiting callers run.
func (m *poolMachine) Pause(t *rapid.T) {
	time.Sleep(time.Duration(rapid.IntRange(0, 3000).Draw(t, "pauseUs")) * time.Microsecond)
	m.check()
}

// Check is the invariant rapid runs after every action.
func (m *poolMachine) Check(*rapid.T) {
	m.steps++
	m.check()
}

func (m *poolMachine) cleanup() {
	for _, a := range m.acqs {
		a.cancel()
		<-a.done
		if a.conn != nil {
			_ = a.conn.Close()
		}
	}
	m.bg.Wait()
	m.check()
	if err := m.bgErr.Load(); err != nil {
		m.t.Error(*err)
	}
	if err := m.db.Close(); err != nil {
		m.t.Error(err)
	}
	// database/sql's background opener may finish a dial after Close
	// returned; it closes that connection at once.
	for end := time.Now().Add(5 * time.Second); m.cc.live.Load() != 0 && time.Now().Before(end); {
		time.Sleep(time.Millisecond)
	}
	if live := m.cc.live.Load(); live != 0 {
		m.t.Errorf("%d connections left open after Close", live)
	}
}

// TestPropertyMaxOpenBound: under random interleavings of acquires,
// releases, cancellations while waiting, retirements after MaxUses, idle
// closes and growth, the connections alive on the driver's side (from the
// start of a dial to the end of its close) never exceed MaxOpen.
func TestPropertyMaxOpenBound(t *testing.T) {
	t.Parallel()
	var runs, steps int
	rapid.Check(t, func(t *rapid.T) {
		runs++
		m := newPoolMachine(t)
		defer func() { steps += m.steps }()
		defer m.cleanup()
		t.Repeat(rapid.StateMachineActions(m))
	})
	t.Logf("%d random interleavings (%d steps) run", runs, steps)
}
