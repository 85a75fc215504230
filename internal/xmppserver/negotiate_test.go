package xmppserver

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/ccsd/ccsd/internal/xmltok"
	"github.com/ccsd/ccsd/internal/xmpp"
)

// Transcript tests drive the negotiator with real client bytes (framed by
// xmltok, parsed by xmpp) and compare the server's bytes with what the xmpp
// writers produce. Randomness is fixed: every random byte is 0xAB.

const (
	hdr        = `<?xml version='1.0'?><stream:stream to="gcm.googleapis.com" version="1.0" xmlns="jabber:client" xmlns:stream="http://etherx.jabber.org/streams">`
	hdrOther   = `<stream:stream to='FCM XMPP Client Connection Server' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>`
	streamID   = "ABABABABABABABAB"
	suffix     = "ABABABAB"
	testKey    = "AIzaKey"
	testSndr   = "123456789"
	testDomain = "gcm.googleapis.com"
)

func fixedRandom(b []byte) {
	for i := range b {
		b[i] = 0xAB
	}
}

func plainAuth(mech, authzid, authcid, pw string) string {
	b64 := base64.StdEncoding.EncodeToString([]byte(authzid + "\x00" + authcid + "\x00" + pw))
	return `<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="` + mech + `">` + b64 + `</auth>`
}

// step is one client turn of a transcript.
type step struct {
	client string // bytes the client sends
	auth   error  // what Backend.Authenticate answers if the turn asks
	want   []byte // the server's bytes for the whole turn
	acts   []action
	sender string // when set: the sender the negotiator must have claimed
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func saslOpen() []byte {
	return cat(xmpp.AppendStreamHeader(nil, testDomain, streamID), xmpp.AppendFeaturesSASL(nil, "PLAIN"))
}

func bindOpen() []byte {
	return cat(xmpp.AppendStreamHeader(nil, testDomain, streamID), xmpp.AppendFeaturesBind(nil))
}

func streamErr(cond, text string) []byte {
	return xmpp.AppendStreamError(nil, &xmpp.StreamError{Condition: cond, Text: text})
}

// turnReader hands the reader exactly the bytes of the current turn; a
// read beyond them is an error (a turn must hold complete frames).
type turnReader struct{ b []byte }

func (r *turnReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, errors.New("turn exhausted: incomplete frame")
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

// runTranscript plays steps through a negotiator.
func runTranscript(t *testing.T, steps []step) *negotiator {
	t.Helper()
	var n negotiator
	n.init(testDomain, fixedRandom)
	src := &turnReader{}
	rd := xmltok.NewReader(src, xmltok.Limits{})
	var tk xmltok.Tokenizer
	var st xmpp.Stanza
	for i, s := range steps {
		src.b = []byte(s.client)
		var got []byte
		var acts []action
		f, err := rd.Next()
		for ok := true; ok; f, ok, err = rd.TryNext() {
			if err != nil {
				t.Fatalf("step %d: reading %q: %v", i, s.client, err)
			}
			var a action
			switch f.Kind {
			case xmltok.StreamStart:
				h, perr := xmpp.ParseStreamHeader(&tk, f.Raw)
				got, a = n.header(got, h, perr)
			case xmltok.Stanza:
				if err := st.Parse(&tk, f.Raw); err != nil {
					t.Fatalf("step %d: parsing %q: %v", i, f.Raw, err)
				}
				got, a = n.stanza(got, &st)
			case xmltok.StreamEnd:
				got, a = n.streamEnd(got)
			default:
				continue
			}
			acts = append(acts, a)
			if f.Kind == xmltok.StreamEnd {
				break
			}
			if a == actAuth {
				if s.sender != "" && n.sender != s.sender {
					t.Errorf("step %d: claimed sender %q, want %q", i, n.sender, s.sender)
				}
				got, a = n.authDone(got, s.auth)
				acts = append(acts, a)
			}
			if a == actRestart {
				rd.Restart()
			}
		}
		if err != nil {
			t.Fatalf("step %d: reading %q: %v", i, s.client, err)
		}
		if len(src.b) != 0 {
			t.Fatalf("step %d: %d bytes not consumed", i, len(src.b))
		}
		if !bytes.Equal(got, s.want) {
			t.Errorf("step %d: client %q\n got: %s\nwant: %s", i, s.client, got, s.want)
		}
		if !equalActs(acts, s.acts) {
			t.Errorf("step %d: actions %v, want %v", i, acts, s.acts)
		}
	}
	return &n
}

func equalActs(a, b []action) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestNegotiateClientStyles(t *testing.T) {
	ping := `<iq from='x' to='gcm.googleapis.com' id='c2s1' type='get'><ping xmlns='urn:xmpp:ping'/></iq>`
	tests := []struct {
		name             string
		header           string
		authzid, authcid string
		bind             string
		wantJID          string
		extra            []step
	}{
		{
			name:    "go-xmpp: bare authcid, no resource, no session, presence",
			header:  hdr,
			authcid: testSndr,
			bind:    `<iq type='set' id='bind_1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'></bind></iq>`,
			wantJID: testSndr + "@gcm.googleapis.com/" + streamID,
			extra: []step{
				{client: `<presence xml:lang='en'><show></show><status></status></presence>`, acts: []action{actNone}},
				{client: ping, want: xmpp.AppendIQResult(nil, []byte("c2s1"), testDomain, testSndr+"@gcm.googleapis.com/"+streamID), acts: []action{actNone}},
			},
		},
		{
			name:    "smack 4: qualified authcid, resource, session",
			header:  hdrOther,
			authcid: testSndr + "@gcm.googleapis.com",
			bind:    `<iq id="b1" type="set"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"><resource>Smack</resource></bind></iq>`,
			wantJID: testSndr + "@gcm.googleapis.com/Smack" + suffix,
			extra: []step{
				{client: `<iq id="s1" type="set"><session xmlns="urn:ietf:params:xml:ns:xmpp-session"/></iq>`,
					want: xmpp.AppendIQResult(nil, []byte("s1"), "", ""), acts: []action{actNone}},
			},
		},
		{
			name:    "smack 3: authzid equal to authcid",
			header:  hdr,
			authzid: testSndr + "@gcm.googleapis.com", authcid: testSndr + "@gcm.googleapis.com",
			bind:    `<iq type="set" id="x"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"><resource>TEST</resource></bind></iq>`,
			wantJID: testSndr + "@gcm.googleapis.com/TEST" + suffix,
		},
		{
			name:    "erlang: bare authzid and authcid",
			header:  hdr,
			authzid: testSndr, authcid: testSndr,
			bind:    `<iq type="set" id="x"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"/></iq>`,
			wantJID: testSndr + "@gcm.googleapis.com/" + streamID,
		},
		{
			name:    "fcmstream: authcid on another google domain, qualified authzid",
			header:  hdr,
			authzid: testSndr + "@fcm.googleapis.com", authcid: testSndr + "@fcm.googleapis.com",
			bind:    `<iq to="fcm-xmpp.googleapis.com" type="set" id="b"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"><resource>TEST</resource></bind></iq>`,
			wantJID: testSndr + "@gcm.googleapis.com/TEST" + suffix,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bindID := []byte(between(tt.bind, "id=", " "))
			steps := []step{
				{client: tt.header, want: saslOpen(), acts: []action{actNone}},
				{client: plainAuth("PLAIN", tt.authzid, tt.authcid, testKey), sender: testSndr,
					want: xmpp.AppendSASLSuccess(nil), acts: []action{actAuth, actRestart}},
				{client: tt.header, want: bindOpen(), acts: []action{actNone}},
				{client: tt.bind, want: xmpp.AppendBindResult(nil, bindID, tt.wantJID), acts: []action{actBound}},
			}
			n := runTranscript(t, append(steps, tt.extra...))
			if n.jid != tt.wantJID || n.phase != phaseReady {
				t.Errorf("jid %q phase %d, want %q ready", n.jid, n.phase, tt.wantJID)
			}
		})
	}
}

// between returns the quoted attribute value after key in s.
func between(s, key, _ string) string {
	i := strings.Index(s, key)
	if i < 0 {
		return ""
	}
	s = s[i+len(key):]
	q := s[0]
	s = s[1:]
	return s[:strings.IndexByte(s, q)]
}

func TestNegotiateFailures(t *testing.T) {
	open := step{client: hdr, want: saslOpen(), acts: []action{actNone}}
	failure := func(cond string) []byte {
		return xmpp.AppendStreamEnd(xmpp.AppendSASLFailure(nil, cond))
	}
	tests := []struct {
		name   string
		steps  []step
		reason string
	}{
		{"wrong password", []step{open, {client: plainAuth("PLAIN", "", testSndr, "bad"), auth: ErrUnauthorized,
			want: failure("not-authorized"), acts: []action{actAuth, actClose}}}, "auth-failed"},
		{"backend down", []step{open, {client: plainAuth("PLAIN", "", testSndr, testKey), auth: errors.New("kv down"),
			want: failure("temporary-auth-failure"), acts: []action{actAuth, actClose}}}, "auth-error"},
		{"authzid of another sender", []step{open, {client: plainAuth("PLAIN", "999", testSndr, testKey),
			want: failure("not-authorized"), acts: []action{actClose}}}, "auth-failed"},
		{"empty authcid", []step{open, {client: plainAuth("PLAIN", "", "@gcm.googleapis.com", testKey),
			want: failure("not-authorized"), acts: []action{actClose}}}, "auth-failed"},
		{"other mechanism", []step{open, {client: `<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="X-OAUTH2">abc</auth>`,
			want: failure("invalid-mechanism"), acts: []action{actClose}}}, "invalid-mechanism"},
		{"message before auth", []step{open, {client: `<message><gcm xmlns="google:mobile:data">{}</gcm></message>`,
			want: streamErr("not-authorized", "authenticate first"), acts: []action{actClose}}}, "not-authorized"},
		{"iq before auth", []step{open, {client: `<iq type="get" id="1"><ping xmlns="urn:xmpp:ping"/></iq>`,
			want: streamErr("not-authorized", "authenticate first"), acts: []action{actClose}}}, "not-authorized"},
		{"message before bind", []step{open,
			{client: plainAuth("PLAIN", "", testSndr, testKey), want: xmpp.AppendSASLSuccess(nil), acts: []action{actAuth, actRestart}},
			{client: hdr, want: bindOpen(), acts: []action{actNone}},
			{client: `<message><gcm xmlns="google:mobile:data">{}</gcm></message>`,
				want: streamErr("not-authorized", "resource binding required"), acts: []action{actClose}}}, "not-authorized"},
		{"client ends stream", []step{open, {client: `</stream:stream>`, want: xmpp.AppendStreamEnd(nil), acts: []action{actClose}}}, "client-closed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := runTranscript(t, tt.steps)
			if n.phase != phaseClosed || n.reason != tt.reason {
				t.Errorf("phase %d reason %q, want closed %q", n.phase, n.reason, tt.reason)
			}
		})
	}
}

func TestNegotiateIQsWhenBound(t *testing.T) {
	jid := testSndr + "@gcm.googleapis.com/" + streamID
	steps := []step{
		{client: hdr, want: saslOpen(), acts: []action{actNone}},
		{client: plainAuth("PLAIN", "", testSndr, testKey), want: xmpp.AppendSASLSuccess(nil), acts: []action{actAuth, actRestart}},
		{client: hdr, want: bindOpen(), acts: []action{actNone}},
		{client: `<iq type="set" id="b"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"/></iq>`,
			want: xmpp.AppendBindResult(nil, []byte("b"), jid), acts: []action{actBound}},
		{client: `<iq type="get" id="r1"><query xmlns="jabber:iq:roster"/></iq>`,
			want: xmpp.AppendIQError(nil, []byte("r1"), testDomain, jid, errIQServiceUnavailable), acts: []action{actNone}},
		{client: `<iq type="set" id="b2"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"/></iq>`,
			want: xmpp.AppendIQError(nil, []byte("b2"), testDomain, jid, errIQNotAllowed), acts: []action{actNone}},
		{client: `<iq type="result" id="srv1"/>`, acts: []action{actNone}},
		{client: `<foo xmlns="jabber:client"/>`, want: streamErr("unsupported-stanza-type", ""), acts: []action{actClose}},
	}
	runTranscript(t, steps)
}

func TestPlainSender(t *testing.T) {
	tests := []struct {
		authzid, authcid string
		want             string
		ok               bool
	}{
		{"", "42", "42", true},
		{"", "42@gcm.googleapis.com", "42", true},
		{"42", "42", "42", true},
		{"42@gcm.googleapis.com", "42@gcm.googleapis.com", "42", true},
		{"42@projects.gcm.android.com", "42@gcm.googleapis.com", "42", true},
		{"43", "42", "", false},
		{"", "", "", false},
		{"", "@x", "", false},
		{"", "4 2", "", false},
		{"", "42/res", "", false},
		{"", "<x>", "", false},
	}
	for _, tt := range tests {
		got, ok := plainSender([]byte(tt.authzid), []byte(tt.authcid))
		if got != tt.want || ok != tt.ok {
			t.Errorf("plainSender(%q, %q) = %q, %v; want %q, %v", tt.authzid, tt.authcid, got, ok, tt.want, tt.ok)
		}
	}
}
