package gcm

import (
	"errors"
	"fmt"
)

// scanData scans the data object whose opening brace is at s.i, at nesting
// depth, without rewriting it. It returns the decoded size of its keys and
// values (string values by decoded length, other values by the length of
// their JSON text) and the raw text of the first reserved key, if any.
func scanData(s *scanner, depth int) (size int, badKey []byte, ok bool) {
	if depth > maxDepth {
		return 0, nil, s.fail("nesting too deep")
	}
	s.i++ // {
	if s.peek() == '}' {
		s.i++
		return 0, nil, true
	}
	for {
		if s.peek() != '"' {
			return 0, nil, s.fail("expected a string key")
		}
		start := s.i
		var pfx [6]byte
		_, n, ok := s.str(false, pfx[:])
		if !ok {
			return 0, nil, false
		}
		if badKey == nil && reservedKey(pfx[:min(n, len(pfx))], n) {
			badKey = s.b[start+1 : s.i-1]
		}
		size += n
		if !s.expect(':', "expected ':'") {
			return 0, nil, false
		}
		if s.peek() == '"' {
			_, n, ok := s.str(false, nil)
			if !ok {
				return 0, nil, false
			}
			size += n
		} else {
			start := s.i
			if _, ok := s.value(depth); !ok {
				return 0, nil, false
			}
			size += s.i - start
		}
		switch s.peek() {
		case ',':
			s.i++
		case '}':
			s.i++
			return size, badKey, true
		default:
			return 0, nil, s.fail("expected ',' or '}'")
		}
	}
}

// reservedKey reports whether a data key of decoded length n whose first
// bytes are pfx is reserved (protocol.md §4.3): "from", "gcm", or anything
// starting with "google".
func reservedKey(pfx []byte, n int) bool {
	switch {
	case n == 4:
		return string(pfx) == "from"
	case n == 3:
		return string(pfx) == "gcm"
	case n >= 6:
		return string(pfx) == "google"
	}
	return false
}

// errNotObject is returned by DataPairs for input that is not one JSON
// object.
var errNotObject = errors.New("data is not a JSON object")

func dataPairs(data []byte, fn func(key, value string)) error {
	s := scanner{b: data}
	if s.peek() != '{' {
		return errNotObject
	}
	if !s.object(1) || !s.end() {
		return fmt.Errorf("invalid data object: %s at offset %d", s.err, s.errAt)
	}
	// The object is valid: walk it again, handing out the pairs.
	s = scanner{b: data}
	s.peek()
	s.i++ // {
	if s.peek() == '}' {
		return nil
	}
	for {
		s.peek()
		key := s.stringValue()
		s.expect(':', "")
		var value string
		if s.peek() == '"' {
			value = s.stringValue()
		} else {
			start := s.i
			s.value(1)
			value = string(data[start:s.i])
		}
		fn(key, value)
		if s.peek() == '}' {
			return nil
		}
		s.i++ // ,
	}
}

// stringValue decodes the (valid) string at s.i into a new Go string,
// leaving s.b untouched.
func (s *scanner) stringValue() string {
	start := s.i
	_, n, _ := s.str(false, nil)
	raw := s.b[start+1 : s.i-1]
	if n == len(raw) { // every escape shrinks, so there is none
		return string(raw)
	}
	return string(decodeString(raw))
}
