package xmltok

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

// readAll frames in with reads of the sizes a generator derives from seed
// (0: one read), returning the rendered frames and the final error.
func readAll(in []byte, seed uint32, lim Limits) ([]string, string) {
	var sizes []int
	if seed != 0 {
		x := seed
		for range 64 {
			x ^= x << 13
			x ^= x >> 17
			x ^= x << 5
			sizes = append(sizes, int(x%97)+1)
		}
	}
	r := NewReader(&chunkReader{data: in, sizes: sizes}, lim)
	frames, err := collect(r)
	es := ""
	var e *Error
	if errors.As(err, &e) {
		es = fmt.Sprintf("%s at %d", e.Condition, e.Offset)
	} else if err != nil {
		es = err.Error()
	}
	return frames, es
}

// FuzzReader checks the Reader never panics, that its frames and error do
// not depend on how the input is cut into reads, and that frames are what
// they claim to be.
func FuzzReader(f *testing.F) {
	f.Add([]byte(testHdr+`<message id=""><gcm xmlns="google:mobile:data">{"a":1}</gcm></message> </stream:stream>`), uint32(7))
	f.Fuzz(func(t *testing.T, in []byte, seed uint32) {
		for _, input := range [][]byte{in, append([]byte(testHdr), in...)} {
			for _, lim := range []Limits{{}, {MaxStanzaBytes: 64, MaxDepth: 3, MaxAttrs: 2}} {
				want, wantErr := readAll(input, 0, lim)
				for _, s := range []uint32{seed | 1, 1} {
					got, gotErr := readAll(input, s, lim)
					if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) || gotErr != wantErr {
						t.Fatalf("split reads (seed %d) changed the result\n got %q %s\nwant %q %s", s, got, gotErr, want, wantErr)
					}
				}
				for _, fr := range want {
					kind, raw, _ := strings.Cut(fr, " ")
					switch kind {
					case "stanza", "start", "end":
						if raw[0] != '<' || raw[len(raw)-1] != '>' {
							t.Fatalf("%s frame %q is not a tag", kind, raw)
						}
						if kind != "end" && len(raw) > max(lim.MaxStanzaBytes, 0) && lim.MaxStanzaBytes != 0 {
							t.Fatalf("%s frame of %d bytes over the limit %d", kind, len(raw), lim.MaxStanzaBytes)
						}
					case "ws":
						if strings.Trim(raw, " \t\r\n") != "" {
							t.Fatalf("whitespace frame %q", raw)
						}
					}
					if kind == "stanza" || kind == "start" {
						var tk Tokenizer
						_, _ = tokens(&tk, raw) // must not panic
					}
				}
			}
		}
	})
}

// normText applies encoding/xml's line-end handling to one raw segment.
func normText(raw []byte) []byte {
	raw = bytes.ReplaceAll(raw, []byte("\r\n"), []byte("\n"))
	return bytes.ReplaceAll(raw, []byte("\r"), []byte("\n"))
}

// oursDiff renders the tokens of in as the differential test compares them:
// unescaped attribute values and merged, unescaped text.
func oursDiff(in []byte) (out []string, header bool, err error) {
	var tk Tokenizer
	tk.Reset(in)
	var text []byte
	flush := func() {
		if len(text) > 0 {
			out = append(out, fmt.Sprintf("text %q", text))
			text = text[:0]
		}
	}
	for {
		tok, err := tk.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return out, false, err
		}
		switch tok.Kind {
		case StartElement:
			flush()
			s := fmt.Sprintf("<%s|%s", tok.Prefix, tok.Local)
			for _, a := range tok.Attrs {
				v, err := Unescape(nil, normText(a.Value))
				if err != nil {
					return out, false, err
				}
				s += fmt.Sprintf(" %s|%s=%q", a.Prefix, a.Local, v)
			}
			out = append(out, s+">")
		case EndElement:
			flush()
			out = append(out, fmt.Sprintf("</%s|%s>", tok.Prefix, tok.Local))
		case CharData:
			if text, err = Unescape(text, normText(tok.Text)); err != nil {
				return out, false, err
			}
		case CDATA:
			text = append(text, normText(tok.Text)...)
		}
	}
	flush()
	header = len(out) == 1 && out[0][0] == '<'
	return out, header, nil
}

// stdDiff renders what encoding/xml makes of in the same way: names from
// RawToken (prefixes, not namespaces), well-formedness from Token (which
// also checks end tags match).
func stdDiff(in []byte) ([]string, error) {
	d := xml.NewDecoder(bytes.NewReader(in))
	d.Strict = true
	n := 0
	var firstErr error
	for {
		_, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			firstErr = err
			break
		}
		n++
	}
	rd := xml.NewDecoder(bytes.NewReader(in))
	rd.Strict = true
	var out []string
	var text []byte
	flush := func() {
		if len(text) > 0 {
			out = append(out, fmt.Sprintf("text %q", text))
			text = text[:0]
		}
	}
	for i := 0; i < n; i++ {
		tok, err := rd.RawToken()
		if err != nil {
			return out, err
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			flush()
			s := fmt.Sprintf("<%s|%s", tok.Name.Space, tok.Name.Local)
			for _, a := range tok.Attr {
				s += fmt.Sprintf(" %s|%s=%q", a.Name.Space, a.Name.Local, a.Value)
			}
			out = append(out, s+">")
		case xml.EndElement:
			flush()
			out = append(out, fmt.Sprintf("</%s|%s>", tok.Name.Space, tok.Name.Local))
		case xml.CharData:
			text = append(text, tok...)
		default:
			flush()
			out = append(out, fmt.Sprintf("other %T", tok))
		}
	}
	flush()
	return out, firstErr
}

// stricterReasons are the rules where xmltok refuses what encoding/xml
// accepts on purpose: XMPP frames are one element, names are ASCII QNames,
// and XML 1.0 forbids the rest even though encoding/xml lets it through.
var stricterReasons = map[string]bool{
	reasonAfterRoot:  true,
	reasonNotElement: true,
	reasonQName:      true,
	reasonNoSpace:    true,
	reasonDupAttr:    true,
	reasonCDATAEnd:   true,
	"invalid name":   true, // non-ASCII names
}

// FuzzTokenizerDiff compares the Tokenizer with encoding/xml. Whatever
// xmltok accepts, encoding/xml must accept with the same names, attributes
// and text; whatever encoding/xml rejects, xmltok must reject. xmltok may
// reject more only for restricted XML and the stricter rules listed above.
func FuzzTokenizerDiff(f *testing.F) {
	f.Add([]byte(`<message id="a&amp;b"><gcm xmlns="google:mobile:data">{&quot;k&quot;:1}</gcm></message>`))
	f.Fuzz(func(t *testing.T, in []byte) {
		ours, header, oerr := oursDiff(in)
		theirs, serr := stdDiff(in)
		switch {
		case oerr == nil && header:
			// A lone start tag is a stream header: encoding/xml sees an
			// unclosed element, so compare the start tag only.
			if len(theirs) == 0 || theirs[0] != ours[0] {
				t.Fatalf("header: ours %q, encoding/xml %q (%v)", ours, theirs, serr)
			}
		case oerr == nil:
			if serr != nil {
				t.Fatalf("xmltok accepted %q, encoding/xml rejected it: %v\nours %q", in, serr, ours)
			}
			if fmt.Sprintf("%q", ours) != fmt.Sprintf("%q", theirs) {
				t.Fatalf("tokens differ for %q\n  ours %q\ntheirs %q", in, ours, theirs)
			}
		case serr == nil:
			var e *Error
			if !errors.As(oerr, &e) {
				t.Fatalf("error %v is not *Error", oerr)
			}
			if e.Condition == "restricted-xml" || stricterReasons[e.Reason] {
				return
			}
			t.Fatalf("xmltok rejected %q (%v), encoding/xml accepted it: %q", in, oerr, theirs)
		}
	})
}
