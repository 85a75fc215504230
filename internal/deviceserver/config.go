package deviceserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ccsd/ccsd/internal/gcm"
	"github.com/ccsd/ccsd/internal/mcs"
	"github.com/ccsd/ccsd/internal/metrics"
	"github.com/ccsd/ccsd/internal/queue"
	"github.com/ccsd/ccsd/internal/router"
)

// Backend is what the device endpoint needs from the router: the methods of
// *router.Router it calls, declared here by the consumer.
type Backend interface {
	// VerifyDevice checks a device's checkin credentials (queue.ErrNotFound,
	// queue.ErrBadToken).
	VerifyDevice(ctx context.Context, androidID, token uint64) error
	// Join makes this node the device's home for live messages and kicks
	// its other connections.
	Join(androidID uint64, connID string, sink queue.DeviceSink) (leave func(), err error)
	// Backlog returns the device's stored messages from sequence from on.
	Backlog(ctx context.Context, androidID uint64, from uint64, limit int) ([]queue.StoredDown, error)
	// BacklogBatch is Backlog in one batched request, at most
	// queue.MaxDeviceBatch messages: for pages expected to be non-empty.
	BacklogBatch(ctx context.Context, androidID uint64, from uint64, limit int) ([]queue.StoredDown, error)
	// StoredMessage returns one stored message (queue.ErrNotFound).
	StoredMessage(ctx context.Context, seq uint64) (queue.StoredDown, error)
	// Retire deletes a stored message (pipelined).
	Retire(seq uint64)
	// StoreDown stores a message for a device (the deleted_messages marker).
	StoreDown(ctx context.Context, subject string, collapsible bool, m *gcm.Message) error
	// Delivered emits the delivery receipt of an acknowledged message when
	// one was requested.
	Delivered(ctx context.Context, m *gcm.Message, category string, nowMs int64) error
	// Upstream validates and stores an upstream message; it returns once the
	// message is stored.
	Upstream(ctx context.Context, androidID uint64, up *router.DeviceUpstream) error
	// Registration returns a registration (category, subtype of a message).
	Registration(ctx context.Context, regID string) (queue.Registration, error)
}

// Defaults of Config fields left zero.
const (
	DefaultAddr         = "127.0.0.1:5228"
	DefaultLoginTimeout = 20 * time.Second
	DefaultWriteTimeout = 30 * time.Second
	DefaultMaxInFlight  = 100
)

// Config configures a Server. Every field but Backend has a working zero
// value.
type Config struct {
	// Addr is the listen address of ListenAndServe; "" means DefaultAddr.
	Addr string
	// TLSConfig is the server's TLS configuration. Nil serves plain TCP
	// (only for tests and a TLS-terminating proxy: every real client
	// speaks TLS). The server presents a certificate even when the
	// ClientHello has no SNI (push-receiver never sends one, mcs.md §10.2):
	// when GetCertificate finds nothing, Certificates[0] is used. Versions
	// below TLS 1.2 are refused.
	TLSConfig *tls.Config
	// Backend is the router; required.
	Backend Backend
	// MaxFrameBytes is the largest client frame payload, checked against
	// the length prefix before anything is buffered; zero means
	// mcs.DefaultMaxFrameBytes (64 KiB).
	MaxFrameBytes int
	// LoginTimeout bounds the TLS handshake plus the LoginRequest; zero
	// means DefaultLoginTimeout (20 s).
	LoginTimeout time.Duration
	// WriteTimeout bounds each write to a device; zero means
	// DefaultWriteTimeout (30 s). A write that times out closes the
	// connection.
	WriteTimeout time.Duration
	// HeartbeatInterval makes the server ping devices it has written
	// nothing to for that long, from one server-wide ticker; zero means no
	// server pings. An unanswered ping never closes a connection.
	HeartbeatInterval time.Duration
	// ClientHeartbeatInterval, when non-zero, is sent in the
	// LoginResponse's heartbeat_config so that Chromium pings at that
	// interval instead of its own.
	ClientHeartbeatInterval time.Duration
	// IdleTimeout closes a connection from which nothing was read for that
	// long; zero means never (TCP keepalive is on either way). A non-zero
	// value costs a timer per connection.
	IdleTimeout time.Duration
	// MaxInFlight is the number of downstream messages a connection may
	// have unacknowledged; zero means DefaultMaxInFlight (100).
	MaxInFlight int
	// Now is the clock of message expiry and timestamps; nil means
	// time.Now. Deadlines and the heartbeat ticker use real time.
	Now func() time.Time
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// Metrics; nil means a private set.
	Metrics *metrics.Metrics
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	if c.Backend == nil {
		return errors.New("deviceserver: a backend is required")
	}
	if c.MaxFrameBytes < 0 {
		return fmt.Errorf("deviceserver: max frame bytes %d: want >= 0", c.MaxFrameBytes)
	}
	if c.MaxInFlight < 0 {
		return fmt.Errorf("deviceserver: max in flight %d: want >= 0", c.MaxInFlight)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"login timeout", c.LoginTimeout}, {"write timeout", c.WriteTimeout},
		{"heartbeat interval", c.HeartbeatInterval}, {"client heartbeat interval", c.ClientHeartbeatInterval},
		{"idle timeout", c.IdleTimeout}} {
		if d.v < 0 {
			return fmt.Errorf("deviceserver: %s %v: want >= 0", d.name, d.v)
		}
	}
	if c.ClientHeartbeatInterval > 0 && c.ClientHeartbeatInterval.Milliseconds() > 1<<31-1 {
		return fmt.Errorf("deviceserver: client heartbeat interval %v too long", c.ClientHeartbeatInterval)
	}
	if t := c.TLSConfig; t != nil && len(t.Certificates) == 0 && t.GetCertificate == nil && t.GetConfigForClient == nil {
		return errors.New("deviceserver: TLS config has no certificate")
	}
	return nil
}

// withDefaults returns c with zero fields replaced by their defaults.
func (c Config) withDefaults() Config {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.MaxFrameBytes == 0 {
		c.MaxFrameBytes = mcs.DefaultMaxFrameBytes
	}
	if c.LoginTimeout == 0 {
		c.LoginTimeout = DefaultLoginTimeout
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Metrics == nil {
		c.Metrics = metrics.New()
	}
	if c.TLSConfig != nil {
		c.TLSConfig = serverTLS(c.TLSConfig)
	}
	return c
}

// serverTLS clones t so that it serves a certificate without SNI and
// refuses TLS below 1.2.
func serverTLS(t *tls.Config) *tls.Config {
	t = t.Clone()
	if t.MinVersion < tls.VersionTLS12 {
		t.MinVersion = tls.VersionTLS12
	}
	if get := t.GetCertificate; get != nil && len(t.Certificates) > 0 {
		def := &t.Certificates[0]
		t.GetCertificate = func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			c, err := get(hello)
			if err != nil || c == nil {
				return def, nil
			}
			return c, nil
		}
	}
	return t
}
