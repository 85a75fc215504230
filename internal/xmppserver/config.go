package xmppserver

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ccsd/ccsd/internal/metrics"
	"github.com/ccsd/ccsd/internal/xmltok"
	"github.com/ccsd/ccsd/internal/xmpp"
)

// Defaults for the zero values of Config.
const (
	DefaultAddr              = "127.0.0.1:5235"
	DefaultMaxPending        = 1000
	DefaultMaxConnsPerSender = 1000
	DefaultHandshakeTimeout  = 20 * time.Second
	DefaultIdleTimeout       = 10 * time.Minute
	DefaultWriteTimeout      = 10 * time.Second
	DefaultDrainTimeout      = 30 * time.Second
)

// Config configures a Server. Every field's zero value works except
// TLSConfig and Backend, which are required.
type Config struct {
	// Addr is the TCP address ListenAndServe listens on. Empty means
	// "127.0.0.1:5235".
	Addr string
	// TLSConfig holds the server certificate. Required. Connections are TLS
	// from the first byte (no STARTTLS); MinVersion is raised to TLS 1.2 if
	// lower. The Server clones it.
	TLSConfig *tls.Config
	// Domain is the service name: the from of stream headers and the domain
	// of bound JIDs. Empty means "gcm.googleapis.com".
	Domain string
	// MaxPending is the per-connection window: at most this many downstream
	// messages may be unanswered, and at most this many upstream messages
	// and receipts may be un-ACKed. Zero means 1000.
	MaxPending int
	// MaxConnsPerSender caps the connections one sender may have open at
	// once. Zero means 1000.
	MaxConnsPerSender int
	// Limits bound the XML a client may send; zero fields take the xmltok
	// defaults.
	Limits xmltok.Limits
	// HandshakeTimeout is how long the TLS handshake, stream header, SASL
	// and resource binding together may take. Zero means 20s.
	HandshakeTimeout time.Duration
	// IdleTimeout closes a bound connection that sent no bytes for this long
	// (whitespace keepalives count). Zero means 10 minutes.
	IdleTimeout time.Duration
	// WriteTimeout bounds each batched write; a client that does not read
	// for this long is closed as a slow consumer. Zero means 10s.
	WriteTimeout time.Duration
	// DrainTimeout is how long Drain lets connections finish their windows
	// before closing them. Zero means 30s.
	DrainTimeout time.Duration
	// Logger receives one line per closed connection and server events.
	// Nil means slog.Default().
	Logger *slog.Logger
	// Metrics receives the CCS counters. Nil means a private metrics.New().
	Metrics *metrics.Metrics
	// Backend authenticates senders, stores downstream messages and feeds
	// upstream ones. Required.
	Backend Backend
}

// withDefaults returns c with zero fields replaced by their defaults.
func (c Config) withDefaults() Config {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.Domain == "" {
		c.Domain = xmpp.DomainGCM
	}
	if c.MaxPending == 0 {
		c.MaxPending = DefaultMaxPending
	}
	if c.MaxConnsPerSender == 0 {
		c.MaxConnsPerSender = DefaultMaxConnsPerSender
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Metrics == nil {
		c.Metrics = metrics.New()
	}
	return c
}

// Validate reports whether c can be used by New.
func (c Config) Validate() error {
	var errs []error
	if c.TLSConfig == nil {
		errs = append(errs, errors.New("tls config is required"))
	} else if len(c.TLSConfig.Certificates) == 0 && c.TLSConfig.GetCertificate == nil && c.TLSConfig.GetConfigForClient == nil {
		errs = append(errs, errors.New("tls config has no certificate"))
	}
	if c.Backend == nil {
		errs = append(errs, errors.New("backend is required"))
	}
	if c.MaxPending < 0 {
		errs = append(errs, fmt.Errorf("max pending %d is negative", c.MaxPending))
	}
	if c.MaxConnsPerSender < 0 {
		errs = append(errs, fmt.Errorf("max conns per sender %d is negative", c.MaxConnsPerSender))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"handshake timeout", c.HandshakeTimeout},
		{"idle timeout", c.IdleTimeout},
		{"write timeout", c.WriteTimeout},
		{"drain timeout", c.DrainTimeout},
	} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s %v is negative", d.name, d.v))
		}
	}
	if c.Limits.MaxStanzaBytes < 0 || c.Limits.MaxDepth < 0 || c.Limits.MaxAttrs < 0 {
		errs = append(errs, errors.New("xml limits must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid xmppserver config: %w", err)
	}
	return nil
}
