package xmltok

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

// TypicalStanza is a CCS downstream message of about 300 bytes.
var typicalStanza = `<message id=""><gcm xmlns="google:mobile:data">{"to":"` + strings.Repeat("R", 152) +
	`","message_id":"m-1","data":{"k":"v"},"time_to_live":600,"delivery_receipt_requested":true}</gcm></message>`

// repeatReader serves data over and over, without allocating.
type repeatReader struct {
	data []byte
	off  int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.data[r.off:])
		n += c
		r.off = (r.off + c) % len(r.data)
	}
	return n, nil
}

// newStanzaStream returns a Reader positioned after the stream header of an
// endless stream of stanza.
func newStanzaStream(tb testing.TB, stanza string) *Reader {
	r := NewReader(io.MultiReader(strings.NewReader(testHdr), &repeatReader{data: []byte(stanza)}), Limits{})
	if f, err := r.Next(); err != nil || f.Kind != StreamStart {
		tb.Fatalf("header: %v %v", f.Kind, err)
	}
	return r
}

func walk(tb testing.TB, tk *Tokenizer, raw []byte) int {
	tk.Reset(raw)
	n := 0
	for {
		_, err := tk.Next()
		if err == io.EOF {
			return n
		}
		if err != nil {
			tb.Fatal(err)
		}
		n++
	}
}

func TestAllocsReaderAndTokenizer(t *testing.T) {
	r := newStanzaStream(t, typicalStanza)
	var tk Tokenizer
	allocs := testing.AllocsPerRun(1000, func() {
		f, err := r.Next()
		if err != nil || f.Kind != Stanza {
			t.Fatalf("frame %v %v", f.Kind, err)
		}
		if n := walk(t, &tk, f.Raw); n != 5 {
			t.Fatalf("%d tokens", n)
		}
	})
	if allocs != 0 {
		t.Errorf("Reader.Next + Tokenizer: %v allocs per stanza, want 0", allocs)
	}
}

func TestAllocsEscape(t *testing.T) {
	dst := make([]byte, 0, 1024)
	raw := []byte(`{&quot;a&quot;:&quot;&lt;b&gt; &#x20AC;&#65;&quot;}`)
	allocs := testing.AllocsPerRun(1000, func() {
		out, err := Unescape(dst[:0], raw)
		if err != nil {
			t.Fatal(err)
		}
		out = AppendText(out[:0], raw)
		out = AppendTextString(out, `<a href="x">&</a>`)
		_ = AppendAttr(out, `"'<>&`)
	})
	if allocs != 0 {
		t.Errorf("escaping: %v allocs, want 0", allocs)
	}
}

// BenchmarkReaderStanza frames an endless stream of typical stanzas: ns/op
// is ns per stanza, MB/s the framing throughput.
func BenchmarkReaderStanza(b *testing.B) {
	r := newStanzaStream(b, typicalStanza)
	b.SetBytes(int64(len(typicalStanza)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Next(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReaderBuffer frames a buffer of 10,000 stanzas read whole.
func BenchmarkReaderBuffer(b *testing.B) {
	const n = 10000
	buf := []byte(testHdr + strings.Repeat(typicalStanza, n))
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		r := NewReader(bytes.NewReader(buf), Limits{})
		count := 0
		for {
			f, err := r.Next()
			if err != nil {
				break
			}
			if f.Kind == Stanza {
				count++
			}
		}
		if count != n {
			b.Fatalf("%d stanzas", count)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/stanza")
}

// BenchmarkReaderTokenize frames and tokenizes typical stanzas.
func BenchmarkReaderTokenize(b *testing.B) {
	r := newStanzaStream(b, typicalStanza)
	var tk Tokenizer
	b.SetBytes(int64(len(typicalStanza)))
	b.ReportAllocs()
	for b.Loop() {
		f, err := r.Next()
		if err != nil {
			b.Fatal(err)
		}
		walk(b, &tk, f.Raw)
	}
}

func BenchmarkTokenizer(b *testing.B) {
	raw := []byte(typicalStanza)
	var tk Tokenizer
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		walk(b, &tk, raw)
	}
}
