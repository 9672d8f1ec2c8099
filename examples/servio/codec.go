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

// Marshal returns a []byte as it is, a menuDoc in its tagged form and
// encodes anything else as JSON.
func (rawJSON) Marshal(v any) ([]byte, error) {
	switch x := v.(type) {
	case []byte:
		return x, nil
	case menuDoc:
		return x.marshal(), nil
	}
	return json.Marshal(v)
}

// Unmarshal copies valid JSON into a *[]byte, reads a tagged menu into a
// *menuDoc and decodes JSON into anything else.
func (rawJSON) Unmarshal(data []byte, v any) error {
	if d, ok := v.(*menuDoc); ok {
		return unmarshalMenuDoc(data, d)
	}
	if p, ok := v.(*[]byte); ok {
		if !json.Valid(data) {
			return errors.New("servio: cached value is not JSON")
		}
		*p = append((*p)[:0], data...)
		return nil
	}
	return json.Unmarshal(data, v)
}
