package xmltok

import (
	"encoding/binary"
	"unicode/utf8"
)

// Character classes shared by the Reader and the Tokenizer. Names are
// restricted to ASCII (letters, digits, '_', '-', '.', ':'); XMPP never needs
// more, and it keeps both scanners on a table lookup per byte. The "plain"
// classes are ASCII bytes a scanner may skip without a second look in that
// context.
const (
	clSpace      = 1 << iota // XML whitespace: space, tab, CR, LF
	clNameStart              // may start a name
	clName                   // may continue a name
	clContent                // Reader, character data: not '<'
	clAttr                   // Reader, attribute value: not '<' or a quote
	clTokContent             // Tokenizer, character data: not '<', '&' or '>'
	clTokAttr                // Tokenizer, attribute value: not '<', '&' or a quote
)

// class is built once from the rules above; it is read-only.
var class = buildClass()

func buildClass() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		b := byte(c)
		switch {
		case b == ' ' || b == '\t' || b == '\r' || b == '\n':
			t[c] |= clSpace
		case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', b == '_':
			t[c] |= clNameStart | clName
		case '0' <= b && b <= '9', b == '-', b == '.', b == ':':
			t[c] |= clName
		}
		if b < 0x20 || b >= 0x80 || b == '<' {
			continue
		}
		t[c] |= clContent
		if b != '&' && b != '>' {
			t[c] |= clTokContent
		}
		if b != '"' && b != '\'' {
			t[c] |= clAttr
			if b != '&' {
				t[c] |= clTokAttr
			}
		}
	}
	return t
}

func isSpace(c byte) bool { return class[c]&clSpace != 0 }

// isXMLChar reports whether r may appear in an XML 1.0 document.
func isXMLChar(r rune) bool {
	switch {
	case r == 0x09 || r == 0x0A || r == 0x0D:
		return true
	case r < 0x20:
		return false
	case r <= 0xD7FF:
		return true
	case r < 0xE000:
		return false
	case r <= 0xFFFD:
		return true
	case r < 0x10000:
		return false
	}
	return r <= 0x10FFFF
}

// Error reasons that more than one function reports.
const (
	reasonBadRef     = "malformed character or entity reference"
	reasonUnknownRef = "entity reference other than amp, lt, gt, quot, apos"
	reasonBadChar    = "character not allowed in xml"
	reasonBadUTF8    = "invalid utf-8"
)

// parseRef decodes the reference that starts at b[0] == '&'. It returns the
// character and the length of the reference including '&' and ';'.
func parseRef(b []byte) (r rune, n int, err *Error) {
	if len(b) < 3 {
		return 0, 0, &Error{Condition: "not-well-formed", Reason: reasonBadRef}
	}
	if b[1] == '#' {
		i, base := 2, rune(10)
		if b[2] == 'x' {
			i, base = 3, 16
		}
		start := i
		for ; i < len(b) && b[i] != ';'; i++ {
			d := digitVal(b[i])
			if d >= base {
				return 0, 0, &Error{Condition: "not-well-formed", Reason: reasonBadRef}
			}
			r = r*base + d
			if r > utf8.MaxRune {
				return 0, 0, &Error{Condition: "not-well-formed", Reason: reasonBadRef}
			}
		}
		if i == start || i == len(b) {
			return 0, 0, &Error{Condition: "not-well-formed", Reason: reasonBadRef}
		}
		if !isXMLChar(r) {
			return 0, 0, &Error{Condition: "not-well-formed", Reason: reasonBadChar}
		}
		return r, i + 1, nil
	}
	i := 1
	for i < len(b) && i < 16 && b[i] != ';' {
		if class[b[i]]&clName == 0 || (i == 1 && class[b[i]]&clNameStart == 0) {
			return 0, 0, &Error{Condition: "not-well-formed", Reason: reasonBadRef}
		}
		i++
	}
	if i >= len(b) || b[i] != ';' || i == 1 {
		if i == 16 {
			return 0, 0, &Error{Condition: "restricted-xml", Reason: reasonUnknownRef}
		}
		return 0, 0, &Error{Condition: "not-well-formed", Reason: reasonBadRef}
	}
	switch string(b[1:i]) {
	case "amp":
		r = '&'
	case "lt":
		r = '<'
	case "gt":
		r = '>'
	case "quot":
		r = '"'
	case "apos":
		r = '\''
	default:
		return 0, 0, &Error{Condition: "restricted-xml", Reason: reasonUnknownRef}
	}
	return r, i + 1, nil
}

func digitVal(c byte) rune {
	switch {
	case '0' <= c && c <= '9':
		return rune(c - '0')
	case 'a' <= c && c <= 'f':
		return rune(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return rune(c-'A') + 10
	}
	return 99
}

func unescape(dst, raw []byte) ([]byte, error) {
	for len(raw) > 0 {
		i := 0
		for i < len(raw) && raw[i] != '&' {
			i++
		}
		dst = append(dst, raw[:i]...)
		if i == len(raw) {
			break
		}
		r, n, err := parseRef(raw[i:])
		if err != nil {
			return dst, err
		}
		dst = utf8.AppendRune(dst, r)
		raw = raw[i+n:]
	}
	return dst, nil
}

func appendText(dst, s []byte) []byte { return appendTextEsc(dst, s) }

func appendTextString(dst []byte, s string) []byte { return appendTextEsc(dst, s) }

func appendAttr(dst []byte, s string) []byte { return appendAttrEsc(dst, s) }

// appendTextEsc appends s with &, < and > escaped (character data; the hot
// path of every ACK, so quotes do not even reach the switch).
func appendTextEsc[T ~string | ~[]byte](dst []byte, s T) []byte {
	last := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c > '>' || c != '&' && c != '<' && c != '>' {
			continue
		}
		dst = append(dst, s[last:i]...)
		switch c {
		case '&':
			dst = append(dst, "&amp;"...)
		case '<':
			dst = append(dst, "&lt;"...)
		default:
			dst = append(dst, "&gt;"...)
		}
		last = i + 1
	}
	return append(dst, s[last:]...)
}

// appendAttrEsc appends s escaped for a quoted attribute value.
func appendAttrEsc[T ~string | ~[]byte](dst []byte, s T) []byte {
	last := 0
	for i := 0; i < len(s); i++ {
		var esc string
		switch s[i] {
		case '&':
			esc = "&amp;"
		case '<':
			esc = "&lt;"
		case '>':
			esc = "&gt;"
		case '"':
			esc = "&quot;"
		case '\'':
			esc = "&apos;"
		default:
			continue
		}
		dst = append(dst, s[last:i]...)
		dst = append(dst, esc...)
		last = i + 1
	}
	return append(dst, s[last:]...)
}

// skipPlain returns the index of the first byte in b[i:stop] that is a
// control character, non-ASCII, or one of c1, c2, c3 (or stop). It checks
// eight bytes at a time; callers finish with their per-byte loop from there.
func skipPlain(b []byte, i, stop int, c1, c2, c3 byte) int {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	m1, m2, m3 := lo*uint64(c1), lo*uint64(c2), lo*uint64(c3)
	for i+8 <= stop {
		w := binary.LittleEndian.Uint64(b[i:])
		e1, e2, e3 := w^m1, w^m2, w^m3
		// A byte < 0x20 or == c sets its high bit in these terms, a byte
		// >= 0x80 sets it in w; "any byte" is exact though single lanes
		// may be wrong after a borrow.
		special := w | (w-lo*0x20)&^w | (e1-lo)&^e1 | (e2-lo)&^e2 | (e3-lo)&^e3
		if special&hi != 0 {
			break
		}
		i += 8
	}
	return i
}
