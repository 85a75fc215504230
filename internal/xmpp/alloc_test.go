package xmpp

import (
	"io"
	"strings"
	"testing"

	"github.com/ccsd/ccsd/internal/xmltok"
)

const testHdr = `<stream:stream to="gcm.googleapis.com" version="1.0" xmlns="jabber:client" xmlns:stream="http://etherx.jabber.org/streams">`

// typicalStanza is a CCS downstream message of about 300 bytes.
var typicalStanza = `<message id=""><gcm xmlns="google:mobile:data">{"to":"` + strings.Repeat("R", 152) +
	`","message_id":"m-1","data":{"k":"v"},"time_to_live":600,"delivery_receipt_requested":true}</gcm></message>`

// escapedStanza is the same message from a careful client that escapes
// quotes, so its payload is unescaped into the scratch buffer.
var escapedStanza = strings.ReplaceAll(strings.Replace(typicalStanza, `id=""`, `id="a&amp;b"`, 1), `"m-1"`, `&quot;m-1&quot;`)

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

func newStanzaStream(tb testing.TB, stanza string) *xmltok.Reader {
	r := xmltok.NewReader(io.MultiReader(strings.NewReader(testHdr), &repeatReader{data: []byte(stanza)}), xmltok.Limits{})
	if f, err := r.Next(); err != nil || f.Kind != xmltok.StreamStart {
		tb.Fatalf("header: %v %v", f.Kind, err)
	}
	return r
}

func TestAllocsReadAndParse(t *testing.T) {
	for _, stanza := range []string{typicalStanza, escapedStanza} {
		r := newStanzaStream(t, stanza)
		var tk xmltok.Tokenizer
		var s Stanza
		allocs := testing.AllocsPerRun(1000, func() {
			f, err := r.Next()
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Parse(&tk, f.Raw); err != nil {
				t.Fatal(err)
			}
			if s.Kind != KindMessage || !s.HasGCM || len(s.GCM) < 200 {
				t.Fatalf("kind %d gcm %q", s.Kind, s.GCM)
			}
		})
		if allocs != 0 {
			t.Errorf("Reader.Next + Stanza.Parse: %v allocs per stanza, want 0\n%s", allocs, stanza)
		}
	}
}

func TestAllocsParseOtherKinds(t *testing.T) {
	var tk xmltok.Tokenizer
	var s Stanza
	frames := [][]byte{
		[]byte(`<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r&amp;d</resource></bind></iq>`),
		[]byte(`<stream:features><mechanisms xmlns="urn:ietf:params:xml:ns:xmpp-sasl"><mechanism>A</mechanism><mechanism>PLAIN</mechanism></mechanisms></stream:features>`),
		[]byte(`<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="PLAIN">AHNlbmRlcgBrZXk=</auth>`),
	}
	scratch := make([]byte, 0, 64)
	allocs := testing.AllocsPerRun(1000, func() {
		for _, f := range frames {
			if err := s.Parse(&tk, f); err != nil {
				t.Fatal(err)
			}
		}
		if _, _, _, err := ParsePlain(s.Text, scratch); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("Parse of iq, features, auth and ParsePlain: %v allocs, want 0", allocs)
	}
}

func TestAllocsWriters(t *testing.T) {
	dst := make([]byte, 0, 4096)
	json := []byte(`{"message_type":"ack","from":"REG","message_id":"m-1"}`)
	id := []byte("i1")
	se := &StanzaError{Type: "modify", Condition: "bad-request", Text: "x", Code: 400}
	allocs := testing.AllocsPerRun(1000, func() {
		d := dst[:0]
		d = AppendStreamHeader(d, DomainGCM, "0123456789ABCDEF")
		d = AppendFeaturesSASL(d, "PLAIN")
		d = AppendFeaturesBind(d)
		d = AppendSASLSuccess(d)
		d = AppendSASLFailure(d, "not-authorized")
		d = AppendBindResult(d, id, "1@gcm.googleapis.com/r")
		d = AppendIQResult(d, id, DomainGCM, "1@gcm.googleapis.com/r")
		d = AppendIQError(d, id, "", "", se)
		d = AppendGCM(d, EnvelopeAnswer, "", json)
		d = AppendGCM(d, EnvelopeNormal, "1@gcm.googleapis.com", json)
		d = AppendMessageError(d, id, "1@gcm.googleapis.com/r", json, se)
		d = AppendStreamError(d, &StreamError{Condition: "invalid-xml", Text: "t"})
		d = AppendClientStreamHeader(d, DomainGCM)
		d = AppendAuthPlain(d, "", "123", "key")
		d = AppendBindRequest(d, "b", "r")
		d = AppendSessionRequest(d, "s")
		d = AppendPing(d, "p", DomainGCM)
		_ = AppendClientGCM(d, json)
	})
	if allocs != 0 {
		t.Errorf("writers: %v allocs, want 0", allocs)
	}
}

func BenchmarkStanzaParse(b *testing.B) {
	for _, bc := range []struct{ name, stanza string }{{"raw-json", typicalStanza}, {"escaped-json", escapedStanza}} {
		b.Run(bc.name, func(b *testing.B) {
			raw := []byte(bc.stanza)
			var tk xmltok.Tokenizer
			var s Stanza
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				if err := s.Parse(&tk, raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkReadAndParse is the server's per-stanza XML cost: framing plus
// the stanza view.
func BenchmarkReadAndParse(b *testing.B) {
	r := newStanzaStream(b, typicalStanza)
	var tk xmltok.Tokenizer
	var s Stanza
	b.SetBytes(int64(len(typicalStanza)))
	b.ReportAllocs()
	for b.Loop() {
		f, err := r.Next()
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Parse(&tk, f.Raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendGCM(b *testing.B) {
	json := []byte(`{"message_type":"ack","from":"` + strings.Repeat("R", 152) + `","message_id":"m-1"}`)
	dst := make([]byte, 0, 1024)
	b.SetBytes(int64(len(json)))
	b.ReportAllocs()
	for b.Loop() {
		dst = AppendGCM(dst[:0], EnvelopeAnswer, "", json)
	}
}
