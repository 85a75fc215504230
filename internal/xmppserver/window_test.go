package xmppserver_test

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ccsd/ccsd/internal/metrics"
	"github.com/ccsd/ccsd/internal/xmpp"
	"github.com/ccsd/ccsd/internal/xmppserver"
	"github.com/ccsd/ccsd/internal/xmppserver/ccstest"
)

// smallBufListener shrinks the kernel send buffer of accepted connections so
// that a client that does not read makes the server's writer block soon.
type smallBufListener struct{ net.Listener }

func (l smallBufListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetWriteBuffer(8 << 10)
	}
	return c, err
}

// newSmallBufEnv starts a server whose accepted sockets have small buffers.
func newSmallBufEnv(t *testing.T, mod func(*xmppserver.Config)) *env {
	t.Helper()
	e := &env{backend: ccstest.NewBackend(sender, apiKey), m: metrics.New()}
	serverTLS, clientTLS := ccstest.TLSConfigs(t)
	e.tls = clientTLS
	cfg := xmppserver.Config{Backend: e.backend, Metrics: e.m, TLSConfig: serverTLS, Logger: quiet}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := xmppserver.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = ln.Addr().String()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(smallBufListener{ln}) }()
	t.Cleanup(func() { srv.Close(); <-served })
	return e
}

// dialSmall dials with a small client receive buffer.
func (e *env) dialSmall(t *testing.T) *rawClient {
	t.Helper()
	raw, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	raw.(*net.TCPConn).SetReadBuffer(4 << 10)
	return e.wrap(t, raw)
}

// flood writes n downstream messages with ~1 KB targets from a goroutine
// (the writes block while the server does not read) and reports the end.
func flood(r *rawClient, n int) <-chan error {
	done := make(chan error, 1)
	target := strings.Repeat("t", 1000)
	go func() {
		var b []byte
		for i := range n {
			b = xmpp.AppendClientGCM(b[:0], fmt.Appendf(nil, `{"to":"%s%d","message_id":"m%d"}`, target, i, i))
			if _, err := r.c.Write(b); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	return done
}

func TestWindowExceeded(t *testing.T) {
	const window = 100
	e := newSmallBufEnv(t, func(c *xmppserver.Config) { c.MaxPending = window })
	full := make(chan struct{}, 1)
	xmppserver.SetWindowFullHook(e.srv, func() {
		select {
		case full <- struct{}{}:
		default:
		}
	})
	r := e.dialSmall(t)
	r.login()
	sent := flood(r, 3*window)
	// The client reads nothing: ccsd's writer blocks, its outbound queue
	// fills, the window fills, and the reader stops.
	<-full
	for _, st := range xmppserver.ConnStates(e.srv) {
		if st.Pending > st.Window {
			t.Errorf("pending %d over the window %d", st.Pending, st.Window)
		}
		if st.OutboundBytes > st.OutboundMax+4096 {
			t.Errorf("outbound %d bytes, bound %d", st.OutboundBytes, st.OutboundMax)
		}
	}
	if got := e.backend.Sent(); got >= 3*window {
		t.Errorf("backend got all %d messages while the window was full", got)
	}
	// Now the client reads (with a normal buffer): every message is
	// answered, in order.
	r.raw.(*net.TCPConn).SetReadBuffer(1 << 20)
	for i := range 3 * window {
		a := r.answer()
		if a["message_type"] != "ack" || a["message_id"] != fmt.Sprintf("m%d", i) {
			t.Fatalf("answer %d: %v %v", i, a["message_type"], a["message_id"])
		}
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if got := e.backend.Sent(); got != 3*window {
		t.Errorf("backend got %d messages, want %d", got, 3*window)
	}
}

func TestSlowConsumer(t *testing.T) {
	const window = 50
	e := newSmallBufEnv(t, func(c *xmppserver.Config) {
		c.MaxPending = window
		c.WriteTimeout = 100 * time.Millisecond
	})
	r := e.dialSmall(t)
	r.login()
	flood(r, 3*window)
	waitFor(t, func() bool { return e.closed("slow-consumer") == 1 }, "slow-consumer close")
	e.works(t)
}
