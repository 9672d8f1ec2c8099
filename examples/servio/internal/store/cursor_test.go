package store

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCursorRoundTrip(t *testing.T) {
	t.Parallel()
	c := Cursor{CreatedAt: time.Date(2026, 11, 26, 8, 0, 0, 123456000, time.UTC), ID: 42}
	got, err := DecodeCursor(c.Encode())
	require.NoError(t, err)
	assert.Equal(t, c, got)
	for _, bad := range []string{"", "!!", "bm9waXBl", "MjAyNnwx", "MjAyNi0xMS0yNlQwODowMDowMFp8LTE"} {
		_, err := DecodeCursor(bad)
		assert.ErrorIs(t, err, ErrBadCursor, "cursor %q", bad)
	}
}

// FuzzDecodeCursor: any string decodes or fails with ErrBadCursor, and what
// decodes re-encodes to a cursor that decodes the same.
func FuzzDecodeCursor(f *testing.F) {
	f.Add(Cursor{CreatedAt: time.Unix(1700000000, 0), ID: 1}.Encode())
	f.Add("")
	f.Add("MjAyNi0xMS0yNlQwODowMDowMFp8LTE")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := DecodeCursor(s)
		if err != nil {
			assert.ErrorIs(t, err, ErrBadCursor)
			return
		}
		again, err := DecodeCursor(c.Encode())
		require.NoError(t, err)
		assert.True(t, c.CreatedAt.Equal(again.CreatedAt) && c.ID == again.ID)
	})
}
