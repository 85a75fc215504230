package xmppserver

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ccsd/ccsd/internal/gcm"
	"github.com/ccsd/ccsd/internal/metrics"
	"github.com/ccsd/ccsd/internal/xmpp"
)

// ErrServerClosed is returned by Serve and ListenAndServe after Drain or
// Close.
var ErrServerClosed = errors.New("xmppserver: server closed")

// Server is the CCS endpoint. Its methods are safe for concurrent use.
type Server struct {
	// immutable after New
	cfg    Config
	m      *metrics.Metrics
	tls    *tls.Config
	nacks  map[gcm.ErrorCode]prometheus.Counter // pre-resolved CCSNacks children
	random func([]byte)

	// guarded by mu
	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	addr      net.Addr
	conns     map[*conn]struct{}
	bySender  map[string]map[*conn]struct{} // authenticated connections
	draining  bool
	closed    bool

	gone chan struct{} // cap 1: signalled whenever a connection is removed
	// testWindowFull, set only by tests before Serve, is called by a reader
	// that finds its window full.
	testWindowFull func()
	// wg counts every goroutine the server started: one reader, one writer
	// and (once bound) one acker per connection. Drain and Close wait for it.
	wg sync.WaitGroup
}

// New returns a Server for cfg (with defaults applied to zero fields).
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	t := cfg.TLSConfig.Clone()
	if t.MinVersion < tls.VersionTLS12 {
		t.MinVersion = tls.VersionTLS12
	}
	s := &Server{
		cfg:       cfg,
		m:         cfg.Metrics,
		tls:       t,
		nacks:     make(map[gcm.ErrorCode]prometheus.Counter),
		random:    func(b []byte) { rand.Read(b) },
		listeners: make(map[net.Listener]struct{}),
		conns:     make(map[*conn]struct{}),
		bySender:  make(map[string]map[*conn]struct{}),
		gone:      make(chan struct{}, 1),
	}
	for _, code := range []gcm.ErrorCode{
		gcm.InvalidJSON, gcm.BadRegistration, gcm.DeviceUnregistered, gcm.BadAck,
		gcm.ServiceUnavailable, gcm.InternalServerError, gcm.ConnectionDraining,
		gcm.DeviceMessageRateExceeded, gcm.TopicsMessageRateExceeded,
	} {
		s.nacks[code] = s.m.CCSNacks.WithLabelValues(string(code))
	}
	return s, nil
}

// countNack counts one NACK of code without allocating for known codes.
func (s *Server) countNack(code gcm.ErrorCode) {
	if c, ok := s.nacks[code]; ok {
		c.Inc()
		return
	}
	s.m.CCSNacks.WithLabelValues(string(code)).Inc()
}

// ListenAndServe listens on cfg.Addr and serves until Drain or Close.
func (s *Server) ListenAndServe() error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listening for ccs: %w", err)
	}
	return s.Serve(ln)
}

// Serve accepts connections on ln (a plain TCP listener), wraps each in TLS
// (1.2 or later) from the first byte,
// and serves them until Drain or Close, when it returns ErrServerClosed.
// Serve closes ln when it returns.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed || s.draining {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	if s.addr == nil {
		s.addr = ln.Addr()
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
		ln.Close()
	}()
	var delay time.Duration
	for {
		raw, err := ln.Accept()
		if err != nil {
			if s.stopping() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.cfg.Logger.Warn("ccs accept failed; retrying", "err", err, "delay", delay)
				time.Sleep(delay)
				continue
			}
			return fmt.Errorf("accepting ccs connections: %w", err)
		}
		delay = 0
		s.start(raw)
	}
}

func (s *Server) stopping() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed || s.draining
}

// start registers and starts the reader goroutine of a new connection.
func (s *Server) start(raw net.Conn) {
	s.mu.Lock()
	if s.closed || s.draining {
		s.mu.Unlock()
		raw.Close()
		return
	}
	c := newConn(s, raw)
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	s.m.CCSAccepted.Inc()
	s.m.CCSConnections.Inc()
	go c.serve()
}

// Addr returns the address of the first listener Serve was given, or nil.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Conns returns the number of open connections, bound or not.
func (s *Server) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// register records c as authenticated for sender; it fails when the sender
// already has MaxConnsPerSender connections.
func (s *Server) register(c *conn, sender string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	set := s.bySender[sender]
	if len(set) >= s.cfg.MaxConnsPerSender {
		return false
	}
	if set == nil {
		set = make(map[*conn]struct{})
		s.bySender[sender] = set
	}
	set[c] = struct{}{}
	return true
}

// markBound records that c is bound and reports whether the server is
// draining (then the connection drains at once).
func (s *Server) markBound(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	c.bound = true
	return s.draining
}

// unregister forgets c; called once by its reader goroutine at the end.
func (s *Server) unregister(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	if set := s.bySender[c.sender]; set != nil {
		delete(set, c)
		if len(set) == 0 {
			delete(s.bySender, c.sender)
		}
	}
	s.mu.Unlock()
	s.m.CCSConnections.Dec()
	signal(s.gone)
}

// snapshot returns the open connections; with stop it also closes the
// listeners and marks the server draining (or closed when hard).
func (s *Server) snapshot(drain, hard bool) (conns []*conn, bound []bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if drain {
		s.draining = true
	}
	if hard {
		s.closed = true
	}
	if drain || hard {
		for ln := range s.listeners {
			ln.Close()
		}
	}
	for c := range s.conns {
		conns = append(conns, c)
		bound = append(bound, c.bound)
	}
	return conns, bound
}

// CloseSender closes every open connection of sender at once with a
// not-authorized stream error (its API key was revoked). A connection
// whose authentication is still in flight is not affected.
func (s *Server) CloseSender(senderID string) {
	s.mu.Lock()
	var victims []*conn
	for c := range s.bySender[senderID] {
		victims = append(victims, c)
	}
	s.mu.Unlock()
	tail := xmpp.AppendStreamError(nil, &xmpp.StreamError{Condition: "not-authorized", Text: "sender revoked"})
	for _, c := range victims {
		c.shutdown("revoked", tail)
	}
}

// Drain shuts the server down gracefully: it stops accepting, sends
// CONNECTION_DRAINING to every bound connection (which then NACKs new
// downstream messages with CONNECTION_DRAINING, answers the pending ones and
// keeps accepting ACKs for upstream messages in flight), and closes each
// connection with </stream:stream> once its windows are empty, or after
// DrainTimeout. Unbound connections are closed at once. If ctx ends first,
// Drain closes everything hard and returns ctx.Err(). It returns after
// every connection goroutine has ended.
func (s *Server) Drain(ctx context.Context) error {
	conns, bound := s.snapshot(true, false)
	for i, c := range conns {
		if bound[i] {
			c.startDrain()
		} else {
			c.abort("server-draining")
		}
	}
	timer := time.NewTimer(s.cfg.DrainTimeout)
	defer timer.Stop()
	for s.Conns() > 0 {
		select {
		case <-s.gone:
		case <-timer.C:
			conns, _ := s.snapshot(false, false)
			tail := xmpp.AppendStreamEnd(nil)
			for _, c := range conns {
				c.shutdown("drain-timeout", tail)
			}
		case <-ctx.Done():
			s.Close()
			return ctx.Err()
		}
	}
	s.wg.Wait()
	return nil
}

// Close closes the listeners and every connection at once, and waits for
// their goroutines to end.
func (s *Server) Close() error {
	conns, _ := s.snapshot(false, true)
	for _, c := range conns {
		c.abort("server-closed")
	}
	s.wg.Wait()
	return nil
}

// newID returns 8 random bytes as 16 upper-case hex digits.
func (s *Server) newID() string {
	var b [8]byte
	s.random(b[:])
	var h [16]byte
	hex.Encode(h[:], b[:])
	for i, c := range h {
		if c >= 'a' {
			h[i] = c - 'a' + 'A'
		}
	}
	return string(h[:])
}
