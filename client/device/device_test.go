package device_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/ccsd/ccsd/client/device"
	"github.com/ccsd/ccsd/internal/certs"
	"github.com/ccsd/ccsd/internal/deviceserver"
	"github.com/ccsd/ccsd/internal/gcm"
	"github.com/ccsd/ccsd/internal/httpapi"
	"github.com/ccsd/ccsd/internal/metrics"
	"github.com/ccsd/ccsd/internal/queue"
	"github.com/ccsd/ccsd/internal/router"
	"github.com/ccsd/ccsd/internal/router/routertest"
)

// server is a real ccsd device side: a router over an embedded JetStream,
// the device HTTPS routes and the MCS endpoint, on 127.0.0.1.
type server struct {
	q       *queue.Queue
	rt      *router.Router
	sender  queue.Sender
	baseURL string
	hc      *http.Client
	mcsAddr string
	mcsTLS  *tls.Config
	ds      *deviceserver.Server
}

func newServer(t *testing.T) *server {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	met := metrics.New()
	q, rt := routertest.Start(t, "", router.Config{Logger: log, Metrics: met}, queue.Config{})
	var err error
	s := &server{q: q, rt: rt}
	if s.sender, _, err = q.CreateSender(ctx, "test"); err != nil {
		t.Fatal(err)
	}
	bundle, err := certs.Ensure(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}

	hs := httptest.NewUnstartedServer(httpapi.DeviceHandler(rt, log, met))
	hs.TLS = bundle.ServerTLS()
	hs.StartTLS()
	t.Cleanup(hs.Close)
	s.baseURL = hs.URL
	s.hc = &http.Client{Transport: &http.Transport{TLSClientConfig: bundle.ClientTLS("127.0.0.1")}}
	t.Cleanup(s.hc.CloseIdleConnections)

	s.ds, err = deviceserver.New(deviceserver.Config{TLSConfig: bundle.ServerTLS(), Backend: rt, Logger: log, Metrics: met})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { defer close(served); _ = s.ds.Serve(ln) }()
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.ds.Shutdown(sctx)
		<-served
	})
	s.mcsAddr = ln.Addr().String()
	s.mcsTLS = bundle.ClientTLS("127.0.0.1")
	return s
}

// device checks in and registers app for the server's sender.
func (s *server) device(t *testing.T, app string) (device.Credentials, string) {
	t.Helper()
	ctx := context.Background()
	cred, err := device.Checkin(ctx, s.hc, s.baseURL, device.Credentials{})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := device.Register(ctx, s.hc, s.baseURL, cred, device.RegisterRequest{App: app, Sender: s.sender.ID})
	if err != nil {
		t.Fatal(err)
	}
	return cred, tok
}

func (s *server) dial(t *testing.T, cred device.Credentials, opts device.Options) *device.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := device.Dial(ctx, s.mcsAddr, s.mcsTLS, cred, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// send stores a downstream message for reg and waits for the ACK.
func (s *server) send(t *testing.T, reg, id, data string, mod func(*gcm.Inbound)) {
	t.Helper()
	in := &gcm.Inbound{Kind: gcm.InboundSend, To: []byte(reg), MessageID: []byte(id), TTL: gcm.MaxTTL, Data: []byte(data)}
	if mod != nil {
		mod(in)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if res := s.rt.Send(ctx, s.sender.ID, in).Wait(ctx); !res.OK() {
		t.Fatalf("send %s: %s %s", id, res.Code, res.Description)
	}
}

func next(t *testing.T, c *device.Conn) *device.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := c.Next(ctx)
	if err != nil {
		t.Fatalf("next: %v", err)
	}
	return m
}

func TestCheckinAndRegister(t *testing.T) {
	ctx := context.Background()
	s := newServer(t)
	cred, err := device.Checkin(ctx, s.hc, s.baseURL, device.Credentials{})
	if err != nil {
		t.Fatal(err)
	}
	if cred.AndroidID == 0 || cred.SecurityToken == 0 {
		t.Fatalf("credentials %+v: want both set", cred)
	}
	again, err := device.Checkin(ctx, s.hc, s.baseURL, cred)
	if err != nil || again != cred {
		t.Fatalf("re-checkin = %+v, %v; want the same %+v", again, err, cred)
	}
	req := device.RegisterRequest{App: "com.example", Sender: s.sender.ID}
	tok, err := device.Register(ctx, s.hc, s.baseURL, cred, req)
	if err != nil {
		t.Fatal(err)
	}
	if tok2, err := device.Register(ctx, s.hc, s.baseURL, cred, req); err != nil || tok2 != tok {
		t.Errorf("re-register = %q, %v; want the canonical %q", tok2, err, tok)
	}

	refusals := []struct {
		name string
		cred device.Credentials
		req  device.RegisterRequest
		want string
	}{
		{"unknown sender", cred, device.RegisterRequest{App: "com.example", Sender: "123456789012"}, httpapi.ErrInvalidSender},
		{"wrong token", device.Credentials{AndroidID: cred.AndroidID, SecurityToken: cred.SecurityToken + 1}, req, httpapi.ErrAuthenticationFailed},
		{"no app", cred, device.RegisterRequest{Sender: s.sender.ID}, httpapi.ErrInvalidParameters},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			_, err := device.Register(ctx, s.hc, s.baseURL, tt.cred, tt.req)
			var re *device.RegisterError
			if !errors.As(err, &re) || re.Code != tt.want {
				t.Errorf("err = %v, want RegisterError %s", err, tt.want)
			}
		})
	}

	if err := device.Unregister(ctx, s.hc, s.baseURL, cred, device.RegisterRequest{App: "com.example"}); err != nil {
		t.Fatal(err)
	}
	reg, err := s.rt.Registration(ctx, tok)
	if err != nil || reg.Active() {
		t.Errorf("registration after unregister = %+v, %v; want inactive", reg, err)
	}
}

func TestConnDeliverAckRedeliver(t *testing.T) {
	s := newServer(t)
	cred, reg := s.device(t, "com.example")
	s.send(t, reg, "m1", `{"k":"v1"}`, func(in *gcm.Inbound) { in.CollapseKey = []byte("ck") })
	s.send(t, reg, "m2", `{"k":"v2"}`, nil)

	c := s.dial(t, cred, device.Options{})
	m1, m2 := next(t, c), next(t, c)
	tests := []struct {
		got         *device.Message
		data        string
		collapseKey string
	}{{m1, "v1", "ck"}, {m2, "v2", ""}}
	for _, tt := range tests {
		m := tt.got
		if m.From != s.sender.ID || m.Category != "com.example" || m.Data["k"] != tt.data || m.PersistentID == "" || m.MessageType != "" {
			t.Errorf("message = %+v; want from %s, category com.example, k=%s, a persistent id, no message type", m, s.sender.ID, tt.data)
		}
		if tt.collapseKey != "" && m.CollapseKey != tt.collapseKey {
			t.Errorf("collapse key = %q, want %q", m.CollapseKey, tt.collapseKey)
		}
	}
	// Ack only m1. The ping's last_stream_id_received must not cover m2,
	// which the caller has not acknowledged.
	if err := c.Ack(m1.PersistentID); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Next(ctx); !errors.Is(err, device.ErrClosed) {
		t.Errorf("Next after Close = %v, want ErrClosed", err)
	}

	// The next login acknowledges m1 again (as push-receiver does), so only
	// m2 comes back; then a new message follows it.
	c2 := s.dial(t, cred, device.Options{ReceivedIDs: []string{m1.PersistentID}})
	if got := next(t, c2); got.PersistentID != m2.PersistentID {
		t.Fatalf("after reconnect got %+v, want m2 (%s) again", got, m2.PersistentID)
	}
	s.send(t, reg, "m3", `{"k":"v3"}`, nil)
	if got := next(t, c2); got.Data["k"] != "v3" {
		t.Fatalf("got %+v, want m3", got)
	}
}

func TestConnUpstream(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s := newServer(t)
	cred, reg := s.device(t, "com.example")
	c := s.dial(t, cred, device.Options{})

	up := device.Upstream{To: s.sender.ID + "@gcm.googleapis.com", MessageID: "up-1", Category: "com.example", RegID: reg, Data: map[string]string{"hello": "world"}}
	if err := c.Send(ctx, up); err != nil {
		t.Fatalf("send: %v", err)
	}
	uc, err := s.q.UpstreamConsumer(ctx, s.sender.ID)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []*queue.UpMsg
	err = uc.Fetch(ctx, 1, 5*time.Second, func(m *queue.UpMsg) { msgs = append(msgs, m) })
	if err != nil || len(msgs) != 1 || msgs[0].ID != "up-1" {
		t.Fatalf("stored upstream = %v, %v; want up-1 (Send returned, so it is stored)", msgs, err)
	}

	// Sent right behind up-1's StreamAck: the server holds its stamp below
	// up-2 from the moment it counts it, so the refusal is what the device
	// sees (not an acknowledgement).
	bad := device.Upstream{To: "999999999999@gcm.googleapis.com", MessageID: "up-2", Category: "com.example"}
	err = c.Send(ctx, bad)
	var se *device.SendError
	if !errors.As(err, &se) || se.MessageID != "up-2" || se.Code != "InvalidSender" {
		t.Fatalf("send to unknown sender = %v, want SendError InvalidSender", err)
	}
	// The send_error is also delivered as a message.
	if m := next(t, c); m.MessageType != device.MessageTypeSendErr || m.Data["error"] != "InvalidSender" {
		t.Errorf("message = %+v, want the send_error", m)
	}
}

func TestConnConcurrentSends(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := newServer(t)
	cred, reg := s.device(t, "com.example")
	c := s.dial(t, cred, device.Options{})
	const n = 8
	errc := make(chan error, n)
	for i := range n {
		go func() {
			errc <- c.Send(ctx, device.Upstream{To: s.sender.ID, MessageID: "c" + strconv.Itoa(i), Category: "com.example", RegID: reg,
				Data: map[string]string{"i": strconv.Itoa(i)}})
		}()
	}
	for range n {
		if err := <-errc; err != nil {
			t.Error(err)
		}
	}
}

func TestConnIdle(t *testing.T) {
	s := newServer(t)
	cred, reg := s.device(t, "com.example")
	c := s.dial(t, cred, device.Options{Idle: true})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Ping(ctx); err != nil { // the login (idle) is applied
		t.Fatal(err)
	}
	s.send(t, reg, "held", `{"k":"held"}`, func(in *gcm.Inbound) { in.DelayWhileIdle = true })
	s.send(t, reg, "now", `{"k":"now"}`, nil)
	if got := next(t, c); got.Data["k"] != "now" {
		t.Fatalf("first message while idle = %+v, want the one without delay_while_idle", got)
	}
	if err := c.SetIdle(false); err != nil {
		t.Fatal(err)
	}
	if got := next(t, c); got.Data["k"] != "held" {
		t.Fatalf("after SetIdle(false) got %+v, want the held message", got)
	}
	if err := c.SetIdle(true); err != nil {
		t.Fatal(err)
	}
}

func TestDialRefused(t *testing.T) {
	s := newServer(t)
	cred, _ := s.device(t, "com.example")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := device.Dial(ctx, s.mcsAddr, s.mcsTLS, device.Credentials{AndroidID: cred.AndroidID, SecurityToken: cred.SecurityToken + 1}, device.Options{})
	var le *device.LoginError
	if !errors.As(err, &le) || le.Code == 0 {
		t.Fatalf("dial with a wrong token = %v, want a LoginError", err)
	}
}

func TestConnServerShutdown(t *testing.T) {
	s := newServer(t)
	cred, _ := s.device(t, "com.example")
	c := s.dial(t, cred, device.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.ds.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Next(ctx); !errors.Is(err, device.ErrClosed) {
		t.Fatalf("Next after server shutdown = %v, want ErrClosed", err)
	}
	select {
	case <-c.Done():
	default:
		t.Fatal("reader still running after Next reported the end")
	}
	if err := c.Send(ctx, device.Upstream{To: s.sender.ID, MessageID: "x"}); !errors.Is(err, device.ErrClosed) {
		t.Errorf("Send after the end = %v, want ErrClosed", err)
	}
}
