package mcs

import (
	"errors"
	"io"
	"strconv"
	"sync"

	"google.golang.org/protobuf/proto"
)

// DefaultMaxFrameBytes is the payload limit of a Reader whose config leaves
// MaxFrameBytes zero.
const DefaultMaxFrameBytes = 64 << 10

const (
	maxVarintLen = 5    // bytes of a varint32 length (mcs.md §2.1)
	smallBufSize = 64   // inline buffer used while idle: fits pings and acks
	poolBufSize  = 4096 // pooled buffer for ordinary frames

	maxFrameLimit = 1 << 30 // MaxFrameBytes is capped here
)

// bufPool holds poolBufSize read buffers shared by all Readers, so that idle
// connections hold none.
var bufPool = sync.Pool{New: func() any { return new([poolBufSize]byte) }}

// ReaderConfig configures a Reader. The zero value is a reader that accepts
// DecodableTags and payloads up to DefaultMaxFrameBytes.
type ReaderConfig struct {
	// MaxFrameBytes is the largest payload accepted, checked against the
	// length prefix before the payload is buffered. Zero means
	// DefaultMaxFrameBytes; values above 1 GiB mean 1 GiB. Buffers for
	// frames over 4 KiB grow as their bytes arrive, so a length prefix
	// alone costs no more than 4 KiB.
	MaxFrameBytes int
	// Tags is the set of tags accepted; any other tag is a FrameError with
	// ReasonTagNotAllowed. Zero means DecodableTags. A device server reads
	// with ClientSendTags, a device client with ServerSendTags (plus
	// TagStreamErrorStanza if it wants to be lenient).
	Tags TagSet
	// ReleaseWhenIdle makes Next return its buffer to the shared pool
	// whenever nothing is buffered before it blocks in Read, so an idle
	// Reader holds only its small inline buffer. Busy readers pay one pool
	// round trip per read.
	ReleaseWhenIdle bool
}

// Frame is one MCS frame. Payload aliases the Reader's buffer and is valid
// only until the next call of Next or Release.
type Frame struct {
	Tag     byte
	Payload []byte
}

// Reason says why a stream was refused.
type Reason uint8

// Reasons of a FrameError.
const (
	// ReasonVersion: the first byte is not a version in
	// MinClientVersion..Version.
	ReasonVersion Reason = iota + 1
	// ReasonUnknownTag: a tag byte of NumTags or more.
	ReasonUnknownTag
	// ReasonTagNotAllowed: a valid tag outside the Reader's TagSet.
	ReasonTagNotAllowed
	// ReasonVarintTooLong: a length varint longer than 5 bytes.
	ReasonVarintTooLong
	// ReasonVarintOverflow: a 5-byte length varint above 2^32-1.
	ReasonVarintOverflow
	// ReasonFrameTooLarge: a length above the Reader's MaxFrameBytes.
	ReasonFrameTooLarge
	// ReasonNoMessageType: Decode of a tag without an open-source message.
	ReasonNoMessageType
	// ReasonBadPayload: the payload is not a valid protobuf of the tag's
	// message type.
	ReasonBadPayload
)

var reasonText = [...]string{
	ReasonVersion:        "unsupported version byte",
	ReasonUnknownTag:     "unknown tag",
	ReasonTagNotAllowed:  "tag not allowed",
	ReasonVarintTooLong:  "length varint longer than 5 bytes",
	ReasonVarintOverflow: "length overflows 32 bits",
	ReasonFrameTooLarge:  "frame too large",
	ReasonNoMessageType:  "tag has no message type",
	ReasonBadPayload:     "malformed payload",
}

func (r Reason) String() string {
	if int(r) < len(reasonText) && reasonText[r] != "" {
		return reasonText[r]
	}
	return "reason(" + strconv.Itoa(int(r)) + ")"
}

// FrameError is a protocol violation in the byte stream. After a Reader
// returns one, the stream cannot be resynchronised: every later Next returns
// the same error, and the connection should be closed.
type FrameError struct {
	Reason Reason
	// Tag is the frame's tag, when it was read.
	Tag byte
	// Value is the offending version byte, tag byte or length.
	Value uint64
	// Err is the protobuf error, for ReasonBadPayload.
	Err error
}

func (e *FrameError) Error() string {
	s := "mcs: " + e.Reason.String()
	switch e.Reason {
	case ReasonVersion, ReasonUnknownTag:
		s += " " + strconv.FormatUint(e.Value, 10)
	case ReasonTagNotAllowed, ReasonNoMessageType:
		s += " " + strconv.Itoa(int(e.Tag)) + " (" + TagName(e.Tag) + ")"
	case ReasonVarintTooLong, ReasonVarintOverflow:
		s += " in " + TagName(e.Tag) + " frame"
	case ReasonFrameTooLarge:
		s += ": " + TagName(e.Tag) + " of " + strconv.FormatUint(e.Value, 10) + " bytes"
	case ReasonBadPayload:
		s += " in " + TagName(e.Tag)
		if e.Err != nil {
			s += ": " + e.Err.Error()
		}
	}
	return s
}

func (e *FrameError) Unwrap() error { return e.Err }

// Reader reads the frames of one direction of an MCS stream: the version
// byte first, then [tag][varint32 length][payload] frames.
//
// A Reader is resumable: when the underlying Read fails (for example with a
// deadline timeout), the bytes read so far are kept and a later Next
// continues where it stopped. Read errors are returned once, after every
// complete frame already buffered; io.EOF inside a frame becomes
// io.ErrUnexpectedEOF. Framing errors (*FrameError) are sticky.
//
// A Reader is cheap when idle: it starts with a small inline buffer, takes
// a pooled or allocated buffer only when a frame does not fit, and gives it
// back on Release (or by itself with ReleaseWhenIdle). It is not safe for
// concurrent use; one reader goroutine owns it.
type Reader struct {
	// immutable after NewReader
	rd              io.Reader
	max             int
	tags            TagSet
	releaseWhenIdle bool

	// owned by the goroutine calling Next
	buf        []byte             // nil, small[:], pooled[:] or an allocated buffer
	pooled     *[poolBufSize]byte // non-nil when buf is pooled[:]
	start, end int                // unread bytes are buf[start:end]
	version    byte               // 0 until the version byte is read
	err        error              // sticky *FrameError
	rerr       error              // read error to return when no frame is complete
	small      [smallBufSize]byte
}

// NewReader returns a Reader of the stream rd.
func NewReader(rd io.Reader, cfg ReaderConfig) *Reader {
	r := &Reader{rd: rd, max: cfg.MaxFrameBytes, tags: cfg.Tags, releaseWhenIdle: cfg.ReleaseWhenIdle}
	if r.max <= 0 {
		r.max = DefaultMaxFrameBytes
	}
	r.max = min(r.max, maxFrameLimit)
	if r.tags == 0 {
		r.tags = DecodableTags
	}
	return r
}

// Version returns the version byte the peer sent, or 0 before it was read.
func (r *Reader) Version() byte { return r.version }

// Buffered returns the number of bytes read from the stream but not yet
// returned as frames.
func (r *Reader) Buffered() int { return r.end - r.start }

// Release gives the Reader's buffer back when nothing is buffered, and
// reports whether the Reader now holds no heap buffer. The payload of the
// last frame becomes invalid.
func (r *Reader) Release() bool {
	if r.start != r.end {
		return r.buf == nil || &r.buf[0] == &r.small[0]
	}
	r.start, r.end = 0, 0
	r.dropBuf()
	return true
}

func (r *Reader) dropBuf() {
	if r.pooled != nil {
		bufPool.Put(r.pooled)
		r.pooled = nil
	}
	r.buf = nil
}

// ReadVersion reads the version byte if it has not been read yet and
// returns it. Next calls it by itself; a caller may call it first to check
// the version before the first frame arrives.
func (r *Reader) ReadVersion() (byte, error) {
	for r.version == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if r.start < r.end {
			if err := r.takeVersion(); err != nil {
				return 0, err
			}
			break
		}
		if err := r.fill(1); err != nil {
			return 0, err
		}
	}
	return r.version, nil
}

func (r *Reader) takeVersion() error {
	v := r.buf[r.start]
	if v < MinClientVersion || v > Version {
		r.err = &FrameError{Reason: ReasonVersion, Value: uint64(v)}
		return r.err
	}
	r.version = v
	r.start++
	return nil
}

// Next returns the next frame. The payload aliases the Reader's buffer
// until the next call of Next or Release.
func (r *Reader) Next() (Frame, error) {
	if r.err != nil {
		return Frame{}, r.err
	}
	for {
		if r.version == 0 && r.start < r.end {
			if err := r.takeVersion(); err != nil {
				return Frame{}, err
			}
		}
		need := 1
		if r.version != 0 {
			f, n, err := r.parse()
			if err != nil {
				r.err = err
				return Frame{}, err
			}
			if n == 0 {
				return f, nil
			}
			need = n
		}
		if err := r.fill(need); err != nil {
			return Frame{}, err
		}
	}
}

// parse looks at the buffered bytes. It returns a complete frame and n=0, or
// n>0, the number of bytes from r.start needed before it can say more.
func (r *Reader) parse() (Frame, int, error) {
	b := r.buf[r.start:r.end]
	if len(b) == 0 {
		return Frame{}, 1, nil
	}
	tag := b[0]
	if tag >= NumTags {
		return Frame{}, 0, &FrameError{Reason: ReasonUnknownTag, Tag: tag, Value: uint64(tag)}
	}
	if !r.tags.Has(tag) {
		return Frame{}, 0, &FrameError{Reason: ReasonTagNotAllowed, Tag: tag, Value: uint64(tag)}
	}
	var length uint64
	hdr := 0
	for i := 1; i <= maxVarintLen; i++ {
		if i >= len(b) {
			return Frame{}, i + 1, nil
		}
		c := b[i]
		if i == maxVarintLen {
			if c&0x80 != 0 {
				return Frame{}, 0, &FrameError{Reason: ReasonVarintTooLong, Tag: tag}
			}
			if c > 0x0f {
				return Frame{}, 0, &FrameError{Reason: ReasonVarintOverflow, Tag: tag}
			}
		}
		length |= uint64(c&0x7f) << (7 * (i - 1))
		if length > uint64(r.max) {
			// The value only grows with more bytes: refuse it now.
			return Frame{}, 0, &FrameError{Reason: ReasonFrameTooLarge, Tag: tag, Value: length}
		}
		if c&0x80 == 0 {
			hdr = i + 1
			break
		}
	}
	total := hdr + int(length)
	if len(b) < total {
		return Frame{}, total, nil
	}
	r.start += total
	return Frame{Tag: tag, Payload: b[hdr:total:total]}, 0, nil
}

// fill reads at least one more byte into the buffer, making room for need
// bytes from r.start first. It returns a pending or new read error when no
// bytes arrived.
func (r *Reader) fill(need int) error {
	if r.rerr != nil {
		return r.takeReadErr()
	}
	if r.start == r.end {
		r.start, r.end = 0, 0
		if r.releaseWhenIdle && need <= smallBufSize {
			r.dropBuf()
		}
	}
	if r.buf == nil {
		r.buf = r.small[:]
	}
	if len(r.buf)-r.start < need {
		r.makeRoom(need)
	}
	n, err := r.rd.Read(r.buf[r.end:])
	if n < 0 || n > len(r.buf)-r.end {
		return errors.New("mcs: reader returned an invalid count")
	}
	r.end += n
	if err != nil {
		r.rerr = err
		if n == 0 {
			return r.takeReadErr()
		}
	}
	return nil
}

func (r *Reader) takeReadErr() error {
	err := r.rerr
	r.rerr = nil
	if err == io.EOF && r.start < r.end {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// makeRoom moves the unread bytes to the front of the buffer and, when the
// frame of need bytes cannot fit, takes a larger buffer: a pooled one for
// ordinary frames, else one that doubles as bytes arrive, so a length
// prefix alone never costs more than poolBufSize.
func (r *Reader) makeRoom(need int) {
	if r.start > 0 {
		n := copy(r.buf, r.buf[r.start:r.end])
		r.start, r.end = 0, n
	}
	if need <= len(r.buf) {
		return
	}
	if r.end < len(r.buf) && len(r.buf) >= poolBufSize {
		return // read more before growing
	}
	var nb []byte
	var pooled *[poolBufSize]byte
	if need <= poolBufSize || len(r.buf) < poolBufSize {
		pooled = bufPool.Get().(*[poolBufSize]byte)
		nb = pooled[:]
	} else {
		nb = make([]byte, min(need, max(2*len(r.buf), 2*poolBufSize)))
	}
	n := copy(nb, r.buf[r.start:r.end])
	r.dropBuf()
	r.buf, r.pooled = nb, pooled
	r.start, r.end = 0, n
}

var unmarshalOptions = proto.UnmarshalOptions{AllowPartial: true}

// Unmarshal decodes b into m, tolerating missing required fields (clients
// send partial messages). Strings and bytes in m are copies, not aliases of
// b. It is also the decoder of checkin messages.
func Unmarshal(b []byte, m proto.Message) error {
	return unmarshalOptions.Unmarshal(b, m)
}

// Decode returns the message a frame carries, as a new message of the
// tag's type (see NewMessage). It refuses tags without a message type and
// payloads that are not valid protobuf, with a *FrameError; missing
// required fields are tolerated. The message does not alias the frame.
func Decode(f Frame) (proto.Message, error) {
	m := NewMessage(f.Tag)
	if m == nil {
		return nil, &FrameError{Reason: ReasonNoMessageType, Tag: f.Tag, Value: uint64(f.Tag)}
	}
	if err := unmarshalOptions.Unmarshal(f.Payload, m); err != nil {
		return nil, &FrameError{Reason: ReasonBadPayload, Tag: f.Tag, Value: uint64(len(f.Payload)), Err: err}
	}
	return m, nil
}
