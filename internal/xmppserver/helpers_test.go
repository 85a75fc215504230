package xmppserver_test

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/ccsd/ccsd/internal/metrics"
	"github.com/ccsd/ccsd/internal/xmltok"
	"github.com/ccsd/ccsd/internal/xmpp"
	"github.com/ccsd/ccsd/internal/xmppserver"
	"github.com/ccsd/ccsd/internal/xmppserver/ccstest"
)

const (
	sender = "123456789"
	apiKey = "AIzaSyTestKey"
	hdr    = `<?xml version='1.0'?><stream:stream to="gcm.googleapis.com" version="1.0" xmlns="jabber:client" xmlns:stream="http://etherx.jabber.org/streams">`
)

// quiet discards the server's logs in tests.
var quiet = slog.New(slog.DiscardHandler)

// env is a running server with the in-memory backend.
type env struct {
	srv     *xmppserver.Server
	addr    string
	tls     *tls.Config
	backend *ccstest.Backend
	m       *metrics.Metrics
}

func newEnv(t *testing.T, mod func(*xmppserver.Config)) *env {
	t.Helper()
	e := &env{backend: ccstest.NewBackend(sender, apiKey), m: metrics.New()}
	cfg := xmppserver.Config{Backend: e.backend, Metrics: e.m, MaxPending: 100, Logger: quiet}
	if mod != nil {
		mod(&cfg)
	}
	e.srv, e.addr, e.tls = ccstest.Start(t, cfg)
	return e
}

// closed returns the closed-connection count for reason.
func (e *env) closed(reason string) float64 {
	var m dto.Metric
	if err := e.m.CCSClosed.WithLabelValues(reason).Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

// rawClient speaks XMPP by hand over TLS, reading with xmltok and xmpp.
type rawClient struct {
	t   *testing.T
	raw net.Conn
	c   *tls.Conn
	rd  *xmltok.Reader
	tk  xmltok.Tokenizer
	st  xmpp.Stanza
	jid string
}

func (e *env) dial(t *testing.T) *rawClient {
	t.Helper()
	raw, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	return e.wrap(t, raw)
}

// wrap starts TLS on raw.
func (e *env) wrap(t *testing.T, raw net.Conn) *rawClient {
	t.Helper()
	c := tls.Client(raw, e.tls)
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return &rawClient{t: t, raw: raw, c: c, rd: xmltok.NewReader(c, xmltok.Limits{MaxStanzaBytes: 1 << 20})}
}

func (r *rawClient) send(s string) {
	r.t.Helper()
	if _, err := io.WriteString(r.c, s); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

// frame returns the next non-whitespace frame.
func (r *rawClient) frame() (xmltok.Frame, error) {
	for {
		f, err := r.rd.Next()
		if err != nil || f.Kind != xmltok.Whitespace {
			return f, err
		}
	}
}

// stanza reads and parses the next stanza.
func (r *rawClient) stanza() *xmpp.Stanza {
	r.t.Helper()
	f, err := r.frame()
	if err != nil {
		r.t.Fatalf("reading: %v", err)
	}
	if f.Kind != xmltok.Stanza {
		r.t.Fatalf("got frame kind %d %q, want a stanza", f.Kind, f.Raw)
	}
	if err := r.st.Parse(&r.tk, f.Raw); err != nil {
		r.t.Fatalf("parsing %q: %v", f.Raw, err)
	}
	return &r.st
}

func (r *rawClient) header() {
	r.t.Helper()
	f, err := r.frame()
	if err != nil || f.Kind != xmltok.StreamStart {
		r.t.Fatalf("want stream header, got %d %q %v", f.Kind, f.Raw, err)
	}
}

// open sends the stream header and reads the header and SASL features.
func (r *rawClient) open() {
	r.t.Helper()
	r.send(hdr)
	r.header()
	if st := r.stanza(); st.Kind != xmpp.KindFeatures || len(st.Mechanisms) == 0 || st.FeatureStartTLS {
		r.t.Fatalf("features: kind %d mechanisms %q starttls %v", st.Kind, st.Mechanisms, st.FeatureStartTLS)
	}
}

func auth(authzid, authcid, pw string) string {
	return `<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="PLAIN">` +
		base64.StdEncoding.EncodeToString([]byte(authzid+"\x00"+authcid+"\x00"+pw)) + `</auth>`
}

// login negotiates go-xmpp style (no resource, no session).
func (r *rawClient) login() {
	r.t.Helper()
	r.open()
	r.send(auth("", sender, apiKey))
	if st := r.stanza(); st.Kind != xmpp.KindSuccess {
		r.t.Fatalf("auth: got kind %d %q", st.Kind, st.ChildLocal)
	}
	r.rd.Restart()
	r.send(hdr)
	r.header()
	if st := r.stanza(); !st.FeatureBind || !st.FeatureSession {
		r.t.Fatalf("bind features: bind %v session %v", st.FeatureBind, st.FeatureSession)
	}
	r.send(`<iq type="set" id="bind1"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"/></iq>`)
	st := r.stanza()
	if st.Kind != xmpp.KindIQ || string(st.ID) != "bind1" || string(st.Type) != "result" {
		r.t.Fatalf("bind: %s %s %s", st.Local, st.ID, st.Type)
	}
	r.jid = string(st.BindJID)
}

// sendGCM sends a downstream payload.
func (r *rawClient) sendGCM(js string) {
	r.t.Helper()
	r.send(string(xmpp.AppendClientGCM(nil, []byte(js))))
}

// answer reads the next message stanza and decodes its JSON.
func (r *rawClient) answer() map[string]any {
	r.t.Helper()
	st := r.stanza()
	if st.Kind != xmpp.KindMessage || !st.HasGCM {
		r.t.Fatalf("want a gcm message, got <%s> type %q", st.Local, st.Type)
	}
	var m map[string]any
	if err := json.Unmarshal(st.GCM, &m); err != nil {
		r.t.Fatalf("answer json %q: %v", st.GCM, err)
	}
	return m
}

// streamError reads until the stream error and returns its condition, then
// expects the stream to end and the connection to close.
func (r *rawClient) streamError() string {
	r.t.Helper()
	st := r.stanza()
	if st.Kind != xmpp.KindStreamError {
		r.t.Fatalf("want a stream error, got <%s>", st.Local)
	}
	cond := string(st.ChildLocal)
	r.expectEnd()
	return cond
}

// expectEnd reads until </stream:stream> and the connection closes.
func (r *rawClient) expectEnd() {
	r.t.Helper()
	for {
		f, err := r.frame()
		if err != nil {
			r.t.Fatalf("want </stream:stream>, got %v", err)
		}
		if f.Kind == xmltok.StreamEnd {
			break
		}
	}
	r.expectClosed()
}

// expectClosed reads until the server closes the connection.
func (r *rawClient) expectClosed() {
	r.t.Helper()
	buf := make([]byte, 4096)
	for {
		_, err := r.c.Read(buf)
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			r.t.Fatal("server did not close the connection")
		}
		return
	}
}

// works proves the server still serves a well-behaved client.
func (e *env) works(t *testing.T) {
	t.Helper()
	r := e.dial(t)
	r.login()
	r.sendGCM(`{"to":"reg-ok","message_id":"ok-1","data":{"k":"v"}}`)
	a := r.answer()
	if a["message_type"] != "ack" || a["message_id"] != "ok-1" || a["from"] != "reg-ok" {
		t.Fatalf("well-behaved client got %v", a)
	}
	r.send("</stream:stream>")
	r.expectEnd()
}

func repeat(s string, n int) string { return strings.Repeat(s, n) }

var _ = bytes.Equal
