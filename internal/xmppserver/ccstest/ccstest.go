// Package ccstest provides what tests of the CCS endpoint need: an
// in-memory xmppserver.Backend with immediate answers and channel-driven
// upstream feeds, a self-signed TLS certificate for 127.0.0.1, and a helper
// that runs a Server on a loopback port for the duration of a test. The
// real router and JetStream backend replace Backend in end-to-end tests.
package ccstest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ccsd/ccsd/internal/gcm"
	"github.com/ccsd/ccsd/internal/router"
	"github.com/ccsd/ccsd/internal/xmppserver"
)

// Backend is an in-memory xmppserver.Backend. Configure the exported fields
// before the server starts; they are read-only afterwards.
type Backend struct {
	// Keys maps sender id to API key.
	Keys map[string]string
	// Answer decides the result of each downstream message; nil ACKs all.
	// It runs on the connection's reader goroutine.
	Answer func(sender string, in *gcm.Inbound) router.Result
	// AuthErr, when set, is returned by Authenticate for every sender (an
	// internal error).
	AuthErr error
	// NoFeed makes Attach return a nil Feed.
	NoFeed bool

	sent     atomic.Int64
	mu       sync.Mutex
	attached chan *Feed
}

// NewBackend returns a Backend knowing one sender.
func NewBackend(sender, key string) *Backend {
	return &Backend{Keys: map[string]string{sender: key}, attached: make(chan *Feed, 64)}
}

// Sent returns how many messages reached Send.
func (b *Backend) Sent() int64 { return b.sent.Load() }

// Authenticate implements xmppserver.Backend.
func (b *Backend) Authenticate(ctx context.Context, sender string, key []byte) error {
	if b.AuthErr != nil {
		return b.AuthErr
	}
	want, ok := b.Keys[sender]
	if !ok || subtle.ConstantTimeCompare([]byte(want), key) != 1 {
		return xmppserver.ErrUnauthorized
	}
	return nil
}

var ack = router.Immediate(router.Result{})

// Send implements xmppserver.Backend with immediate tickets.
func (b *Backend) Send(ctx context.Context, sender string, in *gcm.Inbound) router.Ticket {
	b.sent.Add(1)
	if b.Answer != nil {
		return router.Immediate(b.Answer(sender, in))
	}
	return ack
}

// Attach implements xmppserver.Backend: each bound connection gets a Feed,
// also handed to whoever calls NextFeed.
func (b *Backend) Attach(ctx context.Context, sender, connID string, window int) (xmppserver.Feed, error) {
	if b.NoFeed {
		return nil, nil
	}
	f := &Feed{ConnID: connID, Sender: sender, Window: window,
		Items: make(chan xmppserver.Upstream, 4*window), Acked: make(chan string, 4*window), closed: make(chan struct{})}
	select {
	case b.attached <- f:
	default:
		return nil, errors.New("ccstest: too many unclaimed feeds")
	}
	return f, nil
}

// NextFeed returns the Feed of the next connection to bind.
func (b *Backend) NextFeed(t testing.TB) *Feed {
	t.Helper()
	select {
	case f := <-b.attached:
		return f
	case <-time.After(10 * time.Second):
		t.Fatal("ccstest: no connection attached")
		return nil
	}
}

// Feed is a channel-driven xmppserver.Feed: tests send upstream items into
// Items and read the ACKed ids from Acked.
type Feed struct {
	ConnID, Sender string
	Window         int
	Items          chan xmppserver.Upstream
	Acked          chan string
	once           sync.Once
	closed         chan struct{}
}

// C implements xmppserver.Feed.
func (f *Feed) C() <-chan xmppserver.Upstream { return f.Items }

// Ack implements xmppserver.Feed.
func (f *Feed) Ack(id string) error {
	select {
	case f.Acked <- id:
		return nil
	default:
		return errors.New("ccstest: ack channel full")
	}
}

// Close implements xmppserver.Feed.
func (f *Feed) Close() { f.once.Do(func() { close(f.closed) }) }

// Closed is closed when the connection closed its feed.
func (f *Feed) Closed() <-chan struct{} { return f.closed }

// TLSConfigs returns a server config with a fresh self-signed certificate
// for 127.0.0.1 and ::1, and a client config that trusts it.
func TLSConfigs(t testing.TB) (server, client *tls.Config) {
	t.Helper()
	server, client, err := NewTLS()
	if err != nil {
		t.Fatal(err)
	}
	return server, client
}

// NewTLS is TLSConfigs for code without a testing.TB (examples).
func NewTLS() (server, client *tls.Config, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "ccstest"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")},
		DNSNames:              []string{"localhost", "gcm.googleapis.com"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	server = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}}}
	client = &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	return server, client, nil
}

// Start runs a Server for cfg on 127.0.0.1:0 until the test ends (then it
// is closed hard). cfg.TLSConfig is filled in when nil; the returned client
// config trusts it.
func Start(t testing.TB, cfg xmppserver.Config) (srv *xmppserver.Server, addr string, client *tls.Config) {
	t.Helper()
	if cfg.TLSConfig == nil {
		cfg.TLSConfig, client = TLSConfigs(t)
	}
	srv, err := xmppserver.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-served; !errors.Is(err, xmppserver.ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return srv, ln.Addr().String(), client
}
