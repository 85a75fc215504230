package gcm

import (
	"encoding/binary"
	"unicode/utf8"
)

// maxDepth bounds the nesting of JSON objects and arrays (the top-level
// object counts as 1). Deeper input is refused as a parsing error.
const maxDepth = 64

// kind is the type of a JSON value, as told by its first byte.
type kind uint8

const (
	kindAbsent kind = iota // the field did not occur
	kindString
	kindNumber
	kindObject
	kindArray
	kindTrue
	kindFalse
	kindNull
)

// scanner is a strict RFC 8259 scanner over b. It never allocates. The
// first failure is kept in err (a constant) and errAt (the byte offset);
// every method returns false once scanning has failed.
type scanner struct {
	b     []byte
	i     int    // next byte to read
	err   string // why scanning failed; "" while ok
	errAt int
}

// fail records why at the current offset (if nothing failed before) and
// returns false.
func (s *scanner) fail(why string) bool {
	if s.err == "" {
		s.err = why
		s.errAt = s.i
	}
	return false
}

// ws skips JSON whitespace.
func (s *scanner) ws() {
	if s.i < len(s.b) && s.b[s.i] > ' ' {
		return
	}
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// peek returns the next byte after whitespace, or 0 at the end.
func (s *scanner) peek() byte {
	s.ws()
	if s.i >= len(s.b) {
		return 0
	}
	return s.b[s.i]
}

// expect consumes c after optional whitespace.
func (s *scanner) expect(c byte, why string) bool {
	if s.peek() != c {
		return s.fail(why)
	}
	s.i++
	return true
}

// plain marks the string bytes that need no attention: everything but the
// quote, the backslash, control characters and non-ASCII bytes.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// plainWord reports whether the 8 bytes of x are all plain. It may
// report false for a plain word (the byte loop then decides), never true
// for one that is not.
func plainWord(x uint64) bool {
	const lsb, msb = 0x0101010101010101, 0x8080808080808080
	q := x ^ ('"' * lsb)                         // zero bytes where x has '"'
	bs := x ^ ('\\' * lsb)                       // zero bytes where x has '\\'
	t := (x - 0x20*lsb) | (q - lsb) | (bs - lsb) // high bit set: maybe < 0x20, '"' or '\\'
	return (t|x)&msb == 0
}

// str scans the string whose opening quote is at s.i and leaves s.i after
// its closing quote. When write is true it unescapes the string in place
// (unescaping never lengthens a string) and dec is the decoded string, a
// slice of s.b; otherwise s.b is untouched and dec is nil. n is the decoded
// length in bytes. When pfx is non-nil it receives the first len(pfx)
// decoded bytes. Invalid UTF-8, control characters and bad escapes are
// refused; lone surrogates in \u escapes decode to U+FFFD, as
// encoding/json does.
func (s *scanner) str(write bool, pfx []byte) (dec []byte, n int, ok bool) {
	b := s.b
	i := s.i + 1
	start := i
	w := i // the virtual write offset; real only when write
	for {
		j := i
		for j+8 <= len(b) && plainWord(binary.LittleEndian.Uint64(b[j:])) {
			j += 8
		}
		for j < len(b) && plain[b[j]] {
			j++
		}
		if j > i {
			w = s.emit(write && w != i, pfx, start, w, b[i:j])
			i = j
		}
		if i >= len(b) {
			s.i = i
			return nil, 0, s.fail("unterminated string")
		}
		switch c := b[i]; {
		case c == '"':
			s.i = i + 1
			if write {
				dec = b[start:w]
			}
			return dec, w - start, true
		case c == '\\':
			var tmp [utf8.UTFMax]byte
			k, m := unescape(b[i:], &tmp)
			if m == 0 {
				s.i = i
				return nil, 0, s.fail("invalid escape in string")
			}
			w = s.emit(write, pfx, start, w, tmp[:k])
			i += m
		case c < 0x20:
			s.i = i
			return nil, 0, s.fail("control character in string")
		default:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				s.i = i
				return nil, 0, s.fail("invalid UTF-8 in string")
			}
			w = s.emit(write && w != i, pfx, start, w, b[i:i+size])
			i += size
		}
	}
}

// emit accounts for decoded bytes p at the virtual offset w of a string
// starting at start and returns the new offset. When move is true p is
// copied to s.b[w:]; p may overlap it (copy is a memmove, and w never
// passes the read offset).
func (s *scanner) emit(move bool, pfx []byte, start, w int, p []byte) int {
	if move {
		copy(s.b[w:], p)
	}
	if pfx != nil && w-start < len(pfx) {
		copy(pfx[w-start:], p)
	}
	return w + len(p)
}

// unescape decodes the escape sequence at the start of e (which begins
// with a backslash) into tmp. It returns the decoded length k and the
// number of bytes consumed m; m is 0 for an invalid escape.
func unescape(e []byte, tmp *[utf8.UTFMax]byte) (k, m int) {
	if len(e) < 2 {
		return 0, 0
	}
	switch e[1] {
	case '"', '\\', '/':
		tmp[0] = e[1]
	case 'b':
		tmp[0] = '\b'
	case 'f':
		tmp[0] = '\f'
	case 'n':
		tmp[0] = '\n'
	case 'r':
		tmp[0] = '\r'
	case 't':
		tmp[0] = '\t'
	case 'u':
		r, ok := hex4(e[2:])
		if !ok {
			return 0, 0
		}
		m = 6
		switch {
		case r >= 0xD800 && r < 0xDC00:
			// A high surrogate: combine it with a following low one.
			if len(e) >= 12 && e[6] == '\\' && e[7] == 'u' {
				if r2, ok := hex4(e[8:]); ok && r2 >= 0xDC00 && r2 < 0xE000 {
					r = 0x10000 + (r-0xD800)<<10 + (r2 - 0xDC00)
					m = 12
					break
				}
			}
			r = utf8.RuneError
		case r >= 0xDC00 && r < 0xE000:
			r = utf8.RuneError
		}
		return utf8.EncodeRune(tmp[:], r), m
	default:
		return 0, 0
	}
	return 1, 2
}

// hex4 decodes four hexadecimal digits.
func hex4(h []byte) (rune, bool) {
	if len(h) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range h[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// number scans a JSON number at s.i. isInt reports whether it has neither
// a fraction nor an exponent.
func (s *scanner) number() (isInt bool, ok bool) {
	b := s.b
	i := s.i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		s.i = i
		return false, s.fail("invalid number")
	}
	isInt = true
	if i < len(b) && b[i] == '.' {
		isInt = false
		i++
		j := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == j {
			s.i = i
			return false, s.fail("invalid number")
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		isInt = false
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == j {
			s.i = i
			return false, s.fail("invalid number")
		}
	}
	s.i = i
	return isInt, true
}

// literal consumes the literal lit (true, false or null) at s.i.
func (s *scanner) literal(lit string) bool {
	if len(s.b)-s.i < len(lit) || string(s.b[s.i:s.i+len(lit)]) != lit {
		return s.fail("invalid literal")
	}
	s.i += len(lit)
	return true
}

// value scans any JSON value after optional whitespace, without rewriting
// s.b, and returns its kind. depth is the nesting of the enclosing
// container.
func (s *scanner) value(depth int) (kind, bool) {
	switch s.peek() {
	case '"':
		_, _, ok := s.str(false, nil)
		return kindString, ok
	case '{':
		return kindObject, s.object(depth + 1)
	case '[':
		return kindArray, s.array(depth + 1)
	case 't':
		return kindTrue, s.literal("true")
	case 'f':
		return kindFalse, s.literal("false")
	case 'n':
		return kindNull, s.literal("null")
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		_, ok := s.number()
		return kindNumber, ok
	case 0:
		return kindAbsent, s.fail("unexpected end of input")
	default:
		return kindAbsent, s.fail("unexpected character")
	}
}

// object scans an object whose opening brace is at s.i, at nesting depth.
func (s *scanner) object(depth int) bool {
	if depth > maxDepth {
		return s.fail("nesting too deep")
	}
	s.i++ // {
	if s.peek() == '}' {
		s.i++
		return true
	}
	for {
		if s.peek() != '"' {
			return s.fail("expected a string key")
		}
		if _, _, ok := s.str(false, nil); !ok {
			return false
		}
		if !s.expect(':', "expected ':'") {
			return false
		}
		if _, ok := s.value(depth); !ok {
			return false
		}
		switch s.peek() {
		case ',':
			s.i++
		case '}':
			s.i++
			return true
		default:
			return s.fail("expected ',' or '}'")
		}
	}
}

// array scans an array whose opening bracket is at s.i, at nesting depth.
func (s *scanner) array(depth int) bool {
	if depth > maxDepth {
		return s.fail("nesting too deep")
	}
	s.i++ // [
	if s.peek() == ']' {
		s.i++
		return true
	}
	for {
		if _, ok := s.value(depth); !ok {
			return false
		}
		switch s.peek() {
		case ',':
			s.i++
		case ']':
			s.i++
			return true
		default:
			return s.fail("expected ',' or ']'")
		}
	}
}

// end checks that only whitespace follows.
func (s *scanner) end() bool {
	s.ws()
	if s.i != len(s.b) {
		return s.fail("trailing data after the JSON object")
	}
	return true
}
