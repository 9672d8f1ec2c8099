package cache

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
)

// Codec turns values into L2 bytes and back. Implementations must be safe
// for concurrent use. ID is written into every L2 value's header, so values
// written by another codec are detected and treated as misses; IDs 0–15 are
// reserved for perfkit.
type Codec interface {
	ID() byte
	Marshal(v any) ([]byte, error)
	Unmarshal(data []byte, v any) error
}

// JSON is the default Codec (encoding/json, ID 1).
type JSON struct{}

var _ Codec = JSON{}

// ID returns 1.
func (JSON) ID() byte { return 1 }

// Marshal encodes v with encoding/json.
func (JSON) Marshal(v any) ([]byte, error) { return json.Marshal(v) }

// Unmarshal decodes data into v with encoding/json.
func (JSON) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

// The L2 value layout: magic (2 bytes), format version (1), codec ID (1),
// flags (1), fresh-until in Unix milliseconds (8, big endian; 0 when the
// value has no stale window), the write's token (8: random, unique to the
// write; a load's fill compares it, see fillScript), then the codec's
// payload.
const (
	magic0        = 0xC5
	magic1        = 0x4B
	formatVersion = 2
	headerLen     = 21
	tokenOffset   = 13 // the token is b[tokenOffset:headerLen]

	flagNegative  = 1 << 0 // payload is the message of a cached error
	flagTombstone = 1 << 1 // a deleted key: reads as a miss, fences loads
	flagTags      = 1 << 2 // the payload starts with the value's tags
	knownFlags    = flagNegative | flagTombstone | flagTags
)

// appendTags appends tags as the tag section of a payload: a uvarint
// count, then each tag as a uvarint length and its bytes.
func appendTags(dst []byte, tags []string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(tags)))
	for _, t := range tags {
		dst = binary.AppendUvarint(dst, uint64(len(t)))
		dst = append(dst, t...)
	}
	return dst
}

// splitTags reads the tag section at the start of b and returns the tags
// and the rest.
func splitTags(b []byte) ([]string, []byte, error) {
	n, w := binary.Uvarint(b)
	if w <= 0 || n > uint64(len(b)) {
		return nil, nil, fmt.Errorf("%w: bad tag count", ErrCorrupt)
	}
	b = b[w:]
	tags := make([]string, 0, n)
	for range n {
		l, w := binary.Uvarint(b)
		if w <= 0 || l > uint64(len(b)-w) {
			return nil, nil, fmt.Errorf("%w: bad tag", ErrCorrupt)
		}
		tags = append(tags, string(b[w:w+int(l)]))
		b = b[w+int(l):]
	}
	return tags, b, nil
}

// header is the decoded prefix of an L2 value.
type header struct {
	codec      byte
	flags      byte
	freshUntil int64  // Unix ms; 0 = no stale window
	token      uint64 // the write that stored the value
}

// appendHeader appends the encoded header h to dst.
func appendHeader(dst []byte, h header) []byte {
	dst = append(dst, magic0, magic1, formatVersion, h.codec, h.flags)
	dst = binary.BigEndian.AppendUint64(dst, uint64(h.freshUntil))
	return binary.BigEndian.AppendUint64(dst, h.token)
}

// decodeHeader splits an L2 value into its header and payload. It fails
// with an error wrapping ErrCorrupt on anything it did not write.
func decodeHeader(b []byte) (header, []byte, error) {
	if len(b) < headerLen {
		return header{}, nil, fmt.Errorf("%w: %d bytes, shorter than the %d-byte header", ErrCorrupt, len(b), headerLen)
	}
	if b[0] != magic0 || b[1] != magic1 {
		return header{}, nil, fmt.Errorf("%w: bad magic %#x%02x", ErrCorrupt, b[0], b[1])
	}
	if b[2] != formatVersion {
		return header{}, nil, fmt.Errorf("%w: format version %d, want %d", ErrCorrupt, b[2], formatVersion)
	}
	h := header{codec: b[3], flags: b[4], freshUntil: int64(binary.BigEndian.Uint64(b[5:13])),
		token: binary.BigEndian.Uint64(b[tokenOffset:headerLen])}
	if h.flags&^knownFlags != 0 {
		return header{}, nil, fmt.Errorf("%w: unknown flags %#x", ErrCorrupt, h.flags)
	}
	if h.freshUntil < 0 {
		return header{}, nil, fmt.Errorf("%w: negative fresh-until %d", ErrCorrupt, h.freshUntil)
	}
	return h, b[headerLen:], nil
}
