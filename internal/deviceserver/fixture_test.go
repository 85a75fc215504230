package deviceserver

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/ccsd/ccsd/internal/certs"
	"github.com/ccsd/ccsd/internal/gcm"
	"github.com/ccsd/ccsd/internal/mcs"
	"github.com/ccsd/ccsd/internal/mcs/mcspb"
	"github.com/ccsd/ccsd/internal/metrics"
	"github.com/ccsd/ccsd/internal/queue"
	"github.com/ccsd/ccsd/internal/router"
	"github.com/ccsd/ccsd/internal/router/routertest"
)

var _ Backend = (*router.Router)(nil)

// epoch is the tests' clock start.
var epoch = time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)

// clock is a settable clock shared by the router and the server.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(epoch.UnixNano())
	return c
}

func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// fixture is a real embedded JetStream, queue, router and device server on
// a loopback TLS listener, with one sender, one device and one registration.
type fixture struct {
	t       testing.TB
	clk     *clock
	q       *queue.Queue
	rt      *router.Router
	srv     *Server
	met     *metrics.Metrics
	bundle  *certs.Bundle
	sender  queue.Sender
	aid     uint64
	token   uint64
	reg     queue.Registration
	serveCh chan error
	addrCh  net.Addr
}

type fixtureOpts struct {
	cfg     Config                // server config; Backend, TLS, Now and Metrics are filled in
	backend func(Backend) Backend // wraps the router, when set
	subtype string
	rate    float64 // router DeviceRate
	plain   bool    // no TLS
	ln      func(net.Listener) net.Listener
}

func newFixture(t testing.TB, o fixtureOpts) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{t: t, clk: newClock(), met: metrics.New()}
	f.q, f.rt = routertest.Start(t, "", router.Config{Now: f.clk.Now, Metrics: f.met, DeviceRate: o.rate}, queue.Config{})
	var err error

	if f.sender, _, err = f.q.CreateSender(ctx, "test"); err != nil {
		t.Fatal(err)
	}
	var d queue.Device
	if d, f.token, err = f.q.Checkin(ctx, 0, 0); err != nil {
		t.Fatal(err)
	}
	f.aid = d.AndroidID
	if f.reg, err = f.rt.Register(ctx, queue.RegisterRequest{AndroidID: f.aid, App: "com.example.app", Subtype: o.subtype, SenderID: f.sender.ID}); err != nil {
		t.Fatal(err)
	}
	if f.bundle, err = certs.Ensure(t.TempDir()); err != nil {
		t.Fatal(err)
	}

	cfg := o.cfg
	cfg.Backend = f.rt
	if o.backend != nil {
		cfg.Backend = o.backend(f.rt)
	}
	if !o.plain {
		cfg.TLSConfig = f.bundle.ServerTLS()
	}
	cfg.Now, cfg.Metrics = f.clk.Now, f.met
	if f.srv, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if o.ln != nil {
		ln = o.ln(ln)
	}
	f.serveCh = make(chan error, 1)
	go func() { f.serveCh <- f.srv.Serve(ln) }()
	t.Cleanup(func() {
		f.srv.Close()
		if n := f.srv.running.Load(); n != 0 {
			t.Errorf("%d server goroutines still running after Close", n)
		}
	})
	f.addrCh = ln.Addr()
	return f
}

// send stores a downstream message for the fixture's registration and
// returns once it is stored (or NACKed).
func (f *fixture) send(in *gcm.Inbound) {
	f.t.Helper()
	if len(in.To) == 0 {
		in.To = []byte(f.reg.ID)
	}
	if in.Kind == 0 {
		in.Kind = gcm.InboundSend
	}
	res := f.rt.Send(context.Background(), f.sender.ID, in).Wait(context.Background())
	if !res.OK() {
		f.t.Fatalf("send %s: %s %s", in.MessageID, res.Code, res.Description)
	}
}

// msg is a downstream message with data {"k":"<id>"} and the maximum
// time_to_live.
func msg(id string) *gcm.Inbound {
	return &gcm.Inbound{Kind: gcm.InboundSend, MessageID: []byte(id), TTL: gcm.MaxTTL, Data: []byte(`{"k":"` + id + `"}`)}
}

// stored returns what the store holds for the device.
func (f *fixture) stored() []queue.StoredDown {
	f.t.Helper()
	sds, err := f.q.ReadDevice(context.Background(), f.aid)
	if err != nil {
		f.t.Fatal(err)
	}
	return sds
}

// waitStored waits until the store holds exactly n messages for the device
// (retirement is pipelined and has no completion signal, so this polls).
func (f *fixture) waitStored(n int) []queue.StoredDown {
	f.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		sds := f.stored()
		if len(sds) == n || time.Now().After(deadline) {
			if len(sds) != n {
				f.t.Fatalf("store holds %d messages for the device, want %d", len(sds), n)
			}
			return sds
		}
		time.Sleep(2 * time.Millisecond) // polling an external condition, not ordering
	}
}

// client is a test device speaking MCS with internal/mcs.
type client struct {
	t       testing.TB
	nc      net.Conn
	rd      *mcs.Reader
	sentVer bool
	out     int32 // stream id of the last packet sent
	in      int32 // packets received
	tee     *teeReader
}

// teeReader records every byte read, for transcripts.
type teeReader struct {
	r   io.Reader
	buf []byte
	on  bool
}

func (t *teeReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if t.on {
		t.buf = append(t.buf, p[:n]...)
	}
	return n, err
}

// dial connects a client that verifies the server as mtalk.google.com.
func (f *fixture) dial() *client {
	f.t.Helper()
	return f.dialTLS(f.bundle.ClientTLS("mtalk.google.com"))
}

// dialTLS connects a client with cfg (plain TCP when the server has no TLS).
func (f *fixture) dialTLS(cfg *tls.Config) *client {
	f.t.Helper()
	raw, err := net.Dial("tcp", f.addrCh.String())
	if err != nil {
		f.t.Fatal(err)
	}
	var nc net.Conn = raw
	if f.srv.cfg.TLSConfig != nil {
		nc = tls.Client(raw, cfg)
	}
	_ = nc.SetDeadline(time.Now().Add(20 * time.Second)) // a failure bound, not synchronisation
	tee := &teeReader{r: nc}
	c := &client{t: f.t, nc: nc, rd: mcs.NewReader(tee, mcs.ReaderConfig{Tags: mcs.ServerSendTags, MaxFrameBytes: 1 << 20}), tee: tee}
	f.t.Cleanup(func() { nc.Close() })
	return c
}

// write sends raw bytes.
func (c *client) write(b []byte) {
	c.t.Helper()
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("client write: %v", err)
	}
}

// send sends one frame (with the version byte first on the first one).
func (c *client) send(m proto.Message) {
	c.t.Helper()
	tag, ok := mcs.TagOf(m)
	if !ok {
		c.t.Fatalf("no tag for %T", m)
	}
	var b []byte
	var err error
	if !c.sentVer {
		b, err = mcs.AppendVersionedFrame(nil, tag, m)
		c.sentVer = true
	} else {
		b, err = mcs.AppendFrame(nil, tag, m)
	}
	if err != nil {
		c.t.Fatal(err)
	}
	c.out++
	c.write(b)
}

// recv reads the next frame.
func (c *client) recv() (byte, proto.Message) {
	c.t.Helper()
	fr, err := c.rd.Next()
	if err != nil {
		c.t.Fatalf("client read: %v", err)
	}
	m, err := mcs.Decode(fr)
	if err != nil {
		c.t.Fatalf("client decode: %v", err)
	}
	c.in++
	return fr.Tag, m
}

// recvErr reads the next frame or returns the read error.
func (c *client) recvErr() (byte, proto.Message, error) {
	fr, err := c.rd.Next()
	if err != nil {
		return 0, nil, err
	}
	m, err := mcs.Decode(fr)
	if err != nil {
		return fr.Tag, nil, err
	}
	c.in++
	return fr.Tag, m, nil
}

// loginReq is the LoginRequest of the fixture's device.
func (f *fixture) loginReq(received ...string) *mcspb.LoginRequest {
	return mcs.LoginRequest("chrome-63.0.3234.0", f.aid, f.token, received)
}

// login logs the device in and reads the LoginResponse and the SelectiveAck.
func (f *fixture) login(received ...string) *client {
	f.t.Helper()
	c := f.dial()
	c.loginWith(f.loginReq(received...))
	return c
}

func (c *client) loginWith(req *mcspb.LoginRequest) {
	c.t.Helper()
	c.send(req)
	tag, m := c.recv()
	resp, ok := m.(*mcspb.LoginResponse)
	if tag != mcs.TagLoginResponse || !ok {
		c.t.Fatalf("got %s %v, want LoginResponse", mcs.TagName(tag), m)
	}
	if resp.Error != nil {
		c.t.Fatalf("login refused: %v", resp.Error)
	}
	tag, m = c.recv()
	iq, ok := m.(*mcspb.IqStanza)
	if tag != mcs.TagIqStanza || !ok {
		c.t.Fatalf("got %s %v, want the SelectiveAck IQ", mcs.TagName(tag), m)
	}
	if _, isSel, err := mcs.SelectiveAckIDs(iq); !isSel || err != nil {
		c.t.Fatalf("IQ after login %v is not a SelectiveAck (%v)", iq, err)
	}
}

// data reads frames until a DataMessageStanza, answering nothing.
func (c *client) data() *mcspb.DataMessageStanza {
	c.t.Helper()
	for {
		tag, m := c.recv()
		if d, ok := m.(*mcspb.DataMessageStanza); ok {
			return d
		}
		if tag == mcs.TagClose {
			c.t.Fatalf("got Close, want a data message")
		}
	}
}

// ping sends a HeartbeatPing (with last_stream_id_received when ack) and
// reads up to its HeartbeatAck, returning the data messages seen before.
func (c *client) ping(ack bool, status *int64) (*mcspb.HeartbeatAck, []*mcspb.DataMessageStanza) {
	c.t.Helper()
	p := &mcspb.HeartbeatPing{Status: status}
	if ack {
		p.LastStreamIdReceived = proto.Int32(c.in)
	}
	c.send(p)
	var got []*mcspb.DataMessageStanza
	for {
		tag, m := c.recv()
		switch m := m.(type) {
		case *mcspb.HeartbeatAck:
			return m, got
		case *mcspb.DataMessageStanza:
			got = append(got, m)
		default:
			if tag == mcs.TagClose {
				c.t.Fatalf("got Close waiting for HeartbeatAck")
			}
		}
	}
}

// expectClose reads until the server's Close and then the end of the
// stream.
func (c *client) expectClose() {
	c.t.Helper()
	sawClose := false
	for {
		tag, _, err := c.recvErr()
		if err != nil {
			if !sawClose {
				c.t.Fatalf("connection ended (%v) without Close", err)
			}
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !isReset(err) {
				c.t.Fatalf("after Close: %v, want end of stream", err)
			}
			return
		}
		if tag == mcs.TagClose {
			sawClose = true
		}
	}
}

// expectEOF expects the stream to end with no frame at all.
func (c *client) expectEOF() {
	c.t.Helper()
	tag, m, err := c.recvErr()
	if err == nil {
		c.t.Fatalf("got %s %v, want end of stream", mcs.TagName(tag), m)
	}
}

func isReset(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe)
}

func ids(ds []*mcspb.DataMessageStanza) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.GetId()
	}
	return out
}

func appData(d *mcspb.DataMessageStanza) map[string]string {
	m := map[string]string{}
	for _, kv := range d.AppData {
		m[kv.GetKey()] = kv.GetValue()
	}
	return m
}

func itoa(n int) string { return strconv.Itoa(n) }

// counter reads a counter's value.
func counter(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}
