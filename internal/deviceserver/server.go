package deviceserver

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ccsd/ccsd/internal/metrics"
)

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("deviceserver: server closed")

// Server is the MCS endpoint. Create it with New, run Serve (or
// ListenAndServe), end it with Shutdown or Close.
type Server struct {
	// immutable after New
	cfg    Config
	be     Backend
	log    *slog.Logger
	met    *metrics.Metrics
	nonce  uint64             // random per server: connection and live-only persistent ids
	ctx    context.Context    // base context of backend calls; cancelled by Close
	cancel context.CancelFunc // cancels ctx

	wg      sync.WaitGroup // every goroutine the server starts
	running atomic.Int64   // goroutines started and not finished (tests)
	connSeq atomic.Uint64  // connection numbers
	liveSeq atomic.Uint64  // counter of live-only persistent ids

	mu       sync.Mutex
	lns      map[net.Listener]struct{} // guarded by mu
	conns    map[*conn]struct{}        // guarded by mu: every open connection
	loggedIn int                       // guarded by mu: connections past login
	closed   bool                      // guarded by mu: Shutdown or Close was called
	pinger   bool                      // guarded by mu: the heartbeat ticker runs
	stop     chan struct{}             // closed by Shutdown/Close: ends the ticker and parked writers

	writeJobs chan *conn   // unbuffered: hands a writer run to a parked writer goroutine
	parked    atomic.Int32 // writer goroutines parked on writeJobs (at most maxParkedWriters)
}

// maxParkedWriters bounds the writer goroutines kept waiting for the next
// writer run of any connection. A run on a parked writer reuses a stack
// that TLS writes and protobuf encoding have grown already; a new
// goroutine grows one again on every run (copystack was ~5% of the server's
// CPU in the device end-to-end benchmark). 32 parked stacks cost well under
// 1 MiB and nothing per connection.
const maxParkedWriters = 32

// New returns a Server for cfg.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	var b [8]byte
	_, _ = rand.Read(b[:])
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{cfg: cfg, be: cfg.Backend, log: cfg.Logger, met: cfg.Metrics,
		nonce: binary.BigEndian.Uint64(b[:]), ctx: ctx, cancel: cancel,
		lns: make(map[net.Listener]struct{}), conns: make(map[*conn]struct{}),
		stop: make(chan struct{}), writeJobs: make(chan *conn)}, nil
}

// ListenAndServe listens on Config.Addr and serves it.
func (s *Server) ListenAndServe() error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return err
	}
	return s.Serve(ln)
}

// Serve accepts connections on ln, a plain TCP listener (the server does
// TLS itself, so that the handshake counts against LoginTimeout), until
// Shutdown or Close. It always returns a non-nil error: ErrServerClosed
// after Shutdown or Close. ln is closed on return.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = ln.Close()
		return ErrServerClosed
	}
	s.lns[ln] = struct{}{}
	if s.cfg.HeartbeatInterval > 0 && !s.pinger {
		s.pinger = true
		s.goGo(s.pingLoop)
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.lns, ln)
		s.mu.Unlock()
		_ = ln.Close()
	}()
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.isClosed() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("mcs accept", "err", err, "retry_in", backoff)
				select {
				case <-time.After(backoff):
				case <-s.stop:
				}
				continue
			}
			return err
		}
		backoff = 0
		c := newConn(s, nc)
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = nc.Close()
			return ErrServerClosed
		}
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.met.MCSConnections.Inc()
		s.goGo(c.serve)
	}
}

// goGo starts fn as a goroutine owned by the server: Close waits for it.
func (s *Server) goGo(fn func()) {
	s.wg.Add(1)
	s.running.Add(1)
	go func() {
		defer s.wg.Done()
		defer s.running.Add(-1)
		fn()
	}()
}

// startWriter runs c.writeLoop on a parked writer goroutine, or on a new
// one when none is parked. It never blocks (called with c.mu held).
func (s *Server) startWriter(c *conn) {
	select {
	case s.writeJobs <- c:
	default:
		s.goGo(func() { s.writer(c) })
	}
}

// writer is a writer goroutine: it runs c's writer run, then parks for
// another connection's run while fewer than maxParkedWriters are parked,
// until the server closes.
func (s *Server) writer(c *conn) {
	for {
		c.writeLoop()
		c = nil // a parked writer keeps no connection alive
		if s.parked.Add(1) > maxParkedWriters {
			s.parked.Add(-1)
			return
		}
		select {
		case c = <-s.writeJobs:
			s.parked.Add(-1)
		case <-s.stop:
			s.parked.Add(-1)
			return
		}
	}
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Addr returns the address of one listener being served, or nil.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ln := range s.lns {
		return ln.Addr()
	}
	return nil
}

// Conns returns the number of logged-in device connections.
func (s *Server) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.loggedIn
}

// beginClose stops accepting and returns the open connections.
func (s *Server) beginClose() []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		close(s.stop)
	}
	for ln := range s.lns {
		_ = ln.Close()
	}
	cs := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		cs = append(cs, c)
	}
	return cs
}

// Shutdown stops accepting, sends Close to every device and waits until
// every connection has ended, or until ctx ends; then it closes what is left
// as Close does and returns ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	for _, c := range s.beginClose() {
		c.requestClose(reasonShutdown)
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		s.cancel()
		return nil
	case <-ctx.Done():
		s.Close()
		<-done
		return ctx.Err()
	}
}

// Close closes the listeners and every connection at once (no MCS Close)
// and waits for the server's goroutines to end.
func (s *Server) Close() error {
	for _, c := range s.beginClose() {
		c.abort(reasonServerClosed)
	}
	s.cancel()
	s.wg.Wait()
	return nil
}

// removeConn forgets a connection that has ended.
func (s *Server) removeConn(c *conn, loggedIn bool) {
	s.mu.Lock()
	delete(s.conns, c)
	if loggedIn {
		s.loggedIn--
	}
	s.mu.Unlock()
	s.met.MCSConnections.Dec()
}

// pingLoop is the server-wide heartbeat ticker: every HeartbeatInterval it
// pings the devices written nothing to for that long. It ends when the
// server closes.
func (s *Server) pingLoop() {
	t := time.NewTicker(s.cfg.HeartbeatInterval)
	defer t.Stop()
	var cs []*conn
	for {
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			cs = cs[:0]
			s.mu.Lock()
			for c := range s.conns {
				cs = append(cs, c)
			}
			s.mu.Unlock()
			limit := now.Add(-s.cfg.HeartbeatInterval).UnixNano()
			for _, c := range cs {
				c.pingIfQuiet(limit)
			}
			clear(cs)
		}
	}
}
