package dbpool

import (
	"container/list"
	"context"
	"sync"
	"sync/atomic"
)

// sessionKey is the context key of a *session.
type sessionKey struct{}

// session is a read-your-writes scope carried by a context: private to
// the context when key is "", else shared by every context with its key;
// parent is the session of the context it was derived from.
type session struct {
	key    string
	lsn    atomic.Uint64 // private sessions only
	parent *session
}

// WithSession returns a context whose Cluster reads see the writes made
// (through Cluster.Write or Wrote) under the same session: with key "",
// the writes made with this context and the contexts derived from it;
// with a key such as a user id, the writes made with any context carrying
// that key, on this Cluster's process. Sessions nest: a context derived
// from one with a session is in both (a user's and a resource's, say), its
// writes are recorded in both and its reads wait for the writes of both.
// Reads without a session wait only for the writes made without one.
func WithSession(ctx context.Context, key string) context.Context {
	parent, _ := ctx.Value(sessionKey{}).(*session)
	return context.WithValue(ctx, sessionKey{}, &session{key: key, parent: parent})
}

// sessions remembers the last write position of each session key, at most
// max of them, plus a floor every read waits for: the positions of
// forgotten keys and of writes made without a session.
type sessions struct {
	max     int
	floor   atomic.Uint64 // the highest known position every read waits for
	unknown atomic.Bool   // a write's position could not be read: every read waits for the next check

	mu   sync.Mutex
	gen  uint64 // bumped whenever the floor is set to lsnUnknown
	keys map[string]*list.Element
	lru  *list.List // of *sessionEntry, most recently written first
}

type sessionEntry struct {
	key string
	lsn uint64
}

func newSessions(max int) *sessions {
	return &sessions{max: max, keys: make(map[string]*list.Element), lru: list.New()}
}

// need is the WAL position a replica must have replayed to serve ctx's reads.
func (s *sessions) need(ctx context.Context) uint64 {
	if s.unknown.Load() {
		return lsnUnknown
	}
	n := s.floor.Load()
	for ss, _ := ctx.Value(sessionKey{}).(*session); ss != nil; ss = ss.parent {
		if ss.key == "" {
			n = max(n, ss.lsn.Load())
			continue
		}
		s.mu.Lock()
		if e, ok := s.keys[ss.key]; ok {
			n = max(n, e.Value.(*sessionEntry).lsn)
		}
		s.mu.Unlock()
	}
	return n
}

// record notes that ctx's sessions wrote up to lsn.
func (s *sessions) record(ctx context.Context, lsn uint64) {
	ss, _ := ctx.Value(sessionKey{}).(*session)
	if ss == nil {
		s.raiseFloor(lsn)
		return
	}
	for ; ss != nil; ss = ss.parent {
		if ss.key == "" {
			raise(&ss.lsn, lsn)
			continue
		}
		var evicted uint64
		s.mu.Lock()
		if e, ok := s.keys[ss.key]; ok {
			en := e.Value.(*sessionEntry)
			en.lsn = max(en.lsn, lsn)
			s.lru.MoveToFront(e)
		} else {
			s.keys[ss.key] = s.lru.PushFront(&sessionEntry{key: ss.key, lsn: lsn})
			if s.lru.Len() > s.max {
				old := s.lru.Remove(s.lru.Back()).(*sessionEntry)
				delete(s.keys, old.key)
				evicted = old.lsn
			}
		}
		s.mu.Unlock()
		s.raiseFloor(evicted) // a forgotten key's reads still wait for its write
	}
}

// raiseFloor raises the floor to lsn (lsnUnknown: until the next check).
func (s *sessions) raiseFloor(lsn uint64) {
	if lsn == lsnUnknown {
		s.mu.Lock()
		s.gen++
		s.unknown.Store(true)
		s.mu.Unlock()
		return
	}
	raise(&s.floor, lsn)
}

// generation returns the count of unknown-floor raises so far; a check
// takes it before it reads the primary's position.
func (s *sessions) generation() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gen
}

// resolveUnknown replaces an unknown floor by the primary's position pos,
// read after generation returned gen, unless a write failed to record its
// position since (it may lie beyond pos).
func (s *sessions) resolveUnknown(gen, pos uint64) {
	s.mu.Lock()
	if s.gen == gen && s.unknown.Load() {
		raise(&s.floor, pos)
		s.unknown.Store(false)
	}
	s.mu.Unlock()
}

// prune forgets the keys whose writes every replica has replayed
// (replayed is the least replay position over all replicas), oldest first.
func (s *sessions) prune(replayed uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for e := s.lru.Back(); e != nil; e = s.lru.Back() {
		en := e.Value.(*sessionEntry)
		if en.lsn > replayed {
			return
		}
		s.lru.Remove(e)
		delete(s.keys, en.key)
	}
}

// len returns the number of remembered keys.
func (s *sessions) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lru.Len()
}

// raise sets a to v if v is larger.
func raise(a *atomic.Uint64, v uint64) {
	for {
		old := a.Load()
		if v <= old || a.CompareAndSwap(old, v) {
			return
		}
	}
}
