package store

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// decodeItems decodes an order's items as the order queries aggregate them:
// a JSON array of objects with OrderItem's five keys, compact (SQLite's
// json_group_array) or spaced (PostgreSQL's json_agg). It reads that shape
// directly, several times faster than encoding/json's reflection, which
// was a quarter of an order page's cost. Anything else (another key, an
// escaped key, a number that is not a plain integer, invalid UTF-8, bad
// JSON) goes to json.Unmarshal, so the result and the errors are
// json.Unmarshal's for every input (FuzzDecodeItems).
func decodeItems(b []byte) ([]OrderItem, error) {
	if items, ok := fastItems(b); ok {
		return items, nil
	}
	items := []OrderItem{}
	if err := json.Unmarshal(b, &items); err != nil {
		return nil, err
	}
	return items, nil
}

// fastItems is decodeItems' direct reader; ok false means the input is not
// in the shape it reads (not that it is invalid).
func fastItems(b []byte) (items []OrderItem, ok bool) {
	p := itemParser{b: b}
	if !p.eat('[') {
		return nil, false
	}
	items = make([]OrderItem, 0, bytes.Count(b, []byte("{")))
	if p.eat(']') {
		return items, p.end()
	}
	for {
		var it OrderItem
		if !p.item(&it) {
			return nil, false
		}
		items = append(items, it)
		if p.eat(']') {
			return items, p.end()
		}
		if !p.eat(',') {
			return nil, false
		}
	}
}

type itemParser struct {
	b []byte
	i int
}

func (p *itemParser) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// eat consumes c after optional white space.
func (p *itemParser) eat(c byte) bool {
	p.space()
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// end reports whether only white space is left.
func (p *itemParser) end() bool {
	p.space()
	return p.i == len(p.b)
}

// item reads one object of OrderItem's keys.
func (p *itemParser) item(it *OrderItem) bool {
	if !p.eat('{') {
		return false
	}
	if p.eat('}') {
		return true
	}
	for {
		key, ok := p.plainString()
		if !ok || !p.eat(':') {
			return false
		}
		switch string(key) {
		case "id":
			ok = p.int(&it.ID)
		case "menu_item_id":
			ok = p.int(&it.MenuItemID)
		case "quantity":
			var q int64
			if ok = p.int(&q); ok && int64(int(q)) == q {
				it.Quantity = int(q)
			} else {
				ok = false
			}
		case "unit_price_cents":
			ok = p.int(&it.UnitPriceCents)
		case "name":
			var s []byte
			if s, ok = p.plainString(); ok {
				it.Name = string(s)
			}
		default:
			ok = false
		}
		if !ok {
			return false
		}
		if p.eat('}') {
			return true
		}
		if !p.eat(',') {
			return false
		}
	}
}

// plainString reads a string without escapes, control characters or
// invalid UTF-8 (json.Unmarshal would rewrite the last), returning its
// bytes in place.
func (p *itemParser) plainString() ([]byte, bool) {
	if !p.eat('"') {
		return nil, false
	}
	start := p.i
	for p.i < len(p.b) {
		switch c := p.b[p.i]; {
		case c == '"':
			s := p.b[start:p.i]
			p.i++
			return s, utf8.Valid(s)
		case c == '\\' || c < 0x20:
			return nil, false
		}
		p.i++
	}
	return nil, false
}

// int reads a JSON integer: an optional minus, then 0 or digits not
// starting with 0, not followed by a fraction or an exponent.
func (p *itemParser) int(v *int64) bool {
	p.space()
	start := p.i
	if p.i < len(p.b) && p.b[p.i] == '-' {
		p.i++
	}
	digits := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	if n := p.i - digits; n == 0 || (n > 1 && p.b[digits] == '0') {
		return false
	}
	if p.i < len(p.b) && (p.b[p.i] == '.' || p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		return false
	}
	n, err := strconv.ParseInt(string(p.b[start:p.i]), 10, 64)
	*v = n
	return err == nil
}
