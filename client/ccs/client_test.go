package ccs_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ccsd/ccsd/client/ccs"
	"github.com/ccsd/ccsd/internal/gcm"
	"github.com/ccsd/ccsd/internal/metrics"
	"github.com/ccsd/ccsd/internal/router"
	"github.com/ccsd/ccsd/internal/xmppserver"
	"github.com/ccsd/ccsd/internal/xmppserver/ccstest"
)

const (
	sender = "42"
	apiKey = "key-42"
)

var quiet = slog.New(slog.DiscardHandler)

type env struct {
	srv     *xmppserver.Server
	backend *ccstest.Backend
	cfg     ccs.Config
}

func newEnv(t *testing.T, mod func(*xmppserver.Config)) *env {
	t.Helper()
	b := ccstest.NewBackend(sender, apiKey)
	b.Answer = func(_ string, in *gcm.Inbound) router.Result {
		if strings.HasPrefix(string(in.To), "bad") {
			return router.Result{Code: gcm.BadRegistration, Description: "Invalid token on 'to' field: " + string(in.To)}
		}
		return router.Result{}
	}
	cfg := xmppserver.Config{Backend: b, Metrics: metrics.New(), Logger: quiet, MaxPending: 50}
	if mod != nil {
		mod(&cfg)
	}
	srv, addr, tlsc := ccstest.Start(t, cfg)
	return &env{srv: srv, backend: b, cfg: ccs.Config{Addr: addr, SenderID: sender, APIKey: apiKey, TLSConfig: tlsc, Logger: quiet}}
}

func (e *env) dial(t *testing.T, mod func(*ccs.Config)) *ccs.Client {
	t.Helper()
	cfg := e.cfg
	if mod != nil {
		mod(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := ccs.Dial(ctx, cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

func TestSendAckAndNack(t *testing.T) {
	e := newEnv(t, nil)
	cl := e.dial(t, func(c *ccs.Config) { c.Resource = "test" })
	if jid := cl.JID(); !strings.HasPrefix(jid, sender+"@gcm.googleapis.com/test") {
		t.Errorf("JID %q", jid)
	}
	ctx := context.Background()
	tests := []struct {
		msg  ccs.Message
		want ccs.Response
	}{
		{ccs.Message{To: "reg-1", MessageID: "m1", Data: map[string]string{"k": "v\"<&>"}, TimeToLive: ccs.TTL(0)},
			ccs.Response{MessageID: "m1", From: "reg-1"}},
		{ccs.Message{To: "bad-1", MessageID: "m2"},
			ccs.Response{MessageID: "m2", From: "bad-1", Error: "BAD_REGISTRATION", Description: "Invalid token on 'to' field: bad-1"}},
		{ccs.Message{To: "reg-1", MessageID: "m3", TimeToLive: ccs.TTL(-5)},
			ccs.Response{MessageID: "m3", From: "reg-1", Error: "INVALID_JSON"}},
		{ccs.Message{MessageID: "m4", RawJSON: []byte(`{"to":"raw","message_id":"m4","priority":"high"}`)},
			ccs.Response{MessageID: "m4", From: "raw"}},
	}
	for _, tt := range tests {
		got, err := cl.Send(ctx, &tt.msg)
		if err != nil {
			t.Fatalf("Send %s: %v", tt.msg.MessageID, err)
		}
		if tt.want.Error == "INVALID_JSON" && got.Error == "INVALID_JSON" {
			got.Description = ""
		}
		if got != tt.want {
			t.Errorf("Send %s = %+v, want %+v", tt.msg.MessageID, got, tt.want)
		}
		if got.OK() != (tt.want.Error == "") {
			t.Errorf("OK() = %v", got.OK())
		}
	}
}

func TestDialBadKey(t *testing.T) {
	e := newEnv(t, nil)
	cfg := e.cfg
	cfg.APIKey = "wrong"
	_, err := ccs.Dial(context.Background(), cfg)
	if !errors.Is(err, ccs.ErrAuth) {
		t.Fatalf("Dial with a wrong key: %v, want ErrAuth", err)
	}
}

func TestSendAsyncWindow(t *testing.T) {
	e := newEnv(t, nil)
	cl := e.dial(t, func(c *ccs.Config) { c.MaxPending = 8 })
	const n = 2000
	var wg sync.WaitGroup
	var mu sync.Mutex
	bad := 0
	wg.Add(n)
	for i := range n {
		m := &ccs.Message{To: "reg", MessageID: fmt.Sprint("a", i)}
		err := cl.SendAsync(context.Background(), m, func(r ccs.Response) {
			if !r.OK() || r.MessageID != m.MessageID {
				mu.Lock()
				bad++
				mu.Unlock()
			}
			wg.Done()
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if bad != 0 {
		t.Errorf("%d bad answers", bad)
	}
	if got := e.backend.Sent(); got != n {
		t.Errorf("server got %d, want %d", got, n)
	}
}

func TestUpstreamAndReceipts(t *testing.T) {
	e := newEnv(t, nil)
	ups := make(chan *ccs.Upstream, 4)
	rcs := make(chan *ccs.Receipt, 4)
	refuse := true
	cl := e.dial(t, func(c *ccs.Config) {
		c.OnUpstream = func(u *ccs.Upstream) error {
			ups <- u
			if u.MessageID == "u-refused" && refuse {
				refuse = false
				return errors.New("not now")
			}
			return nil
		}
		c.OnReceipt = func(r *ccs.Receipt) error { rcs <- r; return nil }
	})
	_ = cl
	f := e.backend.NextFeed(t)
	up := gcm.AppendUpstream(nil, &gcm.Upstream{From: "dev-1", Category: "com.example", MessageID: "u1", TTL: 86400,
		Data: []gcm.KV{{Key: "hello", Value: "world"}}})
	f.Items <- xmppserver.Upstream{ID: "u1", JSON: up}
	u := <-ups
	if u.From != "dev-1" || u.Category != "com.example" || u.MessageID != "u1" || u.TTL != 86400 || u.Data["hello"] != "world" {
		t.Errorf("upstream %+v", u)
	}
	if got := <-f.Acked; got != "u1" {
		t.Errorf("acked %q", got)
	}
	rc := gcm.AppendReceipt(nil, &gcm.Receipt{OriginalMessageID: "m9", DeviceRegistrationID: "dev-1", Category: "com.example", SentTimestamp: 1700000000000})
	f.Items <- xmppserver.Upstream{ID: "dr2:m9", JSON: rc}
	r := <-rcs
	if r.MessageID != "dr2:m9" || r.OriginalMessageID != "m9" || r.Status != "MESSAGE_SENT_TO_DEVICE" || r.DeviceRegistrationID != "dev-1" || r.From != "gcm.googleapis.com" {
		t.Errorf("receipt %+v", r)
	}
	if got := <-f.Acked; got != "dr2:m9" {
		t.Errorf("acked %q", got)
	}
	// A refused upstream message is not ACKed; the next one is.
	f.Items <- xmppserver.Upstream{ID: "u-refused", JSON: []byte(`{"from":"d","message_id":"u-refused"}`)}
	<-ups
	f.Items <- xmppserver.Upstream{ID: "u2", JSON: []byte(`{"from":"d","message_id":"u2"}`)}
	<-ups
	if got := <-f.Acked; got != "u2" {
		t.Errorf("acked %q, want u2 (u-refused must stay un-ACKed)", got)
	}
}

// chanListener is a net.Listener fed by a dispatcher, so two servers can
// share one address: connections go to whichever is current.
type chanListener struct {
	ch     chan net.Conn
	once   sync.Once
	closed chan struct{}
}

func newChanListener() *chanListener {
	return &chanListener{ch: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}
func (l *chanListener) Close() error   { l.once.Do(func() { close(l.closed) }); return nil }
func (l *chanListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

func TestDrainMovesToNewConnection(t *testing.T) {
	b := ccstest.NewBackend(sender, apiKey)
	serverTLS, clientTLS := ccstest.TLSConfigs(t)
	newServer := func() (*xmppserver.Server, *chanListener) {
		srv, err := xmppserver.New(xmppserver.Config{Backend: b, TLSConfig: serverTLS, Logger: quiet, MaxPending: 20})
		if err != nil {
			t.Fatal(err)
		}
		l := newChanListener()
		go srv.Serve(l)
		t.Cleanup(func() { srv.Close() })
		return srv, l
	}
	srvA, lnA := newServer()
	srvB, lnB := newServer()
	real, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer real.Close()
	var mu sync.Mutex
	target := lnA
	go func() {
		for {
			c, err := real.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			l := target
			mu.Unlock()
			select {
			case l.ch <- c:
			case <-l.closed:
				c.Close()
			}
		}
	}()

	controls := make(chan string, 4)
	cl, err := ccs.Dial(context.Background(), ccs.Config{Addr: real.Addr().String(), SenderID: sender, APIKey: apiKey,
		TLSConfig: clientTLS, Logger: quiet, MaxPending: 20, OnControl: func(ct string) { controls <- ct }})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	b.NextFeed(t)
	mu.Lock()
	target = lnB
	mu.Unlock()

	// Messages keep flowing while A drains: those A refuses with
	// CONNECTION_DRAINING are resent on the new connection to B.
	const n = 3000
	var wg sync.WaitGroup
	var bad sync.Map
	wg.Add(n)
	drained := make(chan error, 1)
	for i := range n {
		if i == n/3 {
			go func() { drained <- srvA.Drain(context.Background()) }()
		}
		m := &ccs.Message{To: "reg", MessageID: fmt.Sprint("d", i)}
		if err := cl.SendAsync(context.Background(), m, func(r ccs.Response) {
			if !r.OK() {
				bad.Store(m.MessageID, r)
			}
			wg.Done()
		}); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	bad.Range(func(k, v any) bool { t.Errorf("%v: %+v", k, v); return true })
	// A guard, not a timing assertion: if connection A ended before Drain
	// reached it, no control message comes, and the test must fail with
	// what it saw rather than hang until the package timeout.
	select {
	case ct := <-controls:
		if ct != "CONNECTION_DRAINING" {
			t.Errorf("control %q", ct)
		}
	case <-time.After(time.Minute):
		t.Fatalf("no CONNECTION_DRAINING control message; connections: A %d, B %d", srvA.Conns(), srvB.Conns())
	}
	if err := <-drained; err != nil {
		t.Fatalf("Drain: %v", err)
	}
	if srvB.Conns() != 1 || srvA.Conns() != 0 {
		t.Errorf("connections: A %d, B %d; want 0, 1", srvA.Conns(), srvB.Conns())
	}
	if r, err := cl.Send(context.Background(), &ccs.Message{To: "reg", MessageID: "after"}); err != nil || !r.OK() {
		t.Errorf("send after drain: %+v %v", r, err)
	}
}
