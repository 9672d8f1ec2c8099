package cache

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// The invalidation epoch. A load's fill (fillScript) is refused once a
// pattern or tag invalidation replaced the epoch the load observed when
// it missed. The script reads the epoch along with the key, so both must
// be in one slot on a Redis Cluster: there every hash slot has its own
// epoch key, whose hash tag puts it in that slot, and a pattern or tag
// invalidation replaces all 16384 (pipelined per master: about 1 ms for 3
// masters on loopback). On a single node (or a Ring, Sentinel) there is
// one epoch key.

// clusterSlots is the number of hash slots of a Redis Cluster.
const clusterSlots = 16384

// crc16Table is the table of CRC16-XMODEM (polynomial 0x1021), the hash
// of Redis Cluster's key slots.
var crc16Table = func() (t [256]uint16) {
	for i := range t {
		crc := uint16(i) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
		t[i] = crc
	}
	return t
}()

func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc = crc<<8 ^ crc16Table[byte(crc>>8)^s[i]]
	}
	return crc
}

// slotOf returns the Redis Cluster hash slot of a Redis key: the CRC16 of
// its hash tag (the part between the first '{' and the next '}', when
// not empty) or of the whole key, modulo 16384.
func slotOf(key string) int {
	if s := strings.IndexByte(key, '{'); s >= 0 {
		if e := strings.IndexByte(key[s+1:], '}'); e > 0 {
			key = key[s+1 : s+1+e]
		}
	}
	return int(crc16(key) % clusterSlots)
}

// slotTags returns, for every slot, a short hash tag that lands in it
// (the first base-36 number that does), computed once per process.
var slotTags = sync.OnceValue(func() *[clusterSlots]string {
	var tags [clusterSlots]string
	for i, left := uint64(0), clusterSlots; left > 0; i++ {
		s := strconv.FormatUint(i, 36)
		if sl := crc16(s) % clusterSlots; tags[sl] == "" {
			tags[sl] = s
			left--
		}
	}
	return &tags
})

// epochKey is the Redis key of the invalidation epoch of a single node: a
// random string that every pattern or tag invalidation replaces.
func (c *Cache) epochKey() string { return c.cfg.KeyPrefix + "perfkit:cache:epoch" }

// slotEpochKeys returns the epoch keys of a cluster, one per slot:
// KeyPrefix+"perfkit:cache:epoch:{tag}", the tag putting key s in slot s.
func (c *Cache) slotEpochKeys() []string {
	c.epochKeysOnce.Do(func() {
		tags := slotTags()
		c.epochKeys = make([]string, clusterSlots)
		for s, tag := range tags {
			c.epochKeys[s] = c.epochKey() + ":{" + tag + "}"
		}
	})
	return c.epochKeys
}

// epochKeyFor returns the epoch key that guards the fills of Redis key
// rkey: on a cluster the one in rkey's slot, else the single one.
func (c *Cache) epochKeyFor(rkey string) string {
	if !c.clustered() {
		return c.epochKey()
	}
	return c.slotEpochKeys()[slotOf(rkey)]
}

// clustered reports whether L2 is a Redis Cluster.
func (c *Cache) clustered() bool {
	_, ok := c.rdb.(*redis.ClusterClient)
	return ok
}

// l2Epoch returns the current invalidation epoch guarding Redis key rkey,
// creating it when Redis has none (first use, or Redis lost its data: a
// new random epoch then fences every fill that observed the old one).
func (c *Cache) l2Epoch(ctx context.Context, rkey string) (string, error) {
	ek := c.epochKeyFor(rkey)
	mine := tokenString(newToken())
	var cur string
	err := c.l2Do(ctx, ek, func(ctx context.Context) error {
		var err error
		cur, err = c.rdb.SetArgs(ctx, ek, mine, redis.SetArgs{Mode: "NX", Get: true}).Result()
		if errors.Is(err, redis.Nil) {
			cur, err = mine, nil
		}
		return err
	})
	return cur, err
}

// newEpoch replaces the invalidation epoch: every load that observed the
// old one can no longer fill L2. On a cluster it replaces every slot's
// epoch (see epochRounds), one pipeline per master through that master's
// breaker; when a master failed, its slots keep their epoch and the error
// is returned (its keys are unreachable, so their fills fail too, and the
// caller replays the invalidation), while the live masters' slots are
// fenced.
func (c *Cache) newEpoch(ctx context.Context) error {
	if !c.clustered() {
		e := tokenString(newToken())
		return c.l2Do(ctx, c.epochKey(), func(ctx context.Context) error { return c.rdb.Set(ctx, c.epochKey(), e, 0).Err() })
	}
	r := &c.rounds
	seen := r.started.Load()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lastOK > seen {
		// A round that started after this invalidation did replaced every
		// epoch: it fences the same loads.
		return nil
	}
	seq := r.started.Add(1)
	e := tokenString(newToken())
	keys := c.slotEpochKeys()
	_, err := c.l2Pipe(ctx, keys, nil, func(ctx context.Context, p redis.Pipeliner, idx []int) {
		for _, i := range idx {
			p.Set(ctx, keys[i], e, 0)
		}
	}, nil)
	if err == nil {
		r.lastOK = seq
	}
	return err
}

// epochRounds coalesces the epoch replacements of a cluster (16384 keys
// each): one round runs at a time, and an invalidation that finds a round
// completed which started after it began uses that one. So a burst of
// concurrent invalidations on an instance costs at most two rounds.
type epochRounds struct {
	mu      sync.Mutex    // held while a round runs
	started atomic.Uint64 // rounds started
	lastOK  uint64        // the number of the last round that succeeded
}
