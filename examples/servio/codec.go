package main

import (
	"encoding/json"
	"errors"

	"github.com/servio/perfkit/cache"
)

// rawJSON is the cache codec for servio's values, which are already encoded
// JSON responses ([]byte): they go to Redis as they are, with no second
// encoding (the default JSON codec would base64 them). Anything else falls
// back to encoding/json.
type rawJSON struct{}

var _ cache.Codec = rawJSON{}

// ID returns 16, the first codec ID outside perfkit's reserved range.
func (rawJSON) ID() byte { return 16 }

// Marshal returns a []byte as it is and encodes anything else as JSON.
func (rawJSON) Marshal(v any) ([]byte, error) {
	if b, ok := v.([]byte); ok {
		return b, nil
	}
	return json.Marshal(v)
}

// Unmarshal copies valid JSON into a *[]byte and decodes it into anything else.
func (rawJSON) Unmarshal(data []byte, v any) error {
	if p, ok := v.(*[]byte); ok {
		if !json.Valid(data) {
			return errors.New("servio: cached value is not JSON")
		}
		*p = append((*p)[:0], data...)
		return nil
	}
	return json.Unmarshal(data, v)
}
