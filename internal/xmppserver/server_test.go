package xmppserver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ccsd/ccsd/internal/gcm"
	"github.com/ccsd/ccsd/internal/router"
	"github.com/ccsd/ccsd/internal/xmpp"
	"github.com/ccsd/ccsd/internal/xmppserver"
)

func TestNegotiationOverTLS(t *testing.T) {
	e := newEnv(t, nil)
	tests := []struct {
		name             string
		authzid, authcid string
		bind             string
		session          bool
		wantResource     string // prefix of the bound resource
	}{
		{"go-xmpp", "", sender, `<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'></bind></iq>`, false, ""},
		{"smack", "", sender + "@gcm.googleapis.com", `<iq id="b" type="set"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"><resource>Smack</resource></bind></iq>`, true, "Smack"},
		{"authzid", sender + "@gcm.googleapis.com", sender + "@gcm.googleapis.com", `<iq id="b" type="set"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"><resource>x</resource></bind></iq>`, true, "x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.dial(t)
			r.open()
			r.send(auth(tt.authzid, tt.authcid, apiKey))
			if st := r.stanza(); st.Kind != xmpp.KindSuccess {
				t.Fatalf("auth: kind %d", st.Kind)
			}
			r.rd.Restart()
			r.send(hdr)
			r.header()
			r.stanza()
			r.send(tt.bind)
			st := r.stanza()
			jid := string(st.BindJID)
			prefix := sender + "@gcm.googleapis.com/" + tt.wantResource
			if !strings.HasPrefix(jid, prefix) || len(jid) == len(prefix) {
				t.Fatalf("jid %q, want %q plus a suffix", jid, prefix)
			}
			if tt.session {
				r.send(`<iq type="set" id="s"><session xmlns="urn:ietf:params:xml:ns:xmpp-session"/></iq>`)
				if st := r.stanza(); string(st.Type) != "result" || string(st.ID) != "s" {
					t.Fatalf("session: %s %s", st.Type, st.ID)
				}
			}
			r.send(`<presence/> <iq type="get" id="p1"><ping xmlns="urn:xmpp:ping"/></iq>`)
			if st := r.stanza(); string(st.Type) != "result" || string(st.ID) != "p1" {
				t.Fatalf("ping: %s %s", st.Type, st.ID)
			}
			r.send(`<iq type="get" id="r1"><query xmlns="jabber:iq:roster"/></iq>`)
			if st := r.stanza(); string(st.Type) != "error" || string(st.ID) != "r1" {
				t.Fatalf("roster: %s %s", st.Type, st.ID)
			}
			r.send("</stream:stream>")
			r.expectEnd()
		})
	}
}

func TestDownstreamAnswers(t *testing.T) {
	e := newEnv(t, func(c *xmppserver.Config) {})
	e.backend.Answer = func(_ string, in *gcm.Inbound) router.Result {
		switch string(in.To) {
		case "bad-reg":
			return router.Result{Code: gcm.BadRegistration, Description: "Invalid token on 'to' field: bad-reg"}
		case "gone":
			return router.Result{Code: gcm.DeviceUnregistered, Description: "unregistered"}
		case "alias":
			return router.Result{Canonical: "canon"}
		}
		return router.Result{}
	}
	r := e.dial(t)
	r.login()
	// Sent in one write: answers come back in order.
	r.send(strings.Join([]string{
		string(xmpp.AppendClientGCM(nil, []byte(`{"to":"reg-1","message_id":"m1"}`))),
		string(xmpp.AppendClientGCM(nil, []byte(`{"to":"bad-reg","message_id":"m2"}`))),
		string(xmpp.AppendClientGCM(nil, []byte(`{"to":"reg-1","message_id":"m3","time_to_live":-1}`))),
		string(xmpp.AppendClientGCM(nil, []byte(`{"to":"gone","message_id":"m4"}`))),
		string(xmpp.AppendClientGCM(nil, []byte(`{"to":"alias","message_id":"m5"}`))),
		`<message id="se"><gcm xmlns="google:mobile:data">{"to":"x"}</gcm></message>`,
	}, ""))
	want := []string{"ack m1 reg-1 ", "nack m2 bad-reg BAD_REGISTRATION", "nack m3 reg-1 INVALID_JSON",
		"nack m4 gone DEVICE_UNREGISTERED", "ack m5 alias  canon"}
	// The stanza error is not in the window, so it may come before the
	// answers; the answers come in order.
	var got []string
	stanzaErrors := 0
	for range len(want) + 1 {
		st := r.stanza()
		if string(st.Type) == "error" {
			stanzaErrors++
			if string(st.ID) != "se" || !st.HasGCM || string(st.GCM) != `{"to":"x"}` || string(st.To) != r.jid {
				t.Errorf("stanza error: id %q gcm %q to %q", st.ID, st.GCM, st.To)
			}
			continue
		}
		var a map[string]any
		if err := json.Unmarshal(st.GCM, &a); err != nil {
			t.Fatal(err)
		}
		s := fmt.Sprintf("%v %v %v %v", a["message_type"], a["message_id"], a["from"], str(a["error"]))
		if c := str(a["registration_id"]); c != "" {
			s += " " + c
		}
		got = append(got, s)
	}
	if stanzaErrors != 1 || strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("answers %q (%d stanza errors), want %q", got, stanzaErrors, want)
	}
}

func str(v any) string {
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

func TestBadInput(t *testing.T) {
	e := newEnv(t, nil)
	big := repeat("a", 1<<20)
	deep := repeat("<a>", 10000) + repeat("</a>", 10000)
	bigData := `{"to":"r","message_id":"big","data":{"k":"` + repeat("x", 4100) + `"}}`
	tests := []struct {
		name       string
		run        func(t *testing.T, r *rawClient) // does the bad thing and checks the answer
		wantReason string                           // close reason; "" when the connection stays up
	}{
		{"wrong password", func(t *testing.T, r *rawClient) {
			r.open()
			r.send(auth("", sender, "wrong"))
			saslFailure(t, r, "not-authorized")
		}, "auth-failed"},
		{"unknown sender", func(t *testing.T, r *rawClient) {
			r.open()
			r.send(auth("", "987", apiKey))
			saslFailure(t, r, "not-authorized")
		}, "auth-failed"},
		{"mechanism other than PLAIN", func(t *testing.T, r *rawClient) {
			r.open()
			r.send(`<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="X-OAUTH2">dG9rZW4=</auth>`)
			saslFailure(t, r, "invalid-mechanism")
		}, "invalid-mechanism"},
		{"stanza before auth", func(t *testing.T, r *rawClient) {
			r.open()
			r.sendGCM(`{"to":"r","message_id":"m"}`)
			wantStreamError(t, r, "not-authorized")
		}, "not-authorized"},
		{"malformed xml", func(t *testing.T, r *rawClient) {
			r.login()
			r.send(`<message><gcm xmlns="google:mobile:data">{}</gcm></mesage>`)
			wantStreamError(t, r, "not-well-formed")
		}, "not-well-formed"},
		{"dtd", func(t *testing.T, r *rawClient) {
			r.login()
			r.send(`<!DOCTYPE message [<!ENTITY x "boom">]><message>&x;</message>`)
			wantStreamError(t, r, "restricted-xml")
		}, "restricted-xml"},
		{"entity reference", func(t *testing.T, r *rawClient) {
			r.login()
			r.send(`<message><gcm xmlns="google:mobile:data">&x;</gcm></message>`)
			wantStreamError(t, r, "restricted-xml")
		}, "restricted-xml"},
		{"1 MB stanza", func(t *testing.T, r *rawClient) {
			r.login()
			go r.c.Write([]byte(`<message><gcm xmlns="google:mobile:data">` + big + `</gcm></message>`))
			wantStreamError(t, r, "policy-violation")
		}, "policy-violation"},
		{"nesting 10000 deep", func(t *testing.T, r *rawClient) {
			r.login()
			go r.c.Write([]byte(deep))
			wantStreamError(t, r, "policy-violation")
		}, "policy-violation"},
		{"invalid utf-8", func(t *testing.T, r *rawClient) {
			r.login()
			r.send("<message><gcm xmlns=\"google:mobile:data\">{\"to\":\"\xff\xfe\",\"message_id\":\"u\"}</gcm></message>")
			wantStreamError(t, r, "not-well-formed")
		}, "not-well-formed"},
		{"unknown top-level element", func(t *testing.T, r *rawClient) {
			r.login()
			r.send(`<enable xmlns="urn:xmpp:sm:3"/>`)
			wantStreamError(t, r, "unsupported-stanza-type")
		}, "unsupported-stanza-type"},
		{"wrong stream namespace", func(t *testing.T, r *rawClient) {
			r.send(`<stream:stream to="gcm.googleapis.com" version="1.0" xmlns="jabber:server" xmlns:stream="http://etherx.jabber.org/streams">`)
			r.header()
			wantStreamError(t, r, "invalid-namespace")
		}, "invalid-namespace"},
		{"json not an object", func(t *testing.T, r *rawClient) {
			r.login()
			r.send(`<message id="j"><gcm xmlns="google:mobile:data">[1,2]</gcm></message>`)
			wantStanzaError(t, r, "j")
		}, ""},
		{"message without gcm child", func(t *testing.T, r *rawClient) {
			r.login()
			r.send(`<message id="b"><body>hi</body></message>`)
			wantStanzaError(t, r, "b")
		}, ""},
		{"missing message_id", func(t *testing.T, r *rawClient) {
			r.login()
			r.send(`<message id="3"><gcm xmlns="google:mobile:data">{"to":"r","data":{"a":"b"}}</gcm></message>`)
			wantStanzaError(t, r, "3")
		}, ""},
		{"data over 4096 bytes", func(t *testing.T, r *rawClient) {
			r.login()
			r.sendGCM(bigData)
			wantNack(t, r, "big", "INVALID_JSON")
		}, ""},
		{"ttl out of range", func(t *testing.T, r *rawClient) {
			r.login()
			r.sendGCM(`{"to":"r","message_id":"ttl","time_to_live":2419201}`)
			wantNack(t, r, "ttl", "INVALID_JSON")
		}, ""},
		{"reserved data key", func(t *testing.T, r *rawClient) {
			r.login()
			r.sendGCM(`{"to":"r","message_id":"rk","data":{"google.x":"v"}}`)
			wantNack(t, r, "rk", "INVALID_JSON")
		}, ""},
		{"ack for unknown message_id", func(t *testing.T, r *rawClient) {
			r.login()
			r.sendGCM(`{"to":"dev","message_id":"nope","message_type":"ack"}`)
			wantNack(t, r, "nope", "BAD_ACK")
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.closed(tt.wantReason)
			r := e.dial(t)
			tt.run(t, r)
			if tt.wantReason == "" {
				// Still up: it answers a ping.
				r.send(`<iq type="get" id="alive"><ping xmlns="urn:xmpp:ping"/></iq>`)
				if st := r.stanza(); string(st.ID) != "alive" {
					t.Fatalf("connection not usable after bad input: %s", st.Local)
				}
			}
			e.works(t)
			if tt.wantReason != "" {
				waitFor(t, func() bool { return e.closed(tt.wantReason) == before+1 },
					"close reason "+tt.wantReason)
			}
		})
	}
}

// waitFor waits until cond holds, yielding between checks; it fails after
// a generous bound (a hang, not a timing assertion).
func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		runtime.Gosched()
		time.Sleep(time.Millisecond)
	}
}

func saslFailure(t *testing.T, r *rawClient, cond string) {
	t.Helper()
	st := r.stanza()
	if st.Kind != xmpp.KindFailure || string(st.ChildLocal) != cond {
		t.Fatalf("got <%s> %q, want SASL failure %s", st.Local, st.ChildLocal, cond)
	}
	r.expectEnd()
}

func wantStreamError(t *testing.T, r *rawClient, cond string) {
	t.Helper()
	if got := r.streamError(); got != cond {
		t.Fatalf("stream error %q, want %q", got, cond)
	}
}

func wantStanzaError(t *testing.T, r *rawClient, id string) {
	t.Helper()
	st := r.stanza()
	if st.Kind != xmpp.KindMessage || string(st.Type) != "error" || string(st.ID) != id {
		t.Fatalf("got <%s type=%q id=%q>, want a stanza error for %q", st.Local, st.Type, st.ID, id)
	}
}

func wantNack(t *testing.T, r *rawClient, id, code string) {
	t.Helper()
	a := r.answer()
	if a["message_type"] != "nack" || a["message_id"] != id || a["error"] != code {
		t.Fatalf("got %v, want NACK %s for %s", a, code, id)
	}
}

func TestHandshakeTimeout(t *testing.T) {
	e := newEnv(t, func(c *xmppserver.Config) { c.HandshakeTimeout = 100 * time.Millisecond })
	// A TCP client that never starts TLS: the server closes it.
	raw, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.SetReadDeadline(time.Now().Add(20 * time.Second))
	if n, err := raw.Read(make([]byte, 1)); err == nil {
		t.Fatalf("read %d bytes, want the connection closed", n)
	}
	// A client that finishes TLS but stalls in negotiation gets a stream
	// error.
	r := e.dial(t)
	r.send(hdr)
	r.header()
	r.stanza() // features
	wantStreamError(t, r, "connection-timeout")
	waitFor(t, func() bool { return e.closed("handshake-timeout") == 2 }, "two handshake timeouts")
}

func TestIdleTimeout(t *testing.T) {
	e := newEnv(t, func(c *xmppserver.Config) { c.IdleTimeout = 100 * time.Millisecond })
	r := e.dial(t)
	r.login()
	wantStreamError(t, r, "connection-timeout")
}

func TestUpstream(t *testing.T) {
	e := newEnv(t, func(c *xmppserver.Config) { c.MaxPending = 2 })
	r := e.dial(t)
	r.login()
	f := e.backend.NextFeed(t)
	for i, id := range []string{"u1", "dr2:m7", "u3"} {
		f.Items <- xmppserver.Upstream{ID: id, JSON: []byte(fmt.Sprintf(`{"from":"dev%d","message_id":%q,"category":"com.x"}`, i, id))}
	}
	// Two fit the window; the third waits for an ACK.
	for _, want := range []string{"u1", "dr2:m7"} {
		st := r.stanza()
		if string(st.Type) != "normal" || string(st.To) != r.jid {
			t.Fatalf("upstream envelope type %q to %q", st.Type, st.To)
		}
		if !strings.Contains(string(st.GCM), `"`+want+`"`) {
			t.Fatalf("upstream %s, want %s", st.GCM, want)
		}
	}
	r.sendGCM(`{"to":"dev0","message_id":"u1","message_type":"ack"}`)
	if got := <-f.Acked; got != "u1" {
		t.Fatalf("acked %q", got)
	}
	if st := r.stanza(); !strings.Contains(string(st.GCM), `"u3"`) {
		t.Fatalf("third upstream: %s", st.GCM)
	}
	// A receipt ACKed with the stripped id, then an unknown and a repeated ACK.
	r.sendGCM(`{"to":"gcm.googleapis.com","message_id":"m7","message_type":"ack"}`)
	if got := <-f.Acked; got != "dr2:m7" {
		t.Fatalf("acked %q, want dr2:m7", got)
	}
	r.sendGCM(`{"to":"dev0","message_id":"u1","message_type":"ack"}`)
	wantNack(t, r, "u1", "BAD_ACK")
	// An ACK on another connection of the same sender is a BAD_ACK.
	r2 := e.dial(t)
	r2.login()
	e.backend.NextFeed(t)
	r2.sendGCM(`{"to":"dev2","message_id":"u3","message_type":"ack"}`)
	wantNack(t, r2, "u3", "BAD_ACK")
	r.sendGCM(`{"to":"dev2","message_id":"u3","message_type":"ack"}`)
	if got := <-f.Acked; got != "u3" {
		t.Fatalf("acked %q", got)
	}
	r.send("</stream:stream>")
	r.expectEnd()
	<-f.Closed()
}

func TestMaxConnsPerSender(t *testing.T) {
	e := newEnv(t, func(c *xmppserver.Config) { c.MaxConnsPerSender = 1 })
	a := e.dial(t)
	a.login()
	b := e.dial(t)
	b.open()
	b.send(auth("", sender, apiKey))
	wantStreamError(t, b, "policy-violation")
	a.send("</stream:stream>")
	a.expectEnd()
	waitFor(t, func() bool { return e.srv.Conns() == 0 }, "connections to close")
	e.works(t)
}

func TestCloseSender(t *testing.T) {
	e := newEnv(t, nil)
	e.backend.Keys["other"] = "k2"
	a, b := e.dial(t), e.dial(t)
	a.login()
	b.login()
	o := e.dial(t)
	o.open()
	o.send(auth("", "other", "k2"))
	o.stanza()
	e.srv.CloseSender(sender)
	wantStreamError(t, a, "not-authorized")
	wantStreamError(t, b, "not-authorized")
	// The other sender is untouched.
	o.rd.Restart()
	o.send(hdr)
	o.header()
	o.stanza()
}

func TestDrain(t *testing.T) {
	e := newEnv(t, nil)
	r := e.dial(t)
	r.login()
	f := e.backend.NextFeed(t)
	f.Items <- xmppserver.Upstream{ID: "up1", JSON: []byte(`{"from":"d","message_id":"up1"}`)}
	if st := r.stanza(); !strings.Contains(string(st.GCM), "up1") {
		t.Fatalf("upstream: %s", st.GCM)
	}
	drained := make(chan error, 1)
	go func() { drained <- e.srv.Drain(context.Background()) }()
	st := r.stanza()
	if st.HasType || string(st.GCM) != `{"message_type":"control","control_type":"CONNECTION_DRAINING"}` {
		t.Fatalf("control: type %q %s", st.Type, st.GCM)
	}
	r.sendGCM(`{"to":"r","message_id":"late"}`)
	wantNack(t, r, "late", "CONNECTION_DRAINING")
	// Upstream in flight keeps flowing: its ACK is accepted, then the
	// connection closes with </stream:stream>.
	r.sendGCM(`{"to":"d","message_id":"up1","message_type":"ack"}`)
	r.expectEnd()
	if err := <-drained; err != nil {
		t.Fatalf("Drain: %v", err)
	}
	if got := <-f.Acked; got != "up1" {
		t.Fatalf("acked %q", got)
	}
	if n := e.srv.Conns(); n != 0 {
		t.Fatalf("%d connections after Drain", n)
	}
	assertNoGoroutines(t)
}

func TestDrainTimeout(t *testing.T) {
	e := newEnv(t, func(c *xmppserver.Config) { c.DrainTimeout = 50 * time.Millisecond })
	r := e.dial(t)
	r.login()
	f := e.backend.NextFeed(t)
	f.Items <- xmppserver.Upstream{ID: "up1", JSON: []byte(`{"from":"d","message_id":"up1"}`)}
	r.stanza()
	drained := make(chan error, 1)
	go func() { drained <- e.srv.Drain(context.Background()) }()
	r.stanza() // control; the client never ACKs up1
	r.expectEnd()
	if err := <-drained; err != nil {
		t.Fatalf("Drain: %v", err)
	}
	if got := e.closed("drain-timeout"); got != 1 {
		t.Fatalf("drain-timeout closes %v", got)
	}
}

func TestCloseLeavesNoGoroutines(t *testing.T) {
	e := newEnv(t, nil)
	var rs []*rawClient
	for range 3 {
		r := e.dial(t)
		r.login()
		rs = append(rs, r)
	}
	half := e.dial(t)
	half.open()
	if err := e.srv.Close(); err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		r.expectClosed()
	}
	assertNoGoroutines(t)
}

// assertNoGoroutines fails if any goroutine still runs code of a server
// connection. Drain and Close wait (WaitGroup) for all of them; a goroutine
// that has called Done may still be unwinding, so, like goleak, this looks
// again for a while before failing.
func assertNoGoroutines(t *testing.T) {
	t.Helper()
	buf := make([]byte, 1<<20)
	var left string
	deadline := time.Now().Add(5 * time.Second)
	for {
		left = ""
		n := runtime.Stack(buf, true)
		for _, g := range strings.Split(string(buf[:n]), "\n\n") {
			if strings.Contains(g, "internal/xmppserver.(*conn)") {
				left = g
			}
		}
		if left == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("goroutine left behind:\n%s", left)
		}
		runtime.Gosched()
		time.Sleep(time.Millisecond)
	}
}
