package xmpp

import (
	"bytes"
	"io"
	"testing"

	"github.com/ccsd/ccsd/internal/xmltok"
)

const testJSON = `{"message_type":"ack","from":"REG<&>","message_id":"m-1"}`

func TestWriters(t *testing.T) {
	e400 := &StanzaError{Type: "modify", Condition: "bad-request", Text: "InvalidJson: JSON_PARSING_ERROR : Missing Required Field: message_id\n", Code: 400}
	for _, tt := range []struct {
		name string
		got  []byte
		want string
	}{
		{"server stream header", AppendStreamHeader(nil, DomainGCM, "11B9885B7CAD20E3"),
			`<?xml version='1.0'?><stream:stream from="gcm.googleapis.com" id="11B9885B7CAD20E3" version="1.0" xmlns:stream="http://etherx.jabber.org/streams" xmlns="jabber:client">`},
		{"sasl features", AppendFeaturesSASL(nil, "PLAIN"),
			`<stream:features><mechanisms xmlns="urn:ietf:params:xml:ns:xmpp-sasl"><mechanism>PLAIN</mechanism></mechanisms></stream:features>`},
		{"bind features", AppendFeaturesBind(nil),
			`<stream:features><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"/><session xmlns="urn:ietf:params:xml:ns:xmpp-session"/></stream:features>`},
		{"sasl success", AppendSASLSuccess(nil), `<success xmlns="urn:ietf:params:xml:ns:xmpp-sasl"/>`},
		{"sasl failure", AppendSASLFailure(nil, "not-authorized"), `<failure xmlns="urn:ietf:params:xml:ns:xmpp-sasl"><not-authorized/></failure>`},
		{"bind result", AppendBindResult(nil, []byte("b1"), "123@gcm.googleapis.com/r1"),
			`<iq type="result" id="b1"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"><jid>123@gcm.googleapis.com/r1</jid></bind></iq>`},
		{"iq result for a ping", AppendIQResult(nil, []byte("c2s1"), DomainGCM, "123@gcm.googleapis.com/r1"),
			`<iq type="result" id="c2s1" from="gcm.googleapis.com" to="123@gcm.googleapis.com/r1"/>`},
		{"iq result, session", AppendIQResult(nil, []byte(`a"b`), "", ""), `<iq type="result" id="a&quot;b"/>`},
		{"iq error", AppendIQError(nil, []byte("r1"), "", "", &StanzaError{Type: "cancel", Condition: "service-unavailable"}),
			`<iq type="error" id="r1"><error type="cancel"><service-unavailable xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error></iq>`},
		{"stream error", AppendStreamError(nil, &StreamError{Condition: "invalid-xml"}),
			`<stream:error><invalid-xml xmlns="urn:ietf:params:xml:ns:xmpp-streams"/></stream:error></stream:stream>`},
		{"stream error with text", AppendStreamError(nil, &StreamError{Condition: "policy-violation", Text: "stanza > 65536 bytes"}),
			`<stream:error><policy-violation xmlns="urn:ietf:params:xml:ns:xmpp-streams"/><text xmlns="urn:ietf:params:xml:ns:xmpp-streams">stanza &gt; 65536 bytes</text></stream:error></stream:stream>`},
		{"stream end", AppendStreamEnd(nil), `</stream:stream>`},
		{"ack envelope", AppendGCM(nil, EnvelopeAnswer, "ignored", []byte(testJSON)),
			`<message><data:gcm xmlns:data="google:mobile:data">{"message_type":"ack","from":"REG&lt;&amp;&gt;","message_id":"m-1"}</data:gcm></message>`},
		{"upstream envelope", AppendGCM(nil, EnvelopeNormal, "123@gcm.googleapis.com", []byte(`{"a":"b"}`)),
			`<message to="123@gcm.googleapis.com" from="devices@gcm.googleapis.com" type="normal"><gcm xmlns="google:mobile:data">{"a":"b"}</gcm></message>`},
		{"message stanza error", AppendMessageError(nil, []byte("3"), "123456789@gcm.googleapis.com/ABC", []byte(`<gcm xmlns="google:mobile:data">{"random": "text"}</gcm>`), e400),
			`<message id="3" type="error" to="123456789@gcm.googleapis.com/ABC"><gcm xmlns="google:mobile:data">{"random": "text"}</gcm><error code="400" type="modify"><bad-request xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/><text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas">InvalidJson: JSON_PARSING_ERROR : Missing Required Field: message_id
</text></error></message>`},
		{"message stanza error without id", AppendMessageError(nil, nil, "1@gcm.googleapis.com/A", nil, e400),
			`<message type="error" to="1@gcm.googleapis.com/A"><error code="400" type="modify"><bad-request xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/><text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas">InvalidJson: JSON_PARSING_ERROR : Missing Required Field: message_id
</text></error></message>`},
		{"client stream header", AppendClientStreamHeader(nil, DomainGCM),
			`<?xml version='1.0'?><stream:stream to="gcm.googleapis.com" version="1.0" xmlns="jabber:client" xmlns:stream="http://etherx.jabber.org/streams">`},
		{"auth plain", AppendAuthPlain(nil, "", "123456", "key"),
			`<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="PLAIN">ADEyMzQ1NgBrZXk=</auth>`},
		{"bind request", AppendBindRequest(nil, "b1", ""), `<iq type="set" id="b1"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"/></iq>`},
		{"bind request with resource", AppendBindRequest(nil, "b1", "r&d"),
			`<iq type="set" id="b1"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"><resource>r&amp;d</resource></bind></iq>`},
		{"session request", AppendSessionRequest(nil, "s1"), `<iq type="set" id="s1"><session xmlns="urn:ietf:params:xml:ns:xmpp-session"/></iq>`},
		{"ping", AppendPing(nil, "c2s1", DomainGCM), `<iq type="get" id="c2s1" to="gcm.googleapis.com"><ping xmlns="urn:xmpp:ping"/></iq>`},
		{"client gcm", AppendClientGCM(nil, []byte(`{"to":"REG","message_id":"m-1"}`)),
			`<message id=""><gcm xmlns="google:mobile:data">{"to":"REG","message_id":"m-1"}</gcm></message>`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if string(tt.got) != tt.want {
				t.Errorf("\n got %s\nwant %s", tt.got, tt.want)
			}
		})
	}
}

// TestWritersRoundTrip frames what the writers produce with xmltok and
// parses it back with Stanza.Parse.
func TestWritersRoundTrip(t *testing.T) {
	var w []byte
	w = AppendStreamHeader(w, DomainGCM, "ID1")
	w = AppendFeaturesSASL(w, "X-OAUTH2", "PLAIN")
	w = AppendGCM(w, EnvelopeAnswer, "", []byte(testJSON))
	w = AppendGCM(w, EnvelopeNormal, "1@gcm.googleapis.com", []byte(testJSON))
	w = AppendBindResult(w, []byte("b"), "1@gcm.googleapis.com/r")
	w = AppendMessageError(w, []byte("7"), "1@gcm.googleapis.com/r", []byte(`<gcm xmlns="google:mobile:data">{}</gcm>`), &StanzaError{Type: "modify", Condition: "bad-request", Text: "x<y", Code: 400})
	w = AppendStreamError(w, &StreamError{Condition: "invalid-xml", Text: "a&b"})

	r := xmltok.NewReader(bytes.NewReader(w), xmltok.Limits{})
	var tk xmltok.Tokenizer
	var s Stanza
	var got []string
	for {
		f, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("frame after %q: %v", got, err)
		}
		switch f.Kind {
		case xmltok.StreamStart:
			h, err := ParseStreamHeader(&tk, f.Raw)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, "header "+h.ID)
		case xmltok.Stanza:
			if err := s.Parse(&tk, f.Raw); err != nil {
				t.Fatalf("parse %s: %v", f.Raw, err)
			}
			got = append(got, view(&s))
		case xmltok.StreamEnd:
			got = append(got, "end")
		}
	}
	want := []string{
		"header ID1",
		`kind=8 features{http://etherx.jabber.org/streams} mechanism="X-OAUTH2" mechanism="PLAIN"`,
		`kind=1 message{jabber:client} gcm="{\"message_type\":\"ack\",\"from\":\"REG<&>\",\"message_id\":\"m-1\"}" raw="<data:gcm xmlns:data=\"google:mobile:data\">{\"message_type\":\"ack\",\"from\":\"REG&lt;&amp;&gt;\",\"message_id\":\"m-1\"}</data:gcm>"`,
		`kind=1 message{jabber:client} type="normal" to="1@gcm.googleapis.com" from="devices@gcm.googleapis.com" gcm="{\"message_type\":\"ack\",\"from\":\"REG<&>\",\"message_id\":\"m-1\"}" raw="<gcm xmlns=\"google:mobile:data\">{\"message_type\":\"ack\",\"from\":\"REG&lt;&amp;&gt;\",\"message_id\":\"m-1\"}</gcm>"`,
		`kind=2 iq{jabber:client} id="b" type="result" child="bind" childns="urn:ietf:params:xml:ns:xmpp-bind" jid="1@gcm.googleapis.com/r"`,
		`kind=1 message{jabber:client} id="7" type="error" to="1@gcm.googleapis.com/r" gcm="{}" raw="<gcm xmlns=\"google:mobile:data\">{}</gcm>"`,
		`kind=9 error{http://etherx.jabber.org/streams} child="invalid-xml" childns="urn:ietf:params:xml:ns:xmpp-streams" text="a&b"`,
		"end",
	}
	if len(got) != len(want) {
		t.Fatalf("got %d frames %q, want %d", len(got), got, len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("frame %d\n got %s\nwant %s", i, got[i], want[i])
		}
	}
}
