// Package xmltok is a small, fast tokenizer for the restricted XML that XMPP
// streams carry: no DTDs, no processing instructions (except an XML
// declaration before the stream header), no comments, no entities beyond the
// five predefined ones and numeric character references. Limits on stanza
// size, nesting depth and attribute count are checked while scanning, before
// anything is buffered past them.
//
// It has two layers:
//
//   - Reader splits a byte stream into frames: the stream header, whole
//     top-level stanzas (children of <stream:stream>), inter-stanza whitespace
//     and the closing </stream:stream>. It copies only when a stanza spans two
//     reads.
//   - Tokenizer walks the tokens of one complete frame without allocating.
//
// API CONTRACT (other packages are written against these exact signatures).
package xmltok

import "io"

// Limits bound what a peer can make the Reader hold. Zero fields take the
// defaults given.
type Limits struct {
	// MaxStanzaBytes is the largest top-level stanza (or stream header) in
	// bytes. Zero means 65536.
	MaxStanzaBytes int
	// MaxDepth is the deepest element nesting inside a stanza, the stanza
	// element itself being depth 1. Zero means 32.
	MaxDepth int
	// MaxAttrs is the most attributes (namespace declarations included) on one
	// element. Zero means 32.
	MaxAttrs int
}

// FrameKind says what a Frame holds.
type FrameKind uint8

const (
	// StreamStart is the <stream:stream ...> start tag (without any XML
	// declaration before it).
	StreamStart FrameKind = iota + 1
	// Stanza is one complete top-level element, from '<' to its end tag.
	Stanza
	// Whitespace is whitespace between stanzas (a keepalive).
	Whitespace
	// StreamEnd is the closing </stream:stream> tag.
	StreamEnd
)

// Frame is one unit of the stream. Raw aliases the Reader's buffer and is
// valid only until the next call to Next or TryNext.
type Frame struct {
	Kind FrameKind
	Raw  []byte
}

// Error is a stream-level problem found while scanning. Condition is the
// RFC 6120 stream error condition to send: "not-well-formed",
// "restricted-xml", "policy-violation" (a limit), "bad-format",
// "unsupported-encoding".
type Error struct {
	Condition string
	Reason    string // human-readable, lowercase
	Offset    int64  // byte offset in the stream where it was found
}

func (e *Error) Error() string { return "xml " + e.Condition + ": " + e.Reason }

// Reader frames an XMPP byte stream. It is not safe for concurrent use: it is
// owned by the connection's read loop.
type Reader struct {
	impl reader
}

// NewReader returns a Reader that reads from r with the given limits. The
// read buffer is allocated lazily on the first read.
func NewReader(r io.Reader, lim Limits) *Reader {
	rd := &Reader{}
	rd.impl.init(r, lim)
	return rd
}

// Next returns the next frame, reading from the underlying reader only when
// no complete frame is buffered. It returns io.EOF at a clean end of input and
// *Error for malformed or over-limit input.
func (r *Reader) Next() (Frame, error) { return r.impl.next(true) }

// TryNext returns the next frame if it is already complete in the buffer,
// without reading. ok is false when a read would be needed.
func (r *Reader) TryNext() (f Frame, ok bool, err error) {
	f, err = r.impl.next(false)
	if err == errWouldBlock {
		return Frame{}, false, nil
	}
	return f, err == nil, err
}

// Restart prepares the Reader for a new stream header on the same connection
// (the XMPP stream restart after SASL success). Buffered bytes are kept.
func (r *Reader) Restart() { r.impl.restart() }

// Buffered reports how many bytes are buffered but not yet returned.
func (r *Reader) Buffered() int { return r.impl.buffered() }

// Release drops the read buffer if nothing is buffered, so an idle
// connection holds no buffer. The next read allocates again.
func (r *Reader) Release() { r.impl.release() }

// TokenKind says what a Token is.
type TokenKind uint8

const (
	StartElement TokenKind = iota + 1 // <name attrs...> (SelfClosing says whether it was <name/>)
	EndElement                        // </name>, also emitted right after a self-closing StartElement
	CharData                          // text between tags, raw (still escaped); see Unescape
	CDATA                             // the contents of a <![CDATA[...]]> section, verbatim
)

// Attr is one attribute. Value is raw (still escaped; see Unescape).
type Attr struct {
	Prefix, Local, Value []byte
}

// Token is one token of a frame. All slices alias the frame's bytes or the
// Tokenizer's scratch space and are valid until the next call to Next.
type Token struct {
	Kind          TokenKind
	Prefix, Local []byte // element name (StartElement, EndElement)
	Attrs         []Attr // StartElement only
	SelfClosing   bool   // StartElement only
	Text          []byte // CharData (raw) and CDATA
}

// Tokenizer walks the tokens of one complete, already framed element (a
// Stanza frame, or a StreamStart frame, which yields only its StartElement).
// It does not allocate after its first use; it checks well-formedness of what
// it walks (matching end tags, attribute syntax, names).
type Tokenizer struct {
	impl tokenizer
}

// Reset makes t walk b from the start.
func (t *Tokenizer) Reset(b []byte) { t.impl.reset(b) }

// Next returns the next token, or io.EOF after the last one, or *Error.
func (t *Tokenizer) Next() (Token, error) { return t.impl.next() }

// Unescape appends the decoded form of raw character data or an attribute
// value to dst: the five predefined entities and numeric character
// references. Any other entity is an *Error with Condition "restricted-xml".
func Unescape(dst, raw []byte) ([]byte, error) { return unescape(dst, raw) }

// AppendText appends s escaped for use as XML character data: &, < and >
// are escaped, quotes are not (so JSON text stays compact).
func AppendText(dst, s []byte) []byte { return appendText(dst, s) }

// AppendTextString is AppendText for a string.
func AppendTextString(dst []byte, s string) []byte { return appendTextString(dst, s) }

// AppendAttr appends s escaped for use inside a double- or single-quoted
// attribute value (&, <, >, " and ' are escaped).
func AppendAttr(dst []byte, s string) []byte { return appendAttr(dst, s) }

// AppendAttrBytes is AppendAttr for a byte slice.
func AppendAttrBytes(dst, s []byte) []byte { return appendAttrEsc(dst, s) }
