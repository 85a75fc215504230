package xmltok

// The Reader's scanner: a byte-at-a-time state machine whose whole state
// lives in scanner, so that scanning stops at the end of the buffered bytes
// and resumes after the next read exactly where it stopped. It checks what
// framing needs and what must be refused before buffering: tag and attribute
// syntax, quotes, CDATA, nesting (with matching end tag names), limits,
// restricted XML and UTF-8. Entity references are left to the Tokenizer and
// Unescape.

type scanState uint8

const (
	stIdle       scanState = iota // at a frame boundary
	stOpen                        // after '<'
	stStartName                   // in the name of a start tag
	stTagSpace                    // in a start tag, after the name or an attribute and whitespace
	stAttrName                    // in an attribute name
	stAttrEq                      // after an attribute name, before '='
	stAttrQuote                   // after '=', before the opening quote
	stAttrValue                   // inside a quoted attribute value
	stAfterValue                  // right after the closing quote
	stEmptyEnd                    // after '/' in a start tag
	stEndName                     // in the name of an end tag
	stEndSpace                    // after the name of an end tag
	stContent                     // character data inside a stanza
	stBang                        // after "<!", matching "[CDATA["
	stCDATA                       // inside a CDATA section
	stDeclName                    // after "<?", matching "xml"
	stDecl                        // inside the XML declaration
)

type level uint8

const (
	lvProlog level = iota // before the stream header: XML declaration allowed
	lvStream              // inside the stream: stanzas, whitespace, the end tag
	lvClosed              // after </stream:stream>
)

// nameSpan locates an open element's name relative to the frame start.
type nameSpan struct{ off, n int32 }

// scanner is the state of the frame in progress.
type scanner struct {
	st       scanState
	level    level
	declSeen bool
	quote    byte // the quote that opened the attribute value
	match    int  // bytes of a literal ("[CDATA[", "xml", "]]>", "?>") matched so far
	depth    int  // open elements of the stanza in progress
	attrs    int  // attributes on the current start tag
	nameOff  int  // start of the current start tag's name, relative to the frame start
	nameLen  int
	cmp      int // bytes of the expected end tag name matched so far

	u8need   uint8 // continuation bytes still expected
	u8lo     byte  // allowed range of the next continuation byte
	u8hi     byte
	u8lead   byte
	stack    []nameSpan // names of the open elements of the stanza
	hdrName  []byte     // the stream header's element name, for </stream:stream>
	kindDone FrameKind  // kind of the frame just completed; 0 for a skipped XML declaration
}

func (s *scanner) restart() {
	s.st = stIdle
	s.level = lvProlog
	s.declSeen = false
	s.depth = 0
	s.stack = s.stack[:0]
	s.u8need = 0
	s.match = 0
}

// scan advances over buffered bytes until a frame is complete (ok), the
// buffer is exhausted (!ok, nil), or the input is malformed.
func (r *reader) scan() (Frame, bool, error) {
	for {
		if r.st == stIdle {
			if r.pos >= r.end {
				return Frame{}, false, nil
			}
			c := r.buf[r.pos]
			if isSpace(c) {
				i := r.pos + 1
				for i < r.end && isSpace(r.buf[i]) {
					i++
				}
				f := Frame{Kind: Whitespace, Raw: r.buf[r.pos:i:i]}
				r.pos, r.start = i, i
				if r.level == lvProlog {
					continue // whitespace around the XML declaration is not a frame
				}
				return f, true, nil
			}
			if c != '<' {
				return Frame{}, false, r.fail(r.pos, "not-well-formed", "text outside a stanza")
			}
			r.start = r.pos
			r.pos++
			r.st = stOpen
		}
		limit := r.start + r.maxStanza
		stop := min(r.end, limit)
		done, err := r.scanFrame(stop)
		if err != nil {
			return Frame{}, false, err
		}
		if !done {
			if stop == limit {
				return Frame{}, false, r.fail(r.pos, "policy-violation", "stanza larger than the limit")
			}
			return Frame{}, false, nil
		}
		f := Frame{Kind: r.kindDone, Raw: r.buf[r.start:r.pos:r.pos]}
		r.start = r.pos
		r.st = stIdle
		if f.Kind != 0 {
			return f, true, nil
		}
	}
}

// scanFrame runs the state machine over buf[pos:stop]. It returns true when
// the frame in progress is complete (r.pos is then just past it and
// r.kindDone says what it was).
func (r *reader) scanFrame(stop int) (bool, error) {
	buf := r.buf
	i := r.pos
	st := r.st
	for i < stop {
		c := buf[i]
		if r.u8need > 0 {
			if c < r.u8lo || c > r.u8hi {
				return false, r.fail(i, "not-well-formed", reasonBadUTF8)
			}
			r.u8need--
			r.u8lo, r.u8hi = 0x80, 0xBF
			if r.u8need == 1 && r.u8lead == 0xEF && c == 0xBF {
				r.u8hi = 0xBD // U+FFFE and U+FFFF are not XML characters
			}
			i++
			continue
		}
		switch st {
		case stContent:
			j := skipPlain(buf, i, stop, '<', '<', '<')
			for j < stop && class[buf[j]]&clContent != 0 {
				j++
			}
			if j == stop {
				i = j
				continue
			}
			i, c = j, buf[j]
			switch {
			case c == '<':
				st = stOpen
			case c >= 0x80:
				if err := r.utf8Lead(i, c); err != nil {
					return false, err
				}
			case !isSpace(c):
				return false, r.fail(i, "not-well-formed", reasonBadChar)
			}

		case stOpen:
			switch {
			case c == '/':
				if r.level != lvStream {
					return false, r.fail(i, "not-well-formed", "end tag before the stream header")
				}
				st, r.cmp = stEndName, 0
			case c == '!':
				st, r.match = stBang, 0
			case c == '?':
				if r.level != lvProlog || r.declSeen {
					return false, r.fail(i, "restricted-xml", "processing instruction")
				}
				st, r.match = stDeclName, 0
			case class[c]&clNameStart != 0:
				if r.level == lvStream && r.depth >= r.maxDepth {
					return false, r.fail(i, "policy-violation", "elements nested deeper than the limit")
				}
				st = stStartName
				r.nameOff = i - r.start
				r.attrs = 0
			default:
				return false, r.fail(i, "not-well-formed", "invalid character after <")
			}

		case stStartName:
			if class[c]&clName != 0 {
				break
			}
			r.nameLen = i - r.start - r.nameOff
			fallthrough
		case stTagSpace:
			switch {
			case isSpace(c):
				st = stTagSpace
			case c == '/':
				st = stEmptyEnd
			case c == '>':
				var err error
				if st, err = r.startTagDone(i, false); err != nil || st == stIdle {
					r.pos = i + 1
					return err == nil, err
				}
			case st == stTagSpace && class[c]&clNameStart != 0:
				r.attrs++
				if r.attrs > r.maxAttrs {
					return false, r.fail(i, "policy-violation", "more attributes than the limit")
				}
				st = stAttrName
			default:
				return false, r.fail(i, "not-well-formed", "invalid character in start tag")
			}

		case stAttrName:
			switch {
			case class[c]&clName != 0:
			case isSpace(c):
				st = stAttrEq
			case c == '=':
				st = stAttrQuote
			default:
				return false, r.fail(i, "not-well-formed", "invalid character in attribute name")
			}

		case stAttrEq:
			switch {
			case isSpace(c):
			case c == '=':
				st = stAttrQuote
			default:
				return false, r.fail(i, "not-well-formed", "attribute without a value")
			}

		case stAttrQuote:
			switch {
			case isSpace(c):
			case c == '"' || c == '\'':
				st, r.quote = stAttrValue, c
			default:
				return false, r.fail(i, "not-well-formed", "unquoted attribute value")
			}

		case stAttrValue:
			q := r.quote
			j := skipPlain(buf, i, stop, '<', '"', '\'')
			for j < stop && class[buf[j]]&clAttr != 0 {
				j++
			}
			if j == stop {
				i = j
				continue
			}
			i, c = j, buf[j]
			switch {
			case c == q:
				st = stAfterValue
			case c == '"' || c == '\'':
				// the other quote is plain text here
			case c == '<':
				return false, r.fail(i, "not-well-formed", "< in attribute value")
			case c >= 0x80:
				if err := r.utf8Lead(i, c); err != nil {
					return false, err
				}
			case !isSpace(c):
				return false, r.fail(i, "not-well-formed", reasonBadChar)
			}

		case stAfterValue:
			switch {
			case isSpace(c):
				st = stTagSpace
			case c == '/':
				st = stEmptyEnd
			case c == '>':
				var err error
				if st, err = r.startTagDone(i, false); err != nil || st == stIdle {
					r.pos = i + 1
					return err == nil, err
				}
			default:
				return false, r.fail(i, "not-well-formed", "missing whitespace between attributes")
			}

		case stEmptyEnd:
			if c != '>' {
				return false, r.fail(i, "not-well-formed", "/ not followed by > in start tag")
			}
			var err error
			if st, err = r.startTagDone(i, true); err != nil || st == stIdle {
				r.pos = i + 1
				return err == nil, err
			}

		case stEndName:
			want := r.openName()
			switch {
			case class[c]&clName != 0 && (r.cmp > 0 || class[c]&clNameStart != 0):
				if r.cmp >= len(want) || want[r.cmp] != c {
					return false, r.fail(i, "not-well-formed", "end tag does not match start tag")
				}
				r.cmp++
			case r.cmp == 0:
				return false, r.fail(i, "not-well-formed", "invalid character in end tag")
			case r.cmp != len(want):
				return false, r.fail(i, "not-well-formed", "end tag does not match start tag")
			case isSpace(c):
				st = stEndSpace
			case c == '>':
				if st = r.endTagDone(); st == stIdle {
					r.pos = i + 1
					return true, nil
				}
			default:
				return false, r.fail(i, "not-well-formed", "invalid character in end tag")
			}

		case stEndSpace:
			switch {
			case isSpace(c):
			case c == '>':
				if st = r.endTagDone(); st == stIdle {
					r.pos = i + 1
					return true, nil
				}
			default:
				return false, r.fail(i, "not-well-formed", "invalid character in end tag")
			}

		case stBang:
			const lit = "[CDATA["
			if r.level != lvStream || r.depth == 0 {
				if c == '[' {
					return false, r.fail(i, "not-well-formed", "cdata outside a stanza")
				}
				return false, r.fail(i, "restricted-xml", "comment, doctype or other <! markup")
			}
			if c != lit[r.match] {
				return false, r.fail(i, "restricted-xml", "comment, doctype or other <! markup")
			}
			if r.match++; r.match == len(lit) {
				st, r.match = stCDATA, 0
			}

		case stCDATA:
			switch {
			case c == ']':
				r.match = min(r.match+1, 2)
			case c == '>' && r.match == 2:
				st, r.match = stContent, 0
			default:
				r.match = 0
				if err := r.textByte(i, c); err != nil {
					return false, err
				}
			}

		case stDeclName:
			if r.match < 3 {
				if c != "xml"[r.match] {
					return false, r.fail(i, "restricted-xml", "processing instruction")
				}
				r.match++
				break
			}
			if !isSpace(c) {
				return false, r.fail(i, "restricted-xml", "processing instruction")
			}
			st, r.match = stDecl, 0

		case stDecl:
			switch {
			case c == '?':
				r.match = 1
			case c == '>' && r.match == 1:
				if !declEncodingOK(buf[r.start : i+1]) {
					return false, r.fail(i, "unsupported-encoding", "encoding other than utf-8")
				}
				r.declSeen = true
				r.kindDone = 0
				r.st = stIdle
				r.pos = i + 1
				return true, nil
			case c == '<':
				return false, r.fail(i, "not-well-formed", "< in xml declaration")
			default:
				r.match = 0
				if err := r.textByte(i, c); err != nil {
					return false, err
				}
			}
		}
		i++
	}
	r.pos = i
	r.st = st
	return false, nil
}

// textByte checks one byte of character data that is not markup.
func (r *reader) textByte(i int, c byte) error {
	switch {
	case c >= 0x80:
		return r.utf8Lead(i, c)
	case c < 0x20 && !isSpace(c):
		return r.fail(i, "not-well-formed", reasonBadChar)
	}
	return nil
}

// utf8Lead starts a multi-byte UTF-8 sequence; the continuation bytes are
// checked at the top of scanFrame, whichever read they arrive in.
func (r *reader) utf8Lead(i int, c byte) error {
	r.u8lo, r.u8hi, r.u8lead = 0x80, 0xBF, c
	switch {
	case c < 0xC2:
		return r.fail(i, "not-well-formed", reasonBadUTF8)
	case c < 0xE0:
		r.u8need = 1
	case c == 0xE0:
		r.u8need, r.u8lo = 2, 0xA0
	case c == 0xED:
		r.u8need, r.u8hi = 2, 0x9F // no surrogates
	case c < 0xF0:
		r.u8need = 2
	case c == 0xF0:
		r.u8need, r.u8lo = 3, 0x90
	case c < 0xF4:
		r.u8need = 3
	case c == 0xF4:
		r.u8need, r.u8hi = 3, 0x8F
	default:
		return r.fail(i, "not-well-formed", reasonBadUTF8)
	}
	return nil
}

// startTagDone handles the '>' at buf[i] that ends a start tag. It returns
// the next state; stIdle means a frame is complete (r.kindDone set).
func (r *reader) startTagDone(i int, selfClosing bool) (scanState, error) {
	if r.level == lvProlog {
		if selfClosing {
			return 0, r.fail(i, "bad-format", "self-closing stream header")
		}
		name := r.buf[r.start+r.nameOff : r.start+r.nameOff+r.nameLen]
		r.hdrName = append(r.hdrName[:0], name...)
		r.level = lvStream
		r.depth = 0
		r.kindDone = StreamStart
		return stIdle, nil
	}
	if selfClosing {
		if r.depth == 0 {
			r.kindDone = Stanza
			return stIdle, nil
		}
		return stContent, nil
	}
	r.stack = append(r.stack, nameSpan{off: int32(r.nameOff), n: int32(r.nameLen)})
	r.depth++
	return stContent, nil
}

// endTagDone handles the '>' that ends an end tag whose name matched.
func (r *reader) endTagDone() scanState {
	if r.depth == 0 {
		r.level = lvClosed
		r.kindDone = StreamEnd
		return stIdle
	}
	r.depth--
	r.stack = r.stack[:r.depth]
	if r.depth == 0 {
		r.kindDone = Stanza
		return stIdle
	}
	return stContent
}

// openName is the name the end tag being scanned must match: the innermost
// open element, or the stream header's name at stream level.
func (r *reader) openName() []byte {
	if r.depth == 0 {
		return r.hdrName
	}
	s := r.stack[r.depth-1]
	return r.buf[r.start+int(s.off) : r.start+int(s.off)+int(s.n)]
}

// declEncodingOK reports whether an XML declaration names no encoding or
// UTF-8.
func declEncodingOK(decl []byte) bool {
	const key = "encoding"
	for i := 0; i+len(key) <= len(decl); i++ {
		if string(decl[i:i+len(key)]) != key {
			continue
		}
		j := i + len(key)
		for j < len(decl) && (isSpace(decl[j]) || decl[j] == '=') {
			j++
		}
		if j >= len(decl) || (decl[j] != '"' && decl[j] != '\'') {
			return false
		}
		q := decl[j]
		j++
		k := j
		for k < len(decl) && decl[k] != q {
			k++
		}
		v := decl[j:k]
		return len(v) == 5 && (v[0]|0x20) == 'u' && (v[1]|0x20) == 't' && (v[2]|0x20) == 'f' && v[3] == '-' && v[4] == '8'
	}
	return true
}
