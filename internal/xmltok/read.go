package xmltok

import (
	"errors"
	"io"
)

// errWouldBlock is what reader.next(false) returns when no complete frame is
// buffered and a read would be needed.
var errWouldBlock = errors.New("xmltok: would block")

const (
	defaultMaxStanza = 65536
	defaultMaxDepth  = 32
	defaultMaxAttrs  = 32

	// readChunk is the size of the first buffer and of a typical read.
	readChunk = 16 << 10
	// minRead is the least free space worth a read call; with less, the
	// buffer is compacted (or grown) first.
	minRead = 2 << 10
	// maxEmptyReads bounds how often a broken io.Reader may return 0, nil.
	maxEmptyReads = 100
)

// reader is the implementation of Reader. All fields are owned by the
// connection's read loop.
//
// Frames alias buf; buf is compacted (the frame in progress moved to the
// front) or grown only inside fill, which runs only from next, so a returned
// frame stays valid until the following Next or TryNext. A Whitespace frame
// is the run of whitespace buffered so far, so that a keepalive is seen at
// once: a run split across reads may come as several frames. The XML
// declaration and whitespace before the stream header are skipped.
type reader struct {
	// Immutable after init.
	src       io.Reader
	maxStanza int
	maxDepth  int
	maxAttrs  int
	maxBuf    int // the buffer never grows past this

	// Buffer. buf[start:end] is buffered and not yet returned; buf[start:pos]
	// is the part of the frame in progress already scanned. buf is nil until
	// the first read and after Release.
	buf   []byte
	start int
	pos   int
	end   int
	off   int64 // stream offset of buf[0]
	rerr  error // error from the last read, reported once the buffer is scanned
	err   error // sticky: once set, every call returns it

	scanner // state of the frame in progress, kept across reads
}

func (r *reader) init(src io.Reader, lim Limits) {
	r.src = src
	r.maxStanza = orDefault(lim.MaxStanzaBytes, defaultMaxStanza)
	r.maxDepth = orDefault(lim.MaxDepth, defaultMaxDepth)
	r.maxAttrs = orDefault(lim.MaxAttrs, defaultMaxAttrs)
	r.maxBuf = max(r.maxStanza, readChunk)
}

func orDefault(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

func (r *reader) next(block bool) (Frame, error) {
	if r.err != nil {
		return Frame{}, r.err
	}
	for {
		if r.level == lvClosed {
			return Frame{}, io.EOF
		}
		f, ok, err := r.scan()
		if err != nil {
			r.err = err
			return Frame{}, err
		}
		if ok {
			return f, nil
		}
		if r.rerr != nil {
			err := r.rerr
			if err == io.EOF && r.end > r.start {
				err = io.ErrUnexpectedEOF
			}
			r.err = err
			return Frame{}, err
		}
		if !block {
			return Frame{}, errWouldBlock
		}
		r.fill()
	}
}

// fill reads once from src into the free end of the buffer, making room
// first: it resets an empty buffer, compacts the frame in progress to the
// front, or grows the buffer up to maxBuf.
func (r *reader) fill() {
	if r.buf == nil {
		r.buf = make([]byte, min(readChunk, r.maxBuf))
	}
	if r.start == r.end {
		r.off += int64(r.start)
		r.start, r.pos, r.end = 0, 0, 0
	}
	if len(r.buf)-r.end < minRead {
		if r.start > 0 {
			n := copy(r.buf, r.buf[r.start:r.end])
			r.off += int64(r.start)
			r.pos -= r.start
			r.start, r.end = 0, n
		}
		if len(r.buf)-r.end < minRead && len(r.buf) < r.maxBuf {
			nb := make([]byte, min(2*len(r.buf), r.maxBuf))
			r.end = copy(nb, r.buf[r.start:r.end])
			r.pos -= r.start
			r.off += int64(r.start)
			r.start = 0
			r.buf = nb
		}
	}
	for range maxEmptyReads {
		n, err := r.src.Read(r.buf[r.end:])
		r.end += n
		if err != nil {
			r.rerr = err
			return
		}
		if n > 0 {
			return
		}
	}
	r.rerr = io.ErrNoProgress
}

func (r *reader) restart() {
	r.scanner.restart()
	r.pos = r.start
}

func (r *reader) buffered() int { return r.end - r.start }

func (r *reader) release() {
	if r.end != r.start || r.st != stIdle {
		return
	}
	r.off += int64(r.end)
	r.buf = nil
	r.start, r.pos, r.end = 0, 0, 0
}

// fail records a scanning error found at buffer index i.
func (r *reader) fail(i int, cond, reason string) error {
	return &Error{Condition: cond, Reason: reason, Offset: r.off + int64(i)}
}
