package xmppserver

import (
	"context"
	"crypto/tls"
	"net"
	"testing"

	"github.com/ccsd/ccsd/internal/gcm"
	"github.com/ccsd/ccsd/internal/metrics"
	"github.com/ccsd/ccsd/internal/router"
	"github.com/ccsd/ccsd/internal/xmpp"
)

// immediateBackend answers every message at once.
type immediateBackend struct{}

func (immediateBackend) Authenticate(context.Context, string, []byte) error { return nil }
func (immediateBackend) Send(context.Context, string, *gcm.Inbound) router.Ticket {
	return router.Immediate(router.Result{})
}
func (immediateBackend) Attach(context.Context, string, string, int) (Feed, error) { return nil, nil }

// boundConn returns a conn in the ready phase, without goroutines or a
// network peer, for driving the per-stanza path directly.
func boundConn(tb testing.TB) *conn {
	tb.Helper()
	s, err := New(Config{
		TLSConfig: &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return nil, nil }},
		Backend:   immediateBackend{},
		Metrics:   metrics.New(),
	})
	if err != nil {
		tb.Fatal(err)
	}
	a, b := net.Pipe()
	tb.Cleanup(func() { a.Close(); b.Close() })
	c := newConn(s, a)
	c.neg.phase = phaseReady
	c.sender = "123"
	c.jid = "123@gcm.googleapis.com/r"
	return c
}

// process handles one stanza and answers whatever it queued, as the
// reader and acker do, then drops the written bytes.
func (c *conn) processForTest(raw []byte) {
	c.stanza(raw)
	c.win.mu.Lock()
	first, k := c.win.head, c.win.n
	c.win.mu.Unlock()
	if k > 0 {
		c.answer(first, k)
	}
	ob, _ := c.out.take()
	putOutBuf(ob)
}

var downstreamStanza = xmpp.AppendClientGCM(nil, []byte(`{"to":"cW_KBPUKj7k:APA91bE","message_id":"m-1","time_to_live":600,"data":{"score":"5x1","time":"15:10"}}`))

func TestStanzaPathAllocs(t *testing.T) {
	c := boundConn(t)
	raw := make([]byte, len(downstreamStanza))
	for range len(c.win.slots) + 3 { // warm the scratch buffers and every slot
		copy(raw, downstreamStanza)
		c.processForTest(raw)
	}
	allocs := testing.AllocsPerRun(1000, func() {
		copy(raw, downstreamStanza)
		c.processForTest(raw)
	})
	if allocs != 0 {
		t.Errorf("per-stanza path allocates %.1f times, want 0", allocs)
	}
	// And it answered with an ACK.
	copy(raw, downstreamStanza)
	c.stanza(raw)
	c.answer(c.win.head, c.win.n)
	ob, _ := c.out.take()
	want := xmpp.AppendGCM(nil, xmpp.EnvelopeAnswer, "", gcm.AppendAck(nil, []byte("cW_KBPUKj7k:APA91bE"), []byte("m-1"), nil))
	if string(ob.b) != string(want) {
		t.Errorf("answer %s\nwant %s", ob.b, want)
	}
}

func BenchmarkStanzaPath(b *testing.B) {
	c := boundConn(b)
	raw := make([]byte, len(downstreamStanza))
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		copy(raw, downstreamStanza)
		c.processForTest(raw)
	}
}
