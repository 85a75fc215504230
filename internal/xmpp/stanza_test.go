package xmpp

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/ccsd/ccsd/internal/xmltok"
)

// view renders the fields of s that are set, for comparing with want.
func view(s *Stanza) string {
	var b strings.Builder
	fmt.Fprintf(&b, "kind=%d %s{%s}", s.Kind, s.Local, s.NS)
	str := func(name string, v []byte) {
		if v != nil {
			fmt.Fprintf(&b, " %s=%q", name, v)
		}
	}
	str("id", s.ID)
	str("type", s.Type)
	str("to", s.To)
	str("from", s.From)
	if s.HasGCM {
		fmt.Fprintf(&b, " gcm=%q raw=%q", s.GCM, s.GCMRaw)
	}
	str("child", s.ChildLocal)
	str("childns", s.ChildNS)
	str("resource", s.BindResource)
	str("jid", s.BindJID)
	str("mech", s.Mechanism)
	str("text", s.Text)
	for _, m := range s.Mechanisms {
		fmt.Fprintf(&b, " mechanism=%q", m)
	}
	if s.FeatureBind {
		b.WriteString(" bind")
	}
	if s.FeatureSession {
		b.WriteString(" session")
	}
	if s.FeatureStartTLS {
		b.WriteString(" starttls")
	}
	return b.String()
}

func TestStanzaParse(t *testing.T) {
	for _, tt := range []struct {
		name, in, want string
	}{
		{
			name: "downstream message, unprefixed gcm",
			in:   `<message id=""><gcm xmlns="google:mobile:data">{"to":"REG","message_id":"m-1"}</gcm></message>`,
			want: `kind=1 message{jabber:client} id="" gcm="{\"to\":\"REG\",\"message_id\":\"m-1\"}" raw="<gcm xmlns=\"google:mobile:data\">{\"to\":\"REG\",\"message_id\":\"m-1\"}</gcm>"`,
		},
		{
			name: "prefixed gcm, escaped quotes, whitespace kept",
			in:   "<message><data:gcm xmlns:data=\"google:mobile:data\">\n {&quot;a&quot;:&quot;&lt;&amp;&gt;&quot;} </data:gcm></message>",
			want: "kind=1 message{jabber:client} gcm=\"\\n {\\\"a\\\":\\\"<&>\\\"} \" raw=\"<data:gcm xmlns:data=\\\"google:mobile:data\\\">\\n {&quot;a&quot;:&quot;&lt;&amp;&gt;&quot;} </data:gcm>\"",
		},
		{
			name: "gcm text in cdata and text segments",
			in:   `<message to="devices@gcm.googleapis.com" type="normal"><gcm xmlns="google:mobile:data"><![CDATA[{"a":]]>&quot;b&quot;<![CDATA[}]]></gcm></message>`,
			want: `kind=1 message{jabber:client} type="normal" to="devices@gcm.googleapis.com" gcm="{\"a\":\"b\"}" raw="<gcm xmlns=\"google:mobile:data\"><![CDATA[{\"a\":]]>&quot;b&quot;<![CDATA[}]]></gcm>"`,
		},
		{
			name: "gcm in another namespace is not the payload",
			in:   `<message><gcm xmlns="urn:other">x</gcm><body>y</body></message>`,
			want: `kind=1 message{jabber:client}`,
		},
		{
			name: "gcm prefix declared on the message",
			in:   `<message xmlns:g="google:mobile:data" id="a&amp;b"><g:gcm>{}</g:gcm></message>`,
			want: `kind=1 message{jabber:client} id="a&b" gcm="{}" raw="<g:gcm>{}</g:gcm>"`,
		},
		{
			name: "empty gcm",
			in:   `<message><gcm xmlns="google:mobile:data"/></message>`,
			want: `kind=1 message{jabber:client} gcm="" raw="<gcm xmlns=\"google:mobile:data\"/>"`,
		},
		{
			name: "bind request with resource",
			in:   `<iq type='set' id='bind_1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r&amp;d</resource></bind></iq>`,
			want: `kind=2 iq{jabber:client} id="bind_1" type="set" child="bind" childns="urn:ietf:params:xml:ns:xmpp-bind" resource="r&d"`,
		},
		{
			name: "bind request without resource",
			in:   `<iq type="set" id="1"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"/></iq>`,
			want: `kind=2 iq{jabber:client} id="1" type="set" child="bind" childns="urn:ietf:params:xml:ns:xmpp-bind"`,
		},
		{
			name: "bind result",
			in:   `<iq type="result" id="1"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"><jid>1@gcm.googleapis.com/r</jid></bind></iq>`,
			want: `kind=2 iq{jabber:client} id="1" type="result" child="bind" childns="urn:ietf:params:xml:ns:xmpp-bind" jid="1@gcm.googleapis.com/r"`,
		},
		{
			name: "ping",
			in:   `<iq from='1@gcm.googleapis.com/x' to='gcm.googleapis.com' id='c2s1' type='get'><ping xmlns='urn:xmpp:ping'/></iq>`,
			want: `kind=2 iq{jabber:client} id="c2s1" type="get" to="gcm.googleapis.com" from="1@gcm.googleapis.com/x" child="ping" childns="urn:xmpp:ping"`,
		},
		{
			name: "session, iq result without child",
			in:   `<iq type="result" id="s"/>`,
			want: `kind=2 iq{jabber:client} id="s" type="result"`,
		},
		{
			name: "presence",
			in:   `<presence xml:lang='en'><show></show><status></status></presence>`,
			want: `kind=3 presence{jabber:client}`,
		},
		{
			name: "sasl auth",
			in:   `<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="PLAIN">AHNlbmRlcgBrZXk=</auth>`,
			want: `kind=4 auth{urn:ietf:params:xml:ns:xmpp-sasl} mech="PLAIN" text="AHNlbmRlcgBrZXk="`,
		},
		{
			name: "sasl abort",
			in:   `<abort xmlns="urn:ietf:params:xml:ns:xmpp-sasl"/>`,
			want: `kind=5 abort{urn:ietf:params:xml:ns:xmpp-sasl}`,
		},
		{
			name: "sasl success",
			in:   `<success xmlns="urn:ietf:params:xml:ns:xmpp-sasl"/>`,
			want: `kind=6 success{urn:ietf:params:xml:ns:xmpp-sasl}`,
		},
		{
			name: "sasl failure",
			in:   `<failure xmlns="urn:ietf:params:xml:ns:xmpp-sasl"><not-authorized/><text>bad key</text></failure>`,
			want: `kind=7 failure{urn:ietf:params:xml:ns:xmpp-sasl} child="not-authorized" childns="urn:ietf:params:xml:ns:xmpp-sasl" text="bad key"`,
		},
		{
			name: "sasl features",
			in:   `<stream:features><mechanisms xmlns="urn:ietf:params:xml:ns:xmpp-sasl"><mechanism>X-OAUTH2</mechanism><mechanism>PLAIN</mechanism></mechanisms></stream:features>`,
			want: `kind=8 features{http://etherx.jabber.org/streams} mechanism="X-OAUTH2" mechanism="PLAIN"`,
		},
		{
			name: "bind features, str: prefix",
			in:   `<str:features xmlns:str="http://etherx.jabber.org/streams"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"/><session xmlns="urn:ietf:params:xml:ns:xmpp-session"/><starttls xmlns="urn:ietf:params:xml:ns:xmpp-tls"/></str:features>`,
			want: `kind=8 features{http://etherx.jabber.org/streams} bind session starttls`,
		},
		{
			name: "stream error",
			in:   `<stream:error><invalid-xml xmlns="urn:ietf:params:xml:ns:xmpp-streams"/><text xmlns="urn:ietf:params:xml:ns:xmpp-streams">oops</text></stream:error>`,
			want: `kind=9 error{http://etherx.jabber.org/streams} child="invalid-xml" childns="urn:ietf:params:xml:ns:xmpp-streams" text="oops"`,
		},
		{
			name: "message in another default namespace",
			in:   `<message xmlns="jabber:server"/>`,
			want: `kind=0 message{jabber:server}`,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var s Stanza
			var tk xmltok.Tokenizer
			if err := s.Parse(&tk, []byte(tt.in)); err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := view(&s); got != tt.want {
				t.Errorf("view\n got %s\nwant %s", got, tt.want)
			}
			// A second Parse of a different stanza leaves nothing behind.
			if err := s.Parse(&tk, []byte(`<presence/>`)); err != nil || view(&s) != `kind=3 presence{jabber:client}` {
				t.Errorf("reuse: %v %s", err, view(&s))
			}
		})
	}
}

func TestStanzaParseHasAttrs(t *testing.T) {
	var s Stanza
	var tk xmltok.Tokenizer
	for _, tt := range []struct {
		in             string
		hasID, hasType bool
		idNil, typeNil bool
	}{
		{`<message/>`, false, false, true, true},
		{`<message id="" type=""/>`, true, true, false, false},
	} {
		if err := s.Parse(&tk, []byte(tt.in)); err != nil {
			t.Fatal(err)
		}
		if s.HasID != tt.hasID || s.HasType != tt.hasType || (s.ID == nil) != tt.idNil || (s.Type == nil) != tt.typeNil {
			t.Errorf("%s: HasID %v HasType %v ID nil %v Type nil %v", tt.in, s.HasID, s.HasType, s.ID == nil, s.Type == nil)
		}
	}
}

func TestStanzaParseErrors(t *testing.T) {
	for _, tt := range []struct {
		name, in, want string
	}{
		{"unbound element prefix", `<x:message/>`, "bad-namespace-prefix"},
		{"unbound child prefix", `<message><d:gcm/></message>`, "bad-namespace-prefix"},
		{"unbound attribute prefix", `<message p:a="1"/>`, "bad-namespace-prefix"},
		{"prefix undeclared to empty", `<message xmlns:d=""/>`, "bad-namespace-prefix"},
		{"prefix out of scope", `<message><a xmlns:d="x"/><d:gcm/></message>`, "bad-namespace-prefix"},
		{"malformed xml", `<message><gcm></message>`, "not-well-formed"},
		{"unknown entity in gcm", `<message><gcm xmlns="google:mobile:data">&bogus;</gcm></message>`, "restricted-xml"},
		{"unknown entity in id", `<message id="&bogus;"/>`, "restricted-xml"},
		{"whitespace frame", ` `, "not-well-formed"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var s Stanza
			var tk xmltok.Tokenizer
			err := s.Parse(&tk, []byte(tt.in))
			var se *StreamError
			var xe *xmltok.Error
			got := ""
			switch {
			case errors.As(err, &se):
				got = se.Condition
			case errors.As(err, &xe):
				got = xe.Condition
			case err != nil:
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("condition %q (%v), want %q", got, err, tt.want)
			}
		})
	}
}

func TestParseStreamHeader(t *testing.T) {
	for _, tt := range []struct {
		name, in string
		want     StreamHeader
		cond     string
	}{
		{
			name: "client header",
			in:   `<stream:stream to="gcm.googleapis.com" version="1.0" xmlns="jabber:client" xmlns:stream="http://etherx.jabber.org/streams">`,
			want: StreamHeader{To: "gcm.googleapis.com", Version: "1.0"},
		},
		{
			name: "server header, other prefix, lang",
			in:   `<s:stream from='gcm.googleapis.com' id='11B9885B7CAD20E3' version='1.0' xml:lang='en' xmlns:s='http://etherx.jabber.org/streams' xmlns='jabber:client'>`,
			want: StreamHeader{From: "gcm.googleapis.com", ID: "11B9885B7CAD20E3", Version: "1.0", Lang: "en"},
		},
		{
			name: "escaped to",
			in:   `<stream:stream to="FCM XMPP &amp; co" xmlns="jabber:client" xmlns:stream="http://etherx.jabber.org/streams">`,
			want: StreamHeader{To: "FCM XMPP & co"},
		},
		{"wrong stream namespace", `<stream:stream xmlns="jabber:client" xmlns:stream="urn:wrong">`, StreamHeader{}, "invalid-namespace"},
		{"wrong content namespace", `<stream:stream xmlns="jabber:server" xmlns:stream="http://etherx.jabber.org/streams">`, StreamHeader{}, "invalid-namespace"},
		{"no content namespace", `<stream:stream xmlns:stream="http://etherx.jabber.org/streams">`, StreamHeader{}, "invalid-namespace"},
		{"undeclared prefix", `<stream:stream xmlns="jabber:client">`, StreamHeader{}, "bad-namespace-prefix"},
		{"unprefixed", `<stream xmlns="http://etherx.jabber.org/streams">`, StreamHeader{}, "invalid-namespace"},
		{"not stream", `<stream:foo xmlns="jabber:client" xmlns:stream="http://etherx.jabber.org/streams">`, StreamHeader{}, "bad-format"},
		{"self-closing", `<stream:stream xmlns="jabber:client" xmlns:stream="http://etherx.jabber.org/streams"/>`, StreamHeader{}, "bad-format"},
		{"malformed", `<stream:stream to=x>`, StreamHeader{}, "not-well-formed"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var tk xmltok.Tokenizer
			got, err := ParseStreamHeader(&tk, []byte(tt.in))
			cond := ""
			var se *StreamError
			var xe *xmltok.Error
			switch {
			case errors.As(err, &se):
				cond = se.Condition
			case errors.As(err, &xe):
				cond = xe.Condition
			}
			if cond != tt.cond {
				t.Fatalf("condition %q (%v), want %q", cond, err, tt.cond)
			}
			if err == nil && got != tt.want {
				t.Errorf("header %+v, want %+v", got, tt.want)
			}
		})
	}
}
