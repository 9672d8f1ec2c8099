package cache

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestHeaderRoundTrip(t *testing.T) {
	t.Parallel()
	for _, h := range []header{
		{codec: 1},
		{codec: 200, flags: flagNegative, freshUntil: 1_700_000_000_000},
	} {
		b := append(appendHeader(nil, h), "payload"...)
		got, payload, err := decodeHeader(b)
		require.NoError(t, err)
		assert.Equal(t, h, got)
		assert.Equal(t, "payload", string(payload))
	}
}

func TestDecodeRejectsForeignValues(t *testing.T) {
	t.Parallel()
	c, err := New(Config{})
	require.NoError(t, err)
	defer c.Close()
	valid, err := c.encode(map[string]int{"a": 1}, nil, time.Time{})
	require.NoError(t, err)
	neg, err := c.encode(nil, errors.New("gone"), time.Time{})
	require.NoError(t, err)

	d, err := decode[map[string]int](c, valid)
	require.NoError(t, err)
	assert.Equal(t, map[string]int{"a": 1}, d.val)
	d, err = decode[map[string]int](c, neg)
	require.NoError(t, err)
	assert.ErrorIs(t, d.err, ErrNotFound, "negative entries read back as not-found")
	assert.EqualError(t, d.err, "gone")

	for name, b := range map[string][]byte{
		"nil":        nil,
		"short":      valid[:headerLen-1],
		"magic":      append([]byte{0}, valid[1:]...),
		"wrong type": valid, // a map is not a string
	} {
		_, err := decode[string](c, b)
		assert.ErrorIs(t, err, ErrCorrupt, name)
	}
}

// FuzzDecodeHeader feeds arbitrary L2 bytes to the decoders: they never
// panic, and whatever decodes re-encodes to the same bytes.
func FuzzDecodeHeader(f *testing.F) {
	c, err := New(Config{})
	if err != nil {
		f.Fatal(err)
	}
	defer c.Close()
	seed, _ := c.encode([]string{"x"}, nil, time.Time{})
	f.Add(seed)
	f.Add([]byte{})
	f.Add([]byte("plain"))
	f.Add(appendHeader(nil, header{codec: 1, flags: flagNegative, freshUntil: 42}))
	f.Add(append(appendHeader(nil, header{codec: 1}), `{"a":`...))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, payload, err := decodeHeader(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
		} else if again := append(appendHeader(nil, h), payload...); !bytes.Equal(again, b) {
			t.Fatalf("re-encoded %x, want %x", again, b)
		}
		_, _ = decode[[]string](c, b)
		_, _ = decode[map[string]any](c, b)
	})
}
