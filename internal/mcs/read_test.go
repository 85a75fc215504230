package mcs

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
	"unsafe"

	"google.golang.org/protobuf/proto"

	"github.com/ccsd/ccsd/internal/mcs/mcspb"
)

// chunkReader returns data in chunks ending at the given offsets, and
// io.EOF after the last byte.
type chunkReader struct {
	data   []byte
	splits []int // increasing offsets into data
	off    int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if c.off >= len(c.data) {
		return 0, io.EOF
	}
	end := len(c.data)
	for len(c.splits) > 0 && c.splits[0] <= c.off {
		c.splits = c.splits[1:]
	}
	if len(c.splits) > 0 && c.splits[0] < end {
		end = c.splits[0]
	}
	n := copy(p, c.data[c.off:end])
	c.off += n
	return n, nil
}

type readResult struct {
	frames []Frame // payloads copied
	err    error
}

// readAll reads frames until an error, copying payloads.
func readAll(r *Reader) readResult {
	var res readResult
	for {
		f, err := r.Next()
		if err != nil {
			res.err = err
			return res
		}
		res.frames = append(res.frames, Frame{Tag: f.Tag, Payload: append([]byte{}, f.Payload...)})
	}
}

func sameResult(a, b readResult) bool {
	if len(a.frames) != len(b.frames) {
		return false
	}
	for i := range a.frames {
		if a.frames[i].Tag != b.frames[i].Tag || !bytes.Equal(a.frames[i].Payload, b.frames[i].Payload) {
			return false
		}
	}
	return sameErr(a.err, b.err)
}

func sameErr(a, b error) bool {
	var fa, fb *FrameError
	if errors.As(a, &fa) || errors.As(b, &fb) {
		return errors.As(a, &fa) && errors.As(b, &fb) && fa.Reason == fb.Reason && fa.Tag == fb.Tag && fa.Value == fb.Value
	}
	return a == b
}

// testStream is a client stream with frames of every size class: empty,
// small, one spanning a pooled buffer, one larger than the pool buffer.
func testStream(t testing.TB) []byte {
	b, err := AppendVersionedFrame(nil, TagLoginRequest, testLogin())
	if err != nil {
		t.Fatal(err)
	}
	must := func(out []byte, err error) []byte {
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	b = must(AppendFrame(b, TagHeartbeatPing, &mcspb.HeartbeatPing{}))
	b = must(AppendFrame(b, TagHeartbeatAck, HeartbeatAck(7)))
	big := testData()
	big.RawData = bytes.Repeat([]byte{0xab}, 3000)
	b = must(AppendFrame(b, TagDataMessageStanza, big))
	huge := testData()
	huge.RawData = bytes.Repeat([]byte{0xcd}, 5000)
	b = must(AppendFrame(b, TagDataMessageStanza, huge))
	b = must(AppendFrame(b, TagIqStanza, StreamAckIQ("", 3)))
	b = must(AppendFrame(b, TagClose, Close()))
	return b
}

func TestReaderSplitAtEveryPosition(t *testing.T) {
	stream := testStream(t)
	want := readAll(NewReader(bytes.NewReader(stream), ReaderConfig{}))
	if want.err != io.EOF || len(want.frames) != 7 {
		t.Fatalf("whole stream: %d frames, err %v; want 7 frames and io.EOF", len(want.frames), want.err)
	}
	for _, release := range []bool{false, true} {
		cfg := ReaderConfig{ReleaseWhenIdle: release}
		for i := 1; i < len(stream); i++ {
			got := readAll(NewReader(&chunkReader{data: stream, splits: []int{i}}, cfg))
			if !sameResult(got, want) {
				t.Fatalf("release=%v split at %d: got %d frames, err %v", release, i, len(got.frames), got.err)
			}
		}
		for i := 1; i < len(stream); i += 7 {
			got := readAll(NewReader(&chunkReader{data: stream, splits: []int{i, i + 1, i + 3, i + 200}}, cfg))
			if !sameResult(got, want) {
				t.Fatalf("release=%v splits from %d: got %d frames, err %v", release, i, len(got.frames), got.err)
			}
		}
		got := readAll(NewReader(iotest.OneByteReader(bytes.NewReader(stream)), cfg))
		if !sameResult(got, want) {
			t.Fatalf("release=%v one byte a read: got %d frames, err %v", release, len(got.frames), got.err)
		}
		got = readAll(NewReader(iotest.DataErrReader(bytes.NewReader(stream)), cfg))
		if !sameResult(got, want) {
			t.Fatalf("release=%v data with EOF: got %d frames, err %v", release, len(got.frames), got.err)
		}
	}
}

// timeoutReader fails every other Read with errTimeout, like a connection
// whose read deadline fires while idle or mid-frame.
type timeoutReader struct {
	r     io.Reader
	calls int
}

var errTimeout = errors.New("i/o timeout")

func (t *timeoutReader) Read(p []byte) (int, error) {
	t.calls++
	if t.calls%2 == 1 {
		return 0, errTimeout
	}
	return t.r.Read(p)
}

func TestReaderResumesAfterReadError(t *testing.T) {
	stream := testStream(t)
	want := readAll(NewReader(bytes.NewReader(stream), ReaderConfig{}))
	r := NewReader(&timeoutReader{r: iotest.HalfReader(bytes.NewReader(stream))}, ReaderConfig{})
	var got readResult
	timeouts := 0
	for {
		f, err := r.Next()
		if err == errTimeout {
			timeouts++
			continue
		}
		if err != nil {
			got.err = err
			break
		}
		got.frames = append(got.frames, Frame{Tag: f.Tag, Payload: append([]byte{}, f.Payload...)})
	}
	if !sameResult(got, want) {
		t.Fatalf("got %d frames, err %v; want %d frames, err %v", len(got.frames), got.err, len(want.frames), want.err)
	}
	if timeouts == 0 {
		t.Fatal("no timeouts were returned")
	}
}

func TestReaderBadInput(t *testing.T) {
	v := []byte{Version}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	tests := []struct {
		name   string
		cfg    ReaderConfig
		in     []byte
		frames int
		want   error
	}{
		{"empty stream", ReaderConfig{}, nil, 0, io.EOF},
		{"version only", ReaderConfig{}, v, 0, io.EOF},
		{"version 37", ReaderConfig{}, []byte{37, 2, 0}, 0, &FrameError{Reason: ReasonVersion, Value: 37}},
		{"version 42", ReaderConfig{}, []byte{42}, 0, &FrameError{Reason: ReasonVersion, Value: 42}},
		{"version 0", ReaderConfig{}, []byte{0, 0, 0}, 0, &FrameError{Reason: ReasonVersion, Value: 0}},
		{"version 38", ReaderConfig{}, []byte{38, 0, 0}, 1, io.EOF},
		{"tag 16", ReaderConfig{}, cat(v, []byte{16, 0}), 0, &FrameError{Reason: ReasonUnknownTag, Tag: 16, Value: 16}},
		{"tag 255", ReaderConfig{}, cat(v, []byte{0, 0, 255}), 1, &FrameError{Reason: ReasonUnknownTag, Tag: 255, Value: 255}},
		{"tag 5 without message type", ReaderConfig{}, cat(v, []byte{5, 0}), 0, &FrameError{Reason: ReasonTagNotAllowed, Tag: 5, Value: 5}},
		{"tag 3 from a client", ReaderConfig{Tags: ClientSendTags}, cat(v, []byte{3, 0}), 0, &FrameError{Reason: ReasonTagNotAllowed, Tag: 3, Value: 3}},
		{"tag 10 at a client", ReaderConfig{Tags: ServerSendTags}, cat(v, []byte{10, 0}), 0, &FrameError{Reason: ReasonTagNotAllowed, Tag: 10, Value: 10}},
		{"6-byte varint", ReaderConfig{MaxFrameBytes: 1 << 40}, cat(v, []byte{8, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00}), 0, &FrameError{Reason: ReasonVarintTooLong, Tag: 8}},
		{"5-byte varint over 32 bits", ReaderConfig{MaxFrameBytes: 1 << 40}, cat(v, []byte{8, 0x80, 0x80, 0x80, 0x80, 0x10}), 0, &FrameError{Reason: ReasonVarintOverflow, Tag: 8}},
		{"5-byte varint at 2^32-1", ReaderConfig{MaxFrameBytes: 1 << 40}, cat(v, []byte{8, 0xff, 0xff, 0xff, 0xff, 0x0f}), 0, &FrameError{Reason: ReasonFrameTooLarge, Tag: 8, Value: 1<<32 - 1}},
		{"5-byte varint at 1 GiB", ReaderConfig{MaxFrameBytes: 1 << 40}, cat(v, []byte{8, 0x80, 0x80, 0x80, 0x80, 0x04}), 0, io.ErrUnexpectedEOF},
		{"6-byte varint, default limit", ReaderConfig{}, cat(v, []byte{8, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00}), 0, &FrameError{Reason: ReasonVarintTooLong, Tag: 8}},
		{"over default limit", ReaderConfig{}, cat(v, []byte{8, 0x81, 0x80, 0x04}), 0, &FrameError{Reason: ReasonFrameTooLarge, Tag: 8, Value: 65537}},
		{"at default limit, truncated", ReaderConfig{}, cat(v, []byte{8, 0x80, 0x80, 0x04}), 0, io.ErrUnexpectedEOF},
		{"over a small limit", ReaderConfig{MaxFrameBytes: 10}, cat(v, []byte{8, 11}, make([]byte, 11)), 0, &FrameError{Reason: ReasonFrameTooLarge, Tag: 8, Value: 11}},
		{"at a small limit", ReaderConfig{MaxFrameBytes: 10}, cat(v, []byte{8, 10}, make([]byte, 10)), 1, io.EOF},
		{"huge length refused before its last byte", ReaderConfig{}, cat(v, []byte{7, 0xff, 0xff, 0xff}), 0, &FrameError{Reason: ReasonFrameTooLarge, Tag: 7, Value: 0x7f | 0x7f<<7 | 0x7f<<14}},
		{"truncated header", ReaderConfig{}, cat(v, []byte{8, 0x80}), 0, io.ErrUnexpectedEOF},
		{"truncated payload", ReaderConfig{}, cat(v, []byte{8, 3, 1}), 0, io.ErrUnexpectedEOF},
		{"tag without length", ReaderConfig{}, cat(v, []byte{0}), 0, io.ErrUnexpectedEOF},
		{"non-minimal zero length", ReaderConfig{}, cat(v, []byte{0, 0x80, 0x00}), 1, io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReader(bytes.NewReader(tt.in), tt.cfg)
			got := readAll(r)
			if len(got.frames) != tt.frames || !sameErr(got.err, tt.want) {
				t.Errorf("got %d frames, err %v; want %d frames, err %v", len(got.frames), got.err, tt.frames, tt.want)
			}
			var fe *FrameError
			if errors.As(tt.want, &fe) {
				// Framing errors are sticky.
				if _, err := r.Next(); !sameErr(err, tt.want) {
					t.Errorf("second Next: got %v, want %v", err, tt.want)
				}
				if got.err.Error() == "" {
					t.Error("empty error text")
				}
			}
		})
	}
}

func TestReadVersion(t *testing.T) {
	r := NewReader(bytes.NewReader([]byte{40, 0, 0}), ReaderConfig{})
	if got := r.Version(); got != 0 {
		t.Errorf("Version before reading: got %d, want 0", got)
	}
	v, err := r.ReadVersion()
	if v != 40 || err != nil {
		t.Fatalf("ReadVersion: got %d, %v; want 40, nil", v, err)
	}
	if v, err := r.ReadVersion(); v != 40 || err != nil {
		t.Fatalf("second ReadVersion: got %d, %v; want 40, nil", v, err)
	}
	f, err := r.Next()
	if err != nil || f.Tag != 0 || len(f.Payload) != 0 {
		t.Fatalf("Next: got %+v, %v", f, err)
	}
	r = NewReader(bytes.NewReader([]byte{1}), ReaderConfig{})
	if _, err := r.ReadVersion(); !sameErr(err, &FrameError{Reason: ReasonVersion, Value: 1}) {
		t.Errorf("bad version: got %v", err)
	}
	if _, err := NewReader(bytes.NewReader(nil), ReaderConfig{}).ReadVersion(); err != io.EOF {
		t.Errorf("empty: got %v, want io.EOF", err)
	}
}

func TestReaderRelease(t *testing.T) {
	stream := testStream(t)
	r := NewReader(bytes.NewReader(stream), ReaderConfig{})
	if r.buf != nil || r.pooled != nil {
		t.Fatal("a new Reader holds a buffer")
	}
	for r.pooled == nil {
		if _, err := r.Next(); err != nil {
			t.Fatalf("no pooled buffer was taken: %v", err)
		}
	}
	// Frames are still buffered: Release keeps the buffer.
	if r.Buffered() == 0 {
		t.Fatal("nothing buffered after the first frames")
	}
	if r.Release() || r.pooled == nil {
		t.Fatal("Release dropped a buffer holding unread bytes")
	}
	for {
		if _, err := r.Next(); err != nil {
			break
		}
	}
	if !r.Release() || r.buf != nil || r.pooled != nil {
		t.Fatal("Release kept a buffer with nothing buffered")
	}
}

func TestReaderReleaseWhenIdle(t *testing.T) {
	// One data frame needing the pool, then pings that fit the inline buffer.
	b, err := AppendVersionedFrame(nil, TagDataMessageStanza, testData())
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		b, _ = AppendFrame(b, TagHeartbeatPing, HeartbeatPing(int32(i)))
	}
	split := len(b) - 2*4 // the last two pings come in a read of their own
	r := NewReader(&chunkReader{data: b, splits: []int{split}}, ReaderConfig{ReleaseWhenIdle: true})
	for i := 0; i < 3; i++ {
		if _, err := r.Next(); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
	}
	if r.pooled == nil {
		t.Fatal("the data frame did not use the pooled buffer")
	}
	for i := 3; i < 5; i++ {
		if _, err := r.Next(); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if r.pooled != nil {
			t.Fatalf("frame %d: idle reader still holds the pooled buffer", i)
		}
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("got %v, want io.EOF", err)
	}
	if r.pooled != nil || (r.buf != nil && &r.buf[0] != &r.small[0]) {
		t.Fatal("idle reader holds a heap buffer")
	}
}

// An idle device connection must cost little: the Reader itself is small
// and holds no heap buffer while idle.
func TestReaderIdleSize(t *testing.T) {
	if got, limit := unsafe.Sizeof(Reader{}), uintptr(256); got > limit {
		t.Errorf("Reader is %d bytes, want at most %d", got, limit)
	}
}

// loopReader replays one buffer forever.
type loopReader struct {
	data []byte
	off  int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := copy(p, l.data[l.off:])
	l.off = (l.off + n) % len(l.data)
	return n, nil
}

func dataFrames(t testing.TB, n int) []byte {
	var b []byte
	for i := 0; i < n; i++ {
		var err error
		b, err = AppendFrame(b, TagDataMessageStanza, testData())
		if err != nil {
			t.Fatal(err)
		}
	}
	return b
}

func TestReaderNextAllocs(t *testing.T) {
	for _, release := range []bool{false, true} {
		in := io.MultiReader(bytes.NewReader([]byte{Version}), &loopReader{data: dataFrames(t, 10)})
		r := NewReader(in, ReaderConfig{ReleaseWhenIdle: release})
		if _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
		got := testing.AllocsPerRun(1000, func() {
			if _, err := r.Next(); err != nil {
				t.Fatal(err)
			}
		})
		if got != 0 {
			t.Errorf("release=%v: Next allocates %v times, want 0", release, got)
		}
	}
}

func TestDecode(t *testing.T) {
	for _, tag := range []byte{0, 1, 2, 3, 4, 7, 8, 10} {
		m := NewMessage(tag)
		if got, ok := TagOf(m); !ok || got != tag {
			t.Errorf("TagOf(NewMessage(%d)) = %d, %v", tag, got, ok)
		}
		// Empty payload: the empty message.
		got, err := Decode(Frame{Tag: tag})
		if err != nil || !proto.Equal(got, m) {
			t.Errorf("tag %d, empty payload: got %v, %v", tag, got, err)
		}
		// Garbage: a field 1 length-delimited running past the end, and a
		// field number 0.
		for _, garbage := range [][]byte{{0x0a, 0x05, 'a'}, {0x00}, {0x0b}, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}} {
			_, err := Decode(Frame{Tag: tag, Payload: garbage})
			var fe *FrameError
			if !errors.As(err, &fe) || fe.Reason != ReasonBadPayload || fe.Tag != tag || fe.Unwrap() == nil {
				t.Errorf("tag %d, garbage % x: got %v, want a ReasonBadPayload FrameError", tag, garbage, err)
			}
		}
	}
	for _, tag := range []byte{5, 6, 9, 11, 12, 13, 14, 15, 16, 200} {
		_, err := Decode(Frame{Tag: tag})
		var fe *FrameError
		if !errors.As(err, &fe) || fe.Reason != ReasonNoMessageType {
			t.Errorf("tag %d: got %v, want ReasonNoMessageType", tag, err)
		}
		if NewMessage(tag) != nil {
			t.Errorf("NewMessage(%d) is not nil", tag)
		}
	}
	// Partial messages decode: a LoginRequest with only its id.
	got, err := Decode(Frame{Tag: TagLoginRequest, Payload: []byte{0x0a, 0x01, 'x'}})
	if err != nil || got.(*mcspb.LoginRequest).GetId() != "x" {
		t.Errorf("partial LoginRequest: got %v, %v", got, err)
	}
}

// A length prefix alone does not make the Reader buffer the whole frame:
// the buffer grows as bytes arrive, and a large frame still assembles.
func TestReaderLargeFrameGrowth(t *testing.T) {
	m := testData()
	m.RawData = bytes.Repeat([]byte("0123456789"), 6000)
	frame, err := AppendVersionedFrame(nil, TagDataMessageStanza, m)
	if err != nil {
		t.Fatal(err)
	}
	r := NewReader(bytes.NewReader(frame[:100]), ReaderConfig{})
	if _, err := r.Next(); err != io.ErrUnexpectedEOF {
		t.Fatalf("truncated: got %v, want io.ErrUnexpectedEOF", err)
	}
	if len(r.buf) > poolBufSize {
		t.Errorf("a header and 100 bytes hold a %d-byte buffer, want at most %d", len(r.buf), poolBufSize)
	}
	for _, chunks := range [][]int{nil, {1, 2, 3, 5000, 5001, 9000}, {4095, 4096, 4097, 8192, 30000}} {
		r := NewReader(&chunkReader{data: frame, splits: chunks}, ReaderConfig{})
		f, err := r.Next()
		if err != nil {
			t.Fatalf("splits %v: %v", chunks, err)
		}
		got, err := Decode(f)
		if err != nil || !proto.Equal(got, m) {
			t.Fatalf("splits %v: frame differs (%v)", chunks, err)
		}
		if _, err := r.Next(); err != io.EOF {
			t.Fatalf("splits %v: got %v, want io.EOF", chunks, err)
		}
		if !r.Release() || r.buf != nil {
			t.Fatalf("splits %v: Release kept the large buffer", chunks)
		}
	}
}
