package xmltok

import (
	"fmt"
	"io"
	"strings"
	"testing"
)

// tokens renders every token of frame as one string each, and the final
// error (nil for io.EOF).
func tokens(tk *Tokenizer, frame string) ([]string, error) {
	tk.Reset([]byte(frame))
	var out []string
	for {
		tok, err := tk.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, renderToken(tok))
	}
}

func renderToken(tok Token) string {
	var b strings.Builder
	switch tok.Kind {
	case StartElement:
		fmt.Fprintf(&b, "<%s|%s", tok.Prefix, tok.Local)
		for _, a := range tok.Attrs {
			fmt.Fprintf(&b, " %s|%s=%q", a.Prefix, a.Local, a.Value)
		}
		if tok.SelfClosing {
			b.WriteString("/")
		}
		b.WriteString(">")
	case EndElement:
		fmt.Fprintf(&b, "</%s|%s>", tok.Prefix, tok.Local)
	case CharData:
		fmt.Fprintf(&b, "text %q", tok.Text)
	case CDATA:
		fmt.Fprintf(&b, "cdata %q", tok.Text)
	}
	return b.String()
}

func TestTokenizer(t *testing.T) {
	for _, tt := range []struct {
		name, in string
		want     []string
	}{
		{
			name: "stream header yields only its start tag",
			in:   testHdr,
			want: []string{`<stream|stream |to="gcm.googleapis.com" |version="1.0" |xmlns="jabber:client" xmlns|stream="http://etherx.jabber.org/streams">`},
		},
		{
			name: "downstream message",
			in:   `<message id=""><data:gcm xmlns:data="google:mobile:data">{&quot;a&quot;:1}</data:gcm></message>`,
			want: []string{`<|message |id="">`, `<data|gcm xmlns|data="google:mobile:data">`, `text "{&quot;a&quot;:1}"`, `</data|gcm>`, `</|message>`},
		},
		{
			name: "self-closing root and child, cdata, whitespace in tags",
			in:   "<iq type='get' >\n <ping xmlns='urn:xmpp:ping'/><![CDATA[<&>]]>x</iq >",
			want: []string{`<|iq |type="get">`, `text "\n "`, `<|ping |xmlns="urn:xmpp:ping"/>`, `</|ping>`, `cdata "<&>"`, `text "x"`, `</|iq>`},
		},
		{
			name: "self-closing root",
			in:   `<presence/>`,
			want: []string{`<|presence/>`, `</|presence>`},
		},
		{
			name: "attribute values keep markup characters and other quotes",
			in:   `<a b='x>"y' c="'/>"/>`,
			want: []string{`<|a |b="x>\"y" |c="'/>"/>`, `</|a>`},
		},
		{
			name: "references and utf-8",
			in:   "<a>&lt;&#65;&#x20AC;\u00e9 ]] ] &gt;</a>",
			want: []string{`<|a>`, `text "&lt;&#65;&#x20AC;é ]] ] &gt;"`, `</|a>`},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var tk Tokenizer
			got, err := tokens(&tk, tt.in)
			if err != nil {
				t.Fatalf("error %v after %q", err, got)
			}
			if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", tt.want) {
				t.Errorf("tokens\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestTokenizerErrors(t *testing.T) {
	for _, tt := range []struct {
		name, in, want string
	}{
		{"empty", ``, "not-well-formed"},
		{"leading whitespace", ` <a/>`, "not-well-formed"},
		{"text only", `abc`, "not-well-formed"},
		{"end tag first", `</a>`, "not-well-formed"},
		{"content after root", `<a/><b/>`, "not-well-formed"},
		{"whitespace after root", "<a></a>\n", "not-well-formed"},
		{"mismatched end tag", `<a><b></a></b>`, "not-well-formed"},
		{"unclosed element", `<a><b></b>`, "not-well-formed"},
		{"truncated start tag", `<a b="c"`, "not-well-formed"},
		{"truncated attribute", `<a b="c/>`, "not-well-formed"},
		{"truncated text", `<a>text`, "not-well-formed"},
		{"truncated cdata", `<a><![CDATA[x</a>`, "not-well-formed"},
		{"double colon name", `<a:b:c/>`, "not-well-formed"},
		{"empty prefix", `<:a/>`, "not-well-formed"},
		{"empty local name", `<a:/>`, "not-well-formed"},
		{"digit after colon", `<a:1/>`, "not-well-formed"},
		{"duplicate attribute", `<a b="1" b="2"/>`, "not-well-formed"},
		{"duplicate prefixed attribute", `<a x:b="1" x:b="2"/>`, "not-well-formed"},
		{"no space between attributes", `<a b="1"c="2"/>`, "not-well-formed"},
		{"unquoted attribute", `<a b=1/>`, "not-well-formed"},
		{"attribute without value", `<a b/>`, "not-well-formed"},
		{"< in attribute", `<a b="<"/>`, "not-well-formed"},
		{"]]> in text", `<a>]]></a>`, "not-well-formed"},
		{"bare ampersand", `<a>a & b</a>`, "not-well-formed"},
		{"reference without semicolon", `<a>&amp</a>`, "not-well-formed"},
		{"empty numeric reference", `<a>&#;</a>`, "not-well-formed"},
		{"bad hex reference", `<a>&#xZ;</a>`, "not-well-formed"},
		{"reference to NUL", `<a>&#0;</a>`, "not-well-formed"},
		{"reference beyond unicode", `<a>&#x110000;</a>`, "not-well-formed"},
		{"reference to a surrogate", `<a>&#xD800;</a>`, "not-well-formed"},
		{"huge reference", `<a>&#99999999999999999999;</a>`, "not-well-formed"},
		{"unknown entity in text", `<a>&nbsp;</a>`, "restricted-xml"},
		{"unknown entity in attribute", `<a b="&foo;"/>`, "restricted-xml"},
		{"comment", `<a><!-- x --></a>`, "restricted-xml"},
		{"doctype frame", `<!DOCTYPE a>`, "restricted-xml"},
		{"processing instruction", `<a><?x y?></a>`, "restricted-xml"},
		{"control character", "<a>\x07</a>", "not-well-formed"},
		{"control character in attribute", "<a b='\x07'/>", "not-well-formed"},
		{"invalid utf-8", "<a>\xff</a>", "not-well-formed"},
		{"invalid utf-8 in cdata", "<a><![CDATA[\xc3]]></a>", "not-well-formed"},
		{"U+FFFF", "<a>\uffff</a>", "not-well-formed"},
		{"non-ascii name", "<a><\u00e9/></a>", "not-well-formed"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var tk Tokenizer
			got, err := tokens(&tk, tt.in)
			if c := condOf(err); c != tt.want {
				t.Errorf("condition %q (%v) after %q, want %q", c, err, got, tt.want)
			}
			// Errors are sticky.
			if _, err2 := tk.Next(); condOf(err2) != condOf(err) {
				t.Errorf("second Next: %v, want %v", err2, err)
			}
		})
	}
}

func TestTokenizerOffset(t *testing.T) {
	const frame = `<message><gcm xmlns="google:mobile:data">{}</gcm><x/></message>`
	var tk Tokenizer
	tk.Reset([]byte(frame))
	var spans []string
	for {
		start := tk.Offset()
		tok, err := tk.Next()
		if err != nil {
			break
		}
		spans = append(spans, fmt.Sprintf("%d:%s", tok.Kind, frame[start:tk.Offset()]))
	}
	want := []string{"1:<message>", `1:<gcm xmlns="google:mobile:data">`, "3:{}", "2:</gcm>", "1:<x/>", "2:", "2:</message>"}
	if fmt.Sprintf("%q", spans) != fmt.Sprintf("%q", want) {
		t.Errorf("spans\n got %q\nwant %q", spans, want)
	}
}
