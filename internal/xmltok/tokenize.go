package xmltok

import (
	"bytes"
	"io"
	"unicode/utf8"
)

// Reasons for rules where the Tokenizer is deliberately stricter than
// encoding/xml; the differential fuzz test knows them.
const (
	reasonAfterRoot   = "content after the root element"
	reasonQName       = "name is not a qualified name"
	reasonNoSpace     = "missing whitespace between attributes"
	reasonDupAttr     = "duplicate attribute"
	reasonCDATAEnd    = "]]> in character data"
	reasonNotElement  = "frame does not start with an element"
	reasonUnexpectEnd = "unexpected end of frame"
)

type tokState uint8

const (
	tsStart      tokState = iota // nothing returned yet
	tsIn                         // inside the root element
	tsPendingEnd                 // a self-closing start tag was returned; its EndElement is next
	tsDone                       // the root element (or a lone stream header) is complete
	tsErr
)

// qspan is an open element's qualified name in the frame.
type qspan struct{ start, colon, end int }

// tokenizer is the implementation of Tokenizer. Its slices are reused from
// frame to frame.
type tokenizer struct {
	b     []byte
	pos   int
	state tokState
	err   error
	stack []qspan
	attrs []Attr
	pend  qspan // the self-closed element
}

func (t *tokenizer) reset(b []byte) {
	t.b = b
	t.pos = 0
	t.state = tsStart
	t.err = nil
	t.stack = t.stack[:0]
	t.attrs = t.attrs[:0]
}

func (t *tokenizer) fail(i int, cond, reason string) (Token, error) {
	t.state = tsErr
	t.err = &Error{Condition: cond, Reason: reason, Offset: int64(i)}
	return Token{}, t.err
}

func (t *tokenizer) failErr(i int, e *Error) (Token, error) {
	e.Offset = int64(i)
	t.state = tsErr
	t.err = e
	return Token{}, e
}

func (t *tokenizer) name(q qspan) (prefix, local []byte) {
	if q.colon < 0 {
		return nil, t.b[q.start:q.end:q.end]
	}
	return t.b[q.start:q.colon:q.colon], t.b[q.colon+1 : q.end : q.end]
}

// offset is the position in the frame where the next token starts.
func (t *tokenizer) offset() int { return t.pos }

func (t *tokenizer) next() (Token, error) {
	b := t.b
	switch t.state {
	case tsErr:
		return Token{}, t.err
	case tsDone:
		if t.pos < len(b) {
			return t.fail(t.pos, "not-well-formed", reasonAfterRoot)
		}
		return Token{}, io.EOF
	case tsPendingEnd:
		t.state = tsIn
		if len(t.stack) == 0 {
			t.state = tsDone
		}
		p, l := t.name(t.pend)
		return Token{Kind: EndElement, Prefix: p, Local: l}, nil
	case tsStart:
		if len(b) < 2 || b[0] != '<' || class[b[1]]&clNameStart == 0 {
			if len(b) >= 2 && b[0] == '<' && (b[1] == '?' || b[1] == '!') {
				return t.fail(0, "restricted-xml", "processing instruction, comment or doctype")
			}
			return t.fail(0, "not-well-formed", reasonNotElement)
		}
		tok, err := t.startTag()
		if err == nil && !tok.SelfClosing && t.pos == len(b) {
			t.state = tsDone // a stream header: the start tag alone
		}
		return tok, err
	}
	if t.pos >= len(b) {
		return t.fail(t.pos, "not-well-formed", reasonUnexpectEnd)
	}
	if b[t.pos] != '<' {
		return t.charData()
	}
	if t.pos+1 >= len(b) {
		return t.fail(t.pos, "not-well-formed", reasonUnexpectEnd)
	}
	switch b[t.pos+1] {
	case '/':
		return t.endTag()
	case '!':
		return t.cdata()
	case '?':
		return t.fail(t.pos, "restricted-xml", "processing instruction")
	}
	return t.startTag()
}

// qname scans a qualified name at b[i].
func (t *tokenizer) qname(i int) (qspan, int, error) {
	b := t.b
	q := qspan{start: i, colon: -1}
	if i >= len(b) || class[b[i]]&clNameStart == 0 {
		_, err := t.fail(i, "not-well-formed", "invalid name")
		return q, i, err
	}
	for i < len(b) && class[b[i]]&clName != 0 {
		if b[i] == ':' {
			if q.colon >= 0 || i+1 >= len(b) || class[b[i+1]]&clNameStart == 0 {
				_, err := t.fail(i, "not-well-formed", reasonQName)
				return q, i, err
			}
			q.colon = i
		}
		i++
	}
	q.end = i
	return q, i, nil
}

func (t *tokenizer) skipSpace(i int) int {
	for i < len(t.b) && isSpace(t.b[i]) {
		i++
	}
	return i
}

func (t *tokenizer) startTag() (Token, error) {
	b := t.b
	q, i, err := t.qname(t.pos + 1)
	if err != nil {
		return Token{}, err
	}
	t.attrs = t.attrs[:0]
	self := false
	for {
		sp := i
		i = t.skipSpace(i)
		if i >= len(b) {
			return t.fail(i, "not-well-formed", reasonUnexpectEnd)
		}
		if b[i] == '>' {
			i++
			break
		}
		if b[i] == '/' {
			if i+1 < len(b) && b[i+1] == '>' {
				i += 2
				self = true
				break
			}
			return t.fail(i, "not-well-formed", "/ not followed by > in start tag")
		}
		if i == sp {
			return t.fail(i, "not-well-formed", reasonNoSpace)
		}
		aq, j, err := t.qname(i)
		if err != nil {
			return Token{}, err
		}
		j = t.skipSpace(j)
		if j >= len(b) || b[j] != '=' {
			return t.fail(j, "not-well-formed", "attribute without a value")
		}
		j = t.skipSpace(j + 1)
		if j >= len(b) || (b[j] != '"' && b[j] != '\'') {
			return t.fail(j, "not-well-formed", "unquoted attribute value")
		}
		vs := j + 1
		ve, err := t.scanText(vs, b[j])
		if err != nil {
			return Token{}, err
		}
		ap, al := t.name(aq)
		for _, a := range t.attrs {
			if bytes.Equal(a.Local, al) && bytes.Equal(a.Prefix, ap) && (a.Prefix == nil) == (ap == nil) {
				return t.fail(i, "not-well-formed", reasonDupAttr)
			}
		}
		t.attrs = append(t.attrs, Attr{Prefix: ap, Local: al, Value: b[vs:ve:ve]})
		i = ve + 1
	}
	t.pos = i
	p, l := t.name(q)
	tok := Token{Kind: StartElement, Prefix: p, Local: l, Attrs: t.attrs, SelfClosing: self}
	if self {
		t.pend = q
		t.state = tsPendingEnd
	} else {
		t.stack = append(t.stack, q)
		t.state = tsIn
	}
	return tok, nil
}

func (t *tokenizer) endTag() (Token, error) {
	b := t.b
	q, i, err := t.qname(t.pos + 2)
	if err != nil {
		return Token{}, err
	}
	i = t.skipSpace(i)
	if i >= len(b) || b[i] != '>' {
		return t.fail(i, "not-well-formed", "invalid character in end tag")
	}
	open := t.stack[len(t.stack)-1]
	if !bytes.Equal(b[open.start:open.end], b[q.start:q.end]) {
		return t.fail(t.pos, "not-well-formed", "end tag does not match start tag")
	}
	t.stack = t.stack[:len(t.stack)-1]
	if len(t.stack) == 0 {
		t.state = tsDone
	}
	t.pos = i + 1
	p, l := t.name(q)
	return Token{Kind: EndElement, Prefix: p, Local: l}, nil
}

func (t *tokenizer) charData() (Token, error) {
	start := t.pos
	end, err := t.scanText(start, '<')
	if err != nil {
		return Token{}, err
	}
	if end >= len(t.b) {
		return t.fail(end, "not-well-formed", reasonUnexpectEnd)
	}
	t.pos = end
	return Token{Kind: CharData, Text: t.b[start:end:end]}, nil
}

func (t *tokenizer) cdata() (Token, error) {
	b := t.b
	const open = "<![CDATA["
	if !bytes.HasPrefix(b[t.pos:], []byte(open)) {
		if len(b)-t.pos < len(open) && bytes.HasPrefix([]byte(open), b[t.pos:]) {
			return t.fail(t.pos, "not-well-formed", reasonUnexpectEnd)
		}
		return t.fail(t.pos, "restricted-xml", "comment, doctype or other <! markup")
	}
	start := t.pos + len(open)
	n := bytes.Index(b[start:], []byte("]]>"))
	if n < 0 {
		return t.fail(len(b), "not-well-formed", reasonUnexpectEnd)
	}
	text := b[start : start+n : start+n]
	if i, e := checkChars(text); e != nil {
		return t.failErr(start+i, e)
	}
	t.pos = start + n + 3
	return Token{Kind: CDATA, Text: text}, nil
}

// scanText validates character data or an attribute value from b[i] up to
// the first stop byte ('<' for character data, the quote for attribute
// values) and returns its index. For character data the end of the frame
// also stops it.
func (t *tokenizer) scanText(i int, stop byte) (int, error) {
	b := t.b
	plain := uint8(clTokContent)
	c1, c2, c3 := byte('<'), byte('&'), byte('>')
	if stop != '<' {
		plain = clTokAttr
		c3 = stop
	}
	for i < len(b) {
		c := b[i]
		if class[c]&plain != 0 {
			i = skipPlain(b, i+1, len(b), c1, c2, c3)
			continue
		}
		switch {
		case c == stop:
			return i, nil
		case c == '&':
			_, n, e := parseRef(b[i:])
			if e != nil {
				_, err := t.failErr(i, e)
				return i, err
			}
			i += n
		case c == '<':
			_, err := t.fail(i, "not-well-formed", "< in attribute value")
			return i, err
		case c == '>':
			if stop == '<' && i >= 2 && b[i-1] == ']' && b[i-2] == ']' {
				_, err := t.fail(i, "not-well-formed", reasonCDATAEnd)
				return i, err
			}
			i++
		case c == '"' || c == '\'':
			i++
		case c < 0x80:
			if !isSpace(c) {
				_, err := t.fail(i, "not-well-formed", reasonBadChar)
				return i, err
			}
			i++
		default:
			r, n := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && n <= 1 {
				_, err := t.fail(i, "not-well-formed", reasonBadUTF8)
				return i, err
			}
			if !isXMLChar(r) {
				_, err := t.fail(i, "not-well-formed", reasonBadChar)
				return i, err
			}
			i += n
		}
	}
	if stop == '<' {
		return i, nil
	}
	_, err := t.fail(i, "not-well-formed", reasonUnexpectEnd)
	return i, err
}

// checkChars validates that b is UTF-8 made of XML characters; it returns
// the offset of the first bad byte.
func checkChars(b []byte) (int, *Error) {
	for i := 0; i < len(b); {
		c := b[i]
		if c >= 0x20 && c < 0x80 || isSpace(c) {
			i++
			continue
		}
		if c < 0x80 {
			return i, &Error{Condition: "not-well-formed", Reason: reasonBadChar}
		}
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i, &Error{Condition: "not-well-formed", Reason: reasonBadUTF8}
		}
		if !isXMLChar(r) {
			return i, &Error{Condition: "not-well-formed", Reason: reasonBadChar}
		}
		i += n
	}
	return 0, nil
}

// Offset returns the position in the frame where the next token starts, so
// that, taken before and after a run of tokens, it delimits their raw bytes
// (xmpp uses it to echo a <gcm> child verbatim).
func (t *Tokenizer) Offset() int { return t.impl.offset() }
