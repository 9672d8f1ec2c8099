package dbpool

import (
	"cmp"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"

	"github.com/servio/perfkit/internal/redact"
)

// ClusterConfig configures a Cluster. The zero value of every field means
// the default documented beside it.
type ClusterConfig struct {
	// MaxLag takes a replica out of the read rotation while it is this far
	// behind the primary (measured as below); it is put back when it is
	// closer again. Default 1 s.
	MaxLag time.Duration
	// CheckInterval is how often the background checker measures every
	// replica's health and lag, and so the longest a lagging or failing
	// replica keeps receiving reads before the checker takes it out (a
	// read that fails on a replica takes it out at once). Default 250 ms.
	CheckInterval time.Duration
	// CheckTimeout bounds one replica's (and the primary's) check; a check
	// that times out takes the replica out. Default CheckInterval, at
	// least 100 ms.
	CheckTimeout time.Duration
	// MaxSessions bounds the session keys (WithSession) whose last write
	// is remembered. The least recently written key is forgotten first;
	// its write position is folded into a cluster-wide floor that every
	// session's reads then wait for, so forgetting a key costs replica
	// reads for a moment, never read-your-writes. Default 10,000.
	MaxSessions int
	// MeterProvider provides the replica metrics. Default otel.GetMeterProvider().
	MeterProvider metric.MeterProvider
	// Logger receives replica state changes (out, back in). Default slog.Default().
	Logger *slog.Logger
}

// Defaults of the ClusterConfig fields whose zero value means "default".
const (
	DefaultMaxLag        = time.Second
	DefaultCheckInterval = 250 * time.Millisecond
	DefaultMaxSessions   = 10000
)

func (c ClusterConfig) withDefaults() (ClusterConfig, error) {
	if c.MaxLag < 0 || c.CheckInterval < 0 || c.CheckTimeout < 0 || c.MaxSessions < 0 {
		return c, fmt.Errorf("%w: MaxLag, CheckInterval, CheckTimeout and MaxSessions must not be negative", ErrInvalidConfig)
	}
	if c.MaxLag == 0 {
		c.MaxLag = DefaultMaxLag
	}
	if c.CheckInterval == 0 {
		c.CheckInterval = DefaultCheckInterval
	}
	if c.CheckTimeout == 0 {
		c.CheckTimeout = max(c.CheckInterval, 100*time.Millisecond)
	}
	if c.MaxSessions == 0 {
		c.MaxSessions = DefaultMaxSessions
	}
	if c.MeterProvider == nil {
		c.MeterProvider = otel.GetMeterProvider()
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}

// Cluster routes statements between a primary pool and replica pools.
// Writes and transactions go to Primary (Write records where they left
// the primary's log); reads the caller marks as replica-safe by running
// them through Read go to a usable replica that has replayed the
// session's last write, or to the primary. See the package documentation
// (Read replicas) for the rules. Safe for concurrent use; Close stops the
// checker and closes every pool.
type Cluster struct {
	primary  *DB
	replicas []*replica
	cfg      ClusterConfig
	log      *slog.Logger
	next     atomic.Uint64 // round-robin position
	sess     *sessions
	lag      *lagClock
	// primaryFailing is set while the checker cannot read the primary's
	// position (checker goroutine only, atomic for the initial check).
	primaryFailing atomic.Bool
	in             *clusterInstruments

	stop      context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// replica is one replica pool and what the checker last saw of it.
type replica struct {
	db   *DB
	name string

	usable   atomic.Bool
	replayed atomic.Uint64 // replay LSN at the last successful check
	lagNanos atomic.Int64
	lagBytes atomic.Int64
	reads    atomic.Int64
	falls    atomic.Int64 // reads it failed, rerun on the primary

	mu      sync.Mutex
	lastErr error
}

// NewCluster returns a Cluster over a primary and zero or more replica
// pools (opened by the caller, each with its own Config and so its own
// bounds and metrics; give each its own Name, the metrics' pool name) and
// takes ownership of them: Close closes
// them. With replicas it starts the checker goroutine, measures every
// replica once before it returns (a replica is not read from before its
// first check shows it in recovery, caught up and within MaxLag) and
// needs PostgreSQL; with none (SQLite, or no replica configured) it
// starts nothing and every Read runs on the primary. It returns an error
// wrapping ErrInvalidConfig for a bad ClusterConfig or a nil pool; on
// error the pools stay the caller's to close.
func NewCluster(ctx context.Context, primary *DB, replicas []*DB, cfg ClusterConfig) (*Cluster, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if primary == nil {
		return nil, fmt.Errorf("%w: nil primary", ErrInvalidConfig)
	}
	c := &Cluster{primary: primary, cfg: cfg, log: cfg.Logger, done: make(chan struct{})}
	for i, r := range replicas {
		if r == nil {
			return nil, fmt.Errorf("%w: replica %d is nil", ErrInvalidConfig, i)
		}
		c.replicas = append(c.replicas, &replica{db: r, name: r.Config().Name})
	}
	c.sess = newSessions(cfg.MaxSessions)
	c.lag = newLagClock(int(cfg.MaxLag/cfg.CheckInterval) + 2)
	if c.in, err = newClusterInstruments(c); err != nil {
		return nil, err
	}
	if len(c.replicas) == 0 {
		close(c.done)
		c.stop = func() {}
		return c, nil
	}
	c.check(ctx)
	cctx, stop := context.WithCancel(context.Background())
	c.stop = stop
	go c.run(cctx)
	return c, nil
}

// Primary returns the primary pool: for writes, transactions and reads
// that must see the latest data. Writes made through it directly are not
// recorded for read-your-writes; use Write, or call Wrote after them.
func (c *Cluster) Primary() *DB { return c.primary }

// Replicas returns the number of replica pools.
func (c *Cluster) Replicas() int { return len(c.replicas) }

// Write runs fn on the primary and then records the primary's WAL insert
// position in ctx's session (see WithSession and Wrote), so that the
// session's later Reads see what fn wrote. It records even when fn fails
// (fn may have committed before failing). It returns fn's error, or the
// recording's when fn succeeded. With no replicas it records nothing.
func (c *Cluster) Write(ctx context.Context, fn func(*DB) error) error {
	err := fn(c.primary)
	if werr := c.Wrote(context.WithoutCancel(ctx)); err == nil {
		err = werr
	}
	return err
}

// Wrote records that ctx's session has just written on the primary: its
// Reads go to the primary until a replica has replayed the primary's
// current WAL insert position (one cheap query on the primary). Without a
// session in ctx the position becomes a floor for every session. With no
// replicas it does nothing. If the position cannot be read, every Read
// goes to the primary until the replicas pass the primary's position at
// the next successful check, so an error here never costs
// read-your-writes; the error is returned for the caller to log.
func (c *Cluster) Wrote(ctx context.Context) error {
	if len(c.replicas) == 0 {
		return nil
	}
	lsn, err := c.position(ctx)
	if err != nil {
		c.sess.raiseFloor(lsnUnknown)
		return fmt.Errorf("dbpool: recording the write position: %w", err)
	}
	c.sess.record(ctx, lsn)
	return nil
}

// Latest returns a context whose Reads see every write committed on the
// primary before Latest returned, whoever made it: for reads whose result
// outlives the request, such as a shared cache's fill, which must not
// bring back a value an invalidation has just dropped. It costs one query
// on the primary (pg_current_wal_insert_lsn()); the reads then go to a
// replica that has replayed that position, asked live when its last check
// showed it behind, else to the primary. If the position cannot be read,
// the context's reads go to the primary. The context keeps ctx's sessions.
// With no replicas it returns ctx.
func (c *Cluster) Latest(ctx context.Context) context.Context {
	if len(c.replicas) == 0 {
		return ctx
	}
	pos, err := c.position(ctx)
	if err != nil {
		pos = lsnUnknown
	}
	parent, _ := ctx.Value(sessionKey{}).(*session)
	ss := &session{parent: parent}
	ss.lsn.Store(pos)
	return context.WithValue(ctx, sessionKey{}, ss)
}

// position reads the primary's WAL insert position.
func (c *Cluster) position(ctx context.Context) (uint64, error) {
	var s string
	if err := c.primary.QueryRowContext(ctx, "SELECT pg_current_wal_insert_lsn()::text").Scan(&s); err != nil {
		return 0, err
	}
	return parseLSN(s)
}

// lsnUnknown is a floor above any real position: it holds every read on
// the primary until the next check replaces it with the primary's
// position (see check).
const lsnUnknown = ^uint64(0)

// Read runs fn, a read that may see a replica's data, on a usable replica
// that has replayed ctx's session's last write, chosen round-robin, or on
// the primary when there is none. If fn fails on a replica with a
// connection-level error (the replica died, restarted, timed out a
// connection or cancelled the statement for a recovery conflict) and ctx
// is not done, the replica is taken out until its next good check and fn
// runs again on the primary: fn may run twice and must only read.
// Statements that write fail on a replica (it is read-only); with no
// replicas they would run on the primary, so do not write in fn.
func (c *Cluster) Read(ctx context.Context, fn func(*DB) error) error {
	r, reason := c.pick(ctx)
	if r == nil {
		c.in.fallback(ctx, c.primary.Config().Name, reason)
		return fn(c.primary)
	}
	r.reads.Add(1)
	c.in.read(ctx, r.name)
	err := fn(r.db)
	if err == nil || ctx.Err() != nil || !replicaFailure(err) {
		return err
	}
	if r.usable.Swap(false) {
		c.log.Warn("dbpool: replica out after a failed read", "pool", r.name, "error", redact.String(err.Error()))
	}
	r.setErr(err)
	r.falls.Add(1)
	c.in.fallback(ctx, r.name, "error")
	return fn(c.primary)
}

// Fallback reasons (the "reason" attribute of perfkit.dbpool.replica.fallbacks).
const (
	reasonNone          = "no_replica"       // none configured
	reasonUnusable      = "unusable"         // none healthy and within MaxLag
	reasonReadYourWrite = "read_your_writes" // none has replayed the session's write yet
)

// pick returns the replica for a read of ctx, or nil and why not.
func (c *Cluster) pick(ctx context.Context) (*replica, string) {
	n := len(c.replicas)
	if n == 0 {
		return nil, reasonNone
	}
	need := c.sess.need(ctx)
	start := c.next.Add(1)
	var behind *replica // the first usable replica whose last check was behind need
	for i := range n {
		r := c.replicas[(start+uint64(i))%uint64(n)]
		if !r.usable.Load() {
			continue
		}
		if r.replayed.Load() < need {
			behind = cmp.Or(behind, r)
			continue
		}
		return r, ""
	}
	if behind == nil {
		return nil, reasonUnusable
	}
	if need != lsnUnknown && c.replayedLive(ctx, behind) >= need {
		return behind, ""
	}
	return nil, reasonReadYourWrite
}

// replayedLive asks r for its replay position now (one query, bounded by
// CheckTimeout), for a read its last check showed behind; 0 on error.
func (c *Cluster) replayedLive(ctx context.Context, r *replica) uint64 {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.CheckTimeout)
	defer cancel()
	var s string
	if err := r.db.QueryRowContext(ctx, "SELECT COALESCE(pg_last_wal_replay_lsn()::text, '')").Scan(&s); err != nil {
		return 0
	}
	pos, err := parseLSN(s)
	if err != nil {
		return 0
	}
	raise(&r.replayed, pos)
	return pos
}

// replicaFailure reports whether err says the replica (its connection or
// its recovery) failed, rather than the statement: only then is a read
// worth rerunning on the primary.
func replicaFailure(err error) bool {
	// A statement that ran past its own QueryTimeout is the statement's
	// failure: rerunning it on the primary would double its cost there.
	// That timeout is a context.DeadlineExceeded inside, which the net.Error
	// case below would otherwise take for a broken connection.
	if errors.Is(err, ErrQueryTimeout) {
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		// 08: connection exception; 57P01-03: shutdown, crash, cannot
		// connect now; 40001 on a standby: cancelled for a recovery
		// conflict.
		return strings.HasPrefix(pe.Code, "08") || strings.HasPrefix(pe.Code, "57P") || pe.Code == "40001"
	}
	var ne net.Error
	var ce *pgconn.ConnectError
	return errors.Is(err, driver.ErrBadConn) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, ErrConnectTimeout) || errors.Is(err, ErrAcquireTimeout) || errors.Is(err, sql.ErrConnDone) ||
		errors.As(err, &ne) || errors.As(err, &ce) || pgconn.SafeToRetry(err) ||
		strings.Contains(err.Error(), "conn closed")
}

func (r *replica) setErr(err error) {
	r.mu.Lock()
	r.lastErr = err
	r.mu.Unlock()
}

// Close stops the checker, waits for it and closes the replica pools and
// the primary. It is idempotent and returns the first call's error.
func (c *Cluster) Close() error {
	c.closeOnce.Do(func() {
		c.stop()
		<-c.done
		errs := []error{c.in.reg.Unregister()}
		for _, r := range c.replicas {
			errs = append(errs, r.db.Close())
		}
		errs = append(errs, c.primary.Close())
		c.closeErr = errors.Join(errs...)
	})
	return c.closeErr
}

// ReplicaStats is what the checker and the router know of one replica.
type ReplicaStats struct {
	// Name is the replica pool's Config.Name.
	Name string
	// Usable reports whether reads go to it: its last check succeeded,
	// showed it in recovery and within MaxLag, and no read failed on it
	// since.
	Usable bool
	// Lag is how long the replica has been behind the primary's flushed
	// WAL position, at the last check (0 when caught up).
	Lag time.Duration
	// LagBytes is the primary's flushed WAL position minus the replica's
	// replay position, at the last check.
	LagBytes int64
	// Reads counts reads routed to it; Fallbacks those it failed and the
	// primary ran again.
	Reads, Fallbacks int64
	// Err is the last check's or read's error that took it out, if it is out.
	Err error
	// Pool is the replica pool's own Stats.
	Pool Stats
}

// ReplicaStats returns a snapshot of every replica, in the order given to
// NewCluster.
func (c *Cluster) ReplicaStats() []ReplicaStats {
	out := make([]ReplicaStats, len(c.replicas))
	for i, r := range c.replicas {
		r.mu.Lock()
		err := r.lastErr
		r.mu.Unlock()
		u := r.usable.Load()
		if u {
			err = nil
		}
		out[i] = ReplicaStats{Name: r.name, Usable: u, Lag: time.Duration(r.lagNanos.Load()), LagBytes: r.lagBytes.Load(),
			Reads: r.reads.Load(), Fallbacks: r.falls.Load(), Err: err, Pool: r.db.Stats()}
	}
	return out
}

// parseLSN parses PostgreSQL's text form of a WAL position, "16/B374D848".
func parseLSN(s string) (uint64, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok {
		return 0, fmt.Errorf("dbpool: bad LSN %q", s)
	}
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("dbpool: bad LSN %q", s)
	}
	return h<<32 | l, nil
}
