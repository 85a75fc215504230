package xmltok

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

const testHdr = `<stream:stream to="gcm.googleapis.com" version="1.0" xmlns="jabber:client" xmlns:stream="http://etherx.jabber.org/streams">`

// chunkReader returns its data in pieces of the given sizes (the last size
// repeating).
type chunkReader struct {
	data  []byte
	sizes []int
	read  int // bytes handed out so far
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := len(c.data)
	if len(c.sizes) > 0 {
		n = min(n, c.sizes[0])
		if len(c.sizes) > 1 {
			c.sizes = c.sizes[1:]
		}
	}
	n = copy(p, c.data[:n])
	c.data = c.data[n:]
	c.read += n
	return n, nil
}

var kindName = map[FrameKind]string{StreamStart: "start", Stanza: "stanza", Whitespace: "ws", StreamEnd: "end"}

// collect reads all frames, merging adjacent whitespace frames (a run split
// across reads may arrive as several frames), and returns the final error
// (nil for a clean io.EOF).
func collect(r *Reader) ([]string, error) {
	var out []string
	var ws []byte
	for {
		f, err := r.Next()
		if f.Kind != Whitespace && len(ws) > 0 {
			out = append(out, "ws "+string(ws))
			ws = ws[:0]
		}
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		if f.Kind == Whitespace {
			ws = append(ws, f.Raw...)
			continue
		}
		out = append(out, kindName[f.Kind]+" "+string(f.Raw))
	}
}

func condOf(err error) string {
	var e *Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &e):
		return e.Condition
	default:
		return err.Error()
	}
}

var frameTests = []struct {
	name string
	in   string
	want []string
}{
	{
		name: "declaration and header",
		in:   `<?xml version='1.0'?>` + testHdr,
		want: []string{"start " + testHdr},
	},
	{
		name: "declaration with utf-8 encoding, whitespace around",
		in:   "\n<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n" + testHdr + "</stream:stream>",
		want: []string{"start " + testHdr, "end </stream:stream>"},
	},
	{
		name: "header without declaration, single-quoted attributes",
		in:   `<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to = 'x'>`,
		want: []string{`start <stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to = 'x'>`},
	},
	{
		name: "stanzas and keepalives",
		in:   testHdr + ` <message id=""><gcm xmlns="google:mobile:data">{"a":"b"}</gcm></message>` + "\n\t <presence/></stream:stream >",
		want: []string{
			"start " + testHdr,
			"ws  ",
			`stanza <message id=""><gcm xmlns="google:mobile:data">{"a":"b"}</gcm></message>`,
			"ws \n\t ",
			"stanza <presence/>",
			"end </stream:stream >",
		},
	},
	{
		name: "markup characters inside attribute values and cdata",
		in:   testHdr + `<m a='x>y' b="/>" c='"'><![CDATA[</m> <x> ]] ]>]]></m>`,
		want: []string{"start " + testHdr, `stanza <m a='x>y' b="/>" c='"'><![CDATA[</m> <x> ]] ]>]]></m>`},
	},
	{
		name: "nesting, self-closing children, whitespace in tags",
		in:   testHdr + "<iq\ttype='set' id='1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r</resource></bind\n><x/><y></y></iq>",
		want: []string{"start " + testHdr, "stanza <iq\ttype='set' id='1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r</resource></bind\n><x/><y></y></iq>"},
	},
	{
		name: "utf-8 text and entity references pass through raw",
		in:   testHdr + "<m a='é&amp;'>h\u00e9llo \u20ac \U0001F600 &lt;&#x41;</m>",
		want: []string{"start " + testHdr, "stanza <m a='é&amp;'>h\u00e9llo \u20ac \U0001F600 &lt;&#x41;</m>"},
	},
	{
		name: "end of input between stanzas is clean",
		in:   testHdr + "<a/>",
		want: []string{"start " + testHdr, "stanza <a/>"},
	},
	{
		name: "prefixed stream element",
		in:   `<s:stream xmlns:s="http://etherx.jabber.org/streams" xmlns="jabber:client"><a/></s:stream>`,
		want: []string{`start <s:stream xmlns:s="http://etherx.jabber.org/streams" xmlns="jabber:client">`, "stanza <a/>", "end </s:stream>"},
	},
}

func TestReaderFrames(t *testing.T) {
	for _, tt := range frameTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := collect(NewReader(strings.NewReader(tt.in), Limits{}))
			if err != nil {
				t.Fatalf("error %v", err)
			}
			if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", tt.want) {
				t.Errorf("frames\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

// TestReaderSplitReads feeds each input in 1-byte reads and split in two at
// every point: the frames must not depend on how the input was cut.
func TestReaderSplitReads(t *testing.T) {
	for _, tt := range frameTests {
		t.Run(tt.name, func(t *testing.T) {
			want := fmt.Sprintf("%q", tt.want)
			got, err := collect(NewReader(&chunkReader{data: []byte(tt.in), sizes: []int{1}}, Limits{}))
			if g := fmt.Sprintf("%q", got); err != nil || g != want {
				t.Fatalf("1-byte reads: got %s, %v; want %s", g, err, want)
			}
			for k := 1; k < len(tt.in); k++ {
				got, err := collect(NewReader(&chunkReader{data: []byte(tt.in), sizes: []int{k, len(tt.in)}}, Limits{}))
				if g := fmt.Sprintf("%q", got); err != nil || g != want {
					t.Fatalf("split at %d: got %s, %v; want %s", k, g, err, want)
				}
			}
		})
	}
}

var errorTests = []struct {
	name string
	in   string
	lim  Limits
	want string // condition
}{
	{"self-closing stream header", `<stream:stream xmlns="jabber:client"/>`, Limits{}, "bad-format"},
	{"declaration with latin-1", `<?xml version='1.0' encoding='ISO-8859-1'?>` + testHdr, Limits{}, "unsupported-encoding"},
	{"doctype", `<!DOCTYPE stream>` + testHdr, Limits{}, "restricted-xml"},
	{"entity declaration in stanza", testHdr + `<a><!ENTITY x "y"></a>`, Limits{}, "restricted-xml"},
	{"comment before header", `<!-- hi -->` + testHdr, Limits{}, "restricted-xml"},
	{"comment at stream level", testHdr + `<!-- hi -->`, Limits{}, "restricted-xml"},
	{"comment in stanza", testHdr + `<a><!-- hi --></a>`, Limits{}, "restricted-xml"},
	{"processing instruction before header", `<?php x?>` + testHdr, Limits{}, "restricted-xml"},
	{"processing instruction at stream level", testHdr + `<?pi x?>`, Limits{}, "restricted-xml"},
	{"processing instruction in stanza", testHdr + `<a><?pi x?></a>`, Limits{}, "restricted-xml"},
	{"second declaration", `<?xml version='1.0'?><?xml version='1.0'?>` + testHdr, Limits{}, "restricted-xml"},
	{"declaration after header", testHdr + `<?xml version='1.0'?>`, Limits{}, "restricted-xml"},
	{"other <![ section", testHdr + `<a><![INCLUDE[x]]></a>`, Limits{}, "restricted-xml"},
	{"cdata at stream level", testHdr + `<![CDATA[x]]>`, Limits{}, "not-well-formed"},
	{"text at stream level", testHdr + `hello`, Limits{}, "not-well-formed"},
	{"text before header", `hello` + testHdr, Limits{}, "not-well-formed"},
	{"end tag before header", `</stream:stream>`, Limits{}, "not-well-formed"},
	{"mismatched end tag", testHdr + `<a><b></a></b>`, Limits{}, "not-well-formed"},
	{"end tag longer than start", testHdr + `<a></ab>`, Limits{}, "not-well-formed"},
	{"end tag shorter than start", testHdr + `<ab></a>`, Limits{}, "not-well-formed"},
	{"mismatched stream end", testHdr + `</stream:streams>`, Limits{}, "not-well-formed"},
	{"< in attribute value", testHdr + `<a b="<"/>`, Limits{}, "not-well-formed"},
	{"unquoted attribute", testHdr + `<a b=c/>`, Limits{}, "not-well-formed"},
	{"attribute without value", testHdr + `<a b/>`, Limits{}, "not-well-formed"},
	{"no space between attributes", testHdr + `<a b="1"c="2"/>`, Limits{}, "not-well-formed"},
	{"name starting with a digit", testHdr + `<1a/>`, Limits{}, "not-well-formed"},
	{"non-ascii name", testHdr + `<é/>`, Limits{}, "not-well-formed"},
	{"space after <", testHdr + `< a/>`, Limits{}, "not-well-formed"},
	{"slash not followed by >", testHdr + `<a/ >`, Limits{}, "not-well-formed"},
	{"nul in text", testHdr + "<a>\x00</a>", Limits{}, "not-well-formed"},
	{"control char in attribute", testHdr + "<a b='\x01'/>", Limits{}, "not-well-formed"},
	{"control char in cdata", testHdr + "<a><![CDATA[\x1b]]></a>", Limits{}, "not-well-formed"},
	{"invalid utf-8 byte", testHdr + "<a>\xff</a>", Limits{}, "not-well-formed"},
	{"overlong utf-8", testHdr + "<a>\xc0\x80</a>", Limits{}, "not-well-formed"},
	{"overlong 3-byte utf-8", testHdr + "<a>\xe0\x80\x80</a>", Limits{}, "not-well-formed"},
	{"utf-8 surrogate", testHdr + "<a>\xed\xa0\x80</a>", Limits{}, "not-well-formed"},
	{"utf-8 beyond U+10FFFF", testHdr + "<a>\xf4\x90\x80\x80</a>", Limits{}, "not-well-formed"},
	{"U+FFFE", testHdr + "<a>\xef\xbf\xbe</a>", Limits{}, "not-well-formed"},
	{"truncated utf-8", testHdr + "<a>\xe2\x82</a>", Limits{}, "not-well-formed"},
	{"invalid utf-8 in attribute", testHdr + "<a b='\x80'/>", Limits{}, "not-well-formed"},
	{"invalid utf-8 in header", "<stream:stream a='\xfe'>", Limits{}, "not-well-formed"},
	{"stanza over the size limit", testHdr + `<message>` + strings.Repeat("x", 100) + `</message>`, Limits{MaxStanzaBytes: 100}, "policy-violation"},
	{"header over the size limit", `<stream:stream a="` + strings.Repeat("x", 100) + `">`, Limits{MaxStanzaBytes: 100}, "policy-violation"},
	{"too deep", testHdr + `<a><b><c><d></d></c></b></a>`, Limits{MaxDepth: 3}, "policy-violation"},
	{"too many attributes", testHdr + `<a b='1' c='2' d='3'/>`, Limits{MaxAttrs: 2}, "policy-violation"},
	{"too many attributes on the header", `<stream:stream b='1' c='2' d='3'>`, Limits{MaxAttrs: 2}, "policy-violation"},
	{"truncated stanza", testHdr + `<message><gcm>`, Limits{}, io.ErrUnexpectedEOF.Error()},
	{"truncated declaration", `<?xml version='1.0'`, Limits{}, io.ErrUnexpectedEOF.Error()},
}

func TestReaderErrors(t *testing.T) {
	for _, tt := range errorTests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := collect(NewReader(strings.NewReader(tt.in), tt.lim))
			if got := condOf(err); got != tt.want {
				t.Errorf("condition = %q (%v), want %q", got, err, tt.want)
			}
			// The same error whatever the read sizes.
			_, err = collect(NewReader(&chunkReader{data: []byte(tt.in), sizes: []int{1}}, tt.lim))
			if got := condOf(err); got != tt.want {
				t.Errorf("1-byte reads: condition = %q (%v), want %q", got, err, tt.want)
			}
		})
	}
}

func TestReaderLimitsAtBoundary(t *testing.T) {
	const hdr = "<stream:stream>"
	stanza := `<message>` + strings.Repeat("x", 100) + `</message>`
	for _, tt := range []struct {
		max  int
		want string
	}{
		{len(stanza), ""},
		{len(stanza) - 1, "policy-violation"},
	} {
		r := NewReader(strings.NewReader(hdr+stanza), Limits{MaxStanzaBytes: tt.max})
		_, err := collect(r)
		if got := condOf(err); got != tt.want {
			t.Errorf("limit %d for a %d-byte stanza: condition %q, want %q", tt.max, len(stanza), got, tt.want)
		}
	}
}

// TestReaderLimitsBeforeBuffering proves limits fail while scanning: a 1 MB
// stanza and 10,000 nesting levels fail after reading little of them.
func TestReaderLimitsBeforeBuffering(t *testing.T) {
	for _, tt := range []struct {
		name     string
		in       string
		maxRead  int
		wantCond string
	}{
		{"1 MB stanza", testHdr + "<message>" + strings.Repeat("a", 1<<20) + "</message>", defaultMaxStanza + 2*readChunk, "policy-violation"},
		{"10,000 levels", testHdr + strings.Repeat("<a>", 10000) + strings.Repeat("</a>", 10000), 4096, "policy-violation"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			src := &chunkReader{data: []byte(tt.in), sizes: []int{1024}}
			r := NewReader(src, Limits{})
			_, err := collect(r)
			if got := condOf(err); got != tt.wantCond {
				t.Fatalf("condition %q (%v), want %q", got, err, tt.wantCond)
			}
			if src.read > tt.maxRead {
				t.Errorf("read %d bytes before failing, want at most %d", src.read, tt.maxRead)
			}
			if got := cap(r.impl.buf); got > defaultMaxStanza {
				t.Errorf("buffer grew to %d bytes, want at most %d", got, defaultMaxStanza)
			}
		})
	}
}

func TestReaderRestart(t *testing.T) {
	first := `<?xml version='1.0'?>` + testHdr + `<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="PLAIN">AGEAYg==</auth>`
	second := "<?xml version='1.0'?>" + testHdr + `<iq type="set" id="b"/></stream:stream>`
	// Both streams arrive in one read: Restart keeps the buffered bytes.
	r := NewReader(strings.NewReader(first+second), Limits{})
	var got []string
	for i := 0; i < 2; i++ {
		f, err := r.Next()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		got = append(got, kindName[f.Kind])
	}
	r.Restart()
	rest, err := collect(r)
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, rest...)
	want := []string{"start", "stanza", "start " + testHdr, `stanza <iq type="set" id="b"/>`, "end </stream:stream>"}
	if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) {
		t.Errorf("got %q\nwant %q", got, want)
	}

	// Without Restart, a second header is a stanza-level start tag that
	// never ends; a second declaration is refused.
	r = NewReader(strings.NewReader(first+second), Limits{})
	_, err = collect(r)
	if got := condOf(err); got != "restricted-xml" {
		t.Errorf("second stream without Restart: condition %q, want restricted-xml", got)
	}
}

func TestReaderTryNext(t *testing.T) {
	in := testHdr + `<a/> <b>` + `</b>`
	src := &chunkReader{data: []byte(in), sizes: []int{len(testHdr) + 8, 100}}
	r := NewReader(src, Limits{})
	var got []string
	step := func() {
		f, ok, err := r.TryNext()
		switch {
		case err != nil:
			got = append(got, "err "+err.Error())
		case !ok:
			got = append(got, "would block")
		default:
			got = append(got, kindName[f.Kind]+" "+string(f.Raw))
		}
	}
	step() // nothing read yet
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	step()
	step()
	step() // <b> is incomplete
	if f, err := r.Next(); err != nil || string(f.Raw) != "<b></b>" {
		t.Fatalf("Next = %q, %v", f.Raw, err)
	}
	step() // end of input is not known without a read
	want := []string{"would block", "stanza <a/>", "ws  ", "would block", "would block"}
	if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Errorf("final Next: %v, want io.EOF", err)
	}
}

func TestReaderReleaseAndBuffered(t *testing.T) {
	src := &chunkReader{data: []byte(testHdr + `<a/><b>`), sizes: []int{len(testHdr) + 4, 100}}
	r := NewReader(src, Limits{})
	if r.impl.buf != nil {
		t.Fatal("buffer allocated before the first read")
	}
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	if got := r.Buffered(); got != 4 {
		t.Errorf("Buffered after header = %d, want 4", got)
	}
	r.Release()
	if r.impl.buf == nil {
		t.Error("Release dropped a buffer holding bytes")
	}
	if f, err := r.Next(); err != nil || string(f.Raw) != "<a/>" {
		t.Fatalf("Next = %q, %v", f.Raw, err)
	}
	if got := r.Buffered(); got != 0 {
		t.Errorf("Buffered after stanza = %d, want 0", got)
	}
	r.Release()
	if r.impl.buf != nil {
		t.Error("Release kept an empty buffer")
	}
	if _, err := r.Next(); err != io.ErrUnexpectedEOF {
		t.Errorf("Next after Release: %v, want io.ErrUnexpectedEOF for the truncated <b>", err)
	}
	var e *Error
	r = NewReader(strings.NewReader(testHdr+"<a>\xff</a>"), Limits{})
	_, err := collect(r)
	if !errors.As(err, &e) || e.Offset != int64(len(testHdr)+3) {
		t.Errorf("error %v, want offset %d", err, len(testHdr)+3)
	}
}

// TestReaderLargeStanzaSpansReads checks the buffer compacts and grows so a
// stanza near the limit arriving after many small ones is framed whole.
func TestReaderLargeStanzaSpansReads(t *testing.T) {
	var in bytes.Buffer
	in.WriteString(testHdr)
	var want []string
	want = append(want, "start "+testHdr)
	for i := 0; i < 300; i++ {
		s := fmt.Sprintf(`<message id="%d"><gcm xmlns="google:mobile:data">{"k":"%d"}</gcm></message>`, i, i)
		in.WriteString(s)
		want = append(want, "stanza "+s)
	}
	big := `<message>` + strings.Repeat("y", defaultMaxStanza-len(`<message></message>`)) + `</message>`
	in.WriteString(big)
	want = append(want, "stanza "+big)
	for _, size := range []int{1000, 4096, 7777, 1 << 20} {
		got, err := collect(NewReader(&chunkReader{data: in.Bytes(), sizes: []int{size}}, Limits{}))
		if err != nil {
			t.Fatalf("reads of %d: %v", size, err)
		}
		if len(got) != len(want) || got[len(got)-1] != want[len(want)-1] || got[150] != want[150] {
			t.Errorf("reads of %d: got %d frames, want %d", size, len(got), len(want))
		}
	}
}
