// Package ccs is a Go SDK for app servers speaking CCS, the XMPP side of
// Google Cloud Messaging, to ccsd (or any CCS-compatible server): it dials
// over TLS, authenticates with SASL PLAIN, binds a session, sends downstream
// messages with per-connection window accounting, delivers upstream
// messages, receipts and control messages to callbacks and ACKs them on the
// connection they came on, and moves new sends to a fresh connection when
// the server sends CONNECTION_DRAINING.
//
// Goroutines: each connection has one reader and one writer goroutine; the
// Client has one resender goroutine (for messages NACKed with
// CONNECTION_DRAINING) and at most one dialer at a time. Callbacks (done,
// OnUpstream, OnReceipt, OnControl) run on a connection's reader goroutine:
// they must not block for long and must not call Send (SendAsync from a
// callback is fine as long as the window has room). Close ends them all.
package ccs

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/ccsd/ccsd/internal/xmltok"
	"github.com/ccsd/ccsd/internal/xmpp"
)

// Errors.
var (
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("ccs: client closed")
	// ErrConnectionLost is the Response.Err of a message whose connection
	// closed before its answer came: it may or may not have been accepted.
	ErrConnectionLost = errors.New("ccs: connection lost before the answer")
	// ErrAuth is wrapped by Dial when the server refused the credentials.
	ErrAuth = errors.New("ccs: authentication failed")
)

// Config configures a Client. Addr, SenderID and APIKey are required; other
// zero values take the defaults given.
type Config struct {
	// Addr is the server's host:port, for example "127.0.0.1:5235".
	Addr     string
	SenderID string
	APIKey   string
	// TLSConfig is used to dial; nil means the system roots with the host
	// of Addr as server name.
	TLSConfig *tls.Config
	// Domain is the stream "to" and the domain of the SASL user name. Empty
	// means "gcm.googleapis.com".
	Domain string
	// Resource is the requested resource (the server appends a suffix).
	// Empty lets the server choose.
	Resource string
	// MaxPending is the window: at most this many unanswered messages per
	// connection; SendAsync blocks while it is full. Zero means 1000.
	MaxPending int
	// OnUpstream receives upstream messages; a nil return makes the SDK send
	// the ACK (an error leaves it un-ACKed for redelivery). Nil ACKs and
	// drops them.
	OnUpstream func(*Upstream) error
	// OnReceipt receives delivery receipts, ACKed the same way.
	OnReceipt func(*Receipt) error
	// OnControl receives control messages by control_type (for example
	// "CONNECTION_DRAINING"; the SDK already moves new sends to a new
	// connection).
	OnControl func(controlType string)
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// PingInterval sends a XEP-0199 ping this often; zero means never.
	PingInterval time.Duration
	// WriteTimeout bounds each write; zero means 10s.
	WriteTimeout time.Duration
	// HandshakeTimeout bounds Dial's TLS and XMPP negotiation when the
	// context has no earlier deadline; zero means 20s.
	HandshakeTimeout time.Duration
	// Limits bound what the server may make the client buffer.
	Limits xmltok.Limits
}

func (c Config) withDefaults() (Config, error) {
	if c.Addr == "" || c.SenderID == "" || c.APIKey == "" {
		return c, errors.New("ccs: Addr, SenderID and APIKey are required")
	}
	if c.Domain == "" {
		c.Domain = xmpp.DomainGCM
	}
	if c.MaxPending <= 0 {
		c.MaxPending = 1000
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = 20 * time.Second
	}
	if c.TLSConfig == nil {
		c.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	} else {
		c.TLSConfig = c.TLSConfig.Clone()
	}
	if c.TLSConfig.ServerName == "" {
		host, _, err := net.SplitHostPort(c.Addr)
		if err != nil {
			return c, fmt.Errorf("ccs: bad addr %q: %w", c.Addr, err)
		}
		c.TLSConfig.ServerName = host
	}
	return c, nil
}

// Client is a CCS app-server client. Its methods are safe for concurrent use.
type Client struct {
	// immutable after Dial
	cfg    Config
	log    *slog.Logger
	ctx    context.Context // ends at Close: stops dials and the resender
	cancel context.CancelFunc

	mu      sync.Mutex // guards cur, conns, dialing, closed
	cur     *conn      // where new sends go; nil or draining means redial
	conns   map[*conn]struct{}
	dialing *dialCall
	closed  bool

	rmu    sync.Mutex // guards resend
	resend []call     // NACKed CONNECTION_DRAINING, to send again
	rkick  chan struct{}

	wg sync.WaitGroup // connection goroutines, the dialer, the resender
}

// dialCall is one redial in flight; done is closed when it finished.
type dialCall struct {
	done chan struct{}
	err  error
}

// Dial connects, authenticates and binds a session.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithCancel(context.Background())
	cl := &Client{
		cfg:    cfg,
		log:    cfg.Logger.With("sender", cfg.SenderID),
		ctx:    cctx,
		cancel: cancel,
		conns:  make(map[*conn]struct{}),
		rkick:  make(chan struct{}, 1),
	}
	c, err := cl.dialConn(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	cl.mu.Lock()
	cl.cur = c
	cl.conns[c] = struct{}{}
	cl.mu.Unlock()
	c.start()
	cl.wg.Add(1)
	go func() {
		defer cl.wg.Done()
		cl.resendLoop()
	}()
	return cl, nil
}

// JID returns the full JID of the connection new sends go to, or "".
func (cl *Client) JID() string {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.cur == nil {
		return ""
	}
	return cl.cur.jid
}

// Send sends msg and waits for its ACK or NACK. A NACK is a Response with
// Error set and a nil error; a lost connection is an error (resend).
func (cl *Client) Send(ctx context.Context, msg *Message) (Response, error) {
	ch := make(chan Response, 1)
	if err := cl.SendAsync(ctx, msg, func(r Response) { ch <- r }); err != nil {
		return Response{}, err
	}
	select {
	case r := <-ch:
		return r, r.Err
	case <-ctx.Done():
		return Response{}, ctx.Err()
	}
}

// SendAsync queues msg and returns; done is called once with the answer, on
// a reader goroutine. It blocks while the connection's window is full. msg
// must not be changed until done is called (a message NACKed with
// CONNECTION_DRAINING is sent again on a new connection).
func (cl *Client) SendAsync(ctx context.Context, msg *Message, done func(Response)) error {
	if msg.MessageID == "" {
		return errors.New("ccs: message without MessageID")
	}
	for {
		c, err := cl.active(ctx)
		if err != nil {
			return err
		}
		err = c.send(ctx, call{msg: msg, done: done})
		if err != errConnGone {
			return err
		}
	}
}

// active returns the connection for new sends, dialing one if needed.
func (cl *Client) active(ctx context.Context) (*conn, error) {
	for {
		cl.mu.Lock()
		if cl.closed {
			cl.mu.Unlock()
			return nil, ErrClosed
		}
		if c := cl.cur; c != nil && c.usable() {
			cl.mu.Unlock()
			return c, nil
		}
		d := cl.startDialLocked()
		cl.mu.Unlock()
		select {
		case <-d.done:
			if d.err != nil {
				return nil, d.err
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// startDialLocked starts a redial unless one is in flight. cl.mu is held.
func (cl *Client) startDialLocked() *dialCall {
	if cl.dialing != nil {
		return cl.dialing
	}
	d := &dialCall{done: make(chan struct{})}
	cl.dialing = d
	cl.wg.Add(1)
	go func() {
		defer cl.wg.Done()
		ctx, cancel := context.WithTimeout(cl.ctx, cl.cfg.HandshakeTimeout)
		c, err := cl.dialConn(ctx)
		cancel()
		cl.mu.Lock()
		cl.dialing = nil
		if err == nil && cl.closed {
			err = ErrClosed
			c.raw.Close()
		} else if err == nil {
			cl.cur = c
			cl.conns[c] = struct{}{}
			c.start()
		}
		d.err = err
		cl.mu.Unlock()
		if err != nil && err != ErrClosed {
			cl.log.Warn("ccs redial failed", "err", err)
		}
		close(d.done)
	}()
	return d
}

// draining is called by c's reader on CONNECTION_DRAINING: new sends go to
// a new connection, dialed now.
func (cl *Client) draining(c *conn) {
	cl.mu.Lock()
	if !cl.closed && cl.cur == c {
		cl.startDialLocked()
	}
	cl.mu.Unlock()
}

// gone is called by c's reader when it ended.
func (cl *Client) gone(c *conn) {
	cl.mu.Lock()
	delete(cl.conns, c)
	if cl.cur == c {
		cl.cur = nil
	}
	cl.mu.Unlock()
}

// queueResend hands a message NACKed with CONNECTION_DRAINING to the
// resender.
func (cl *Client) queueResend(k call) {
	cl.rmu.Lock()
	cl.resend = append(cl.resend, k)
	cl.rmu.Unlock()
	select {
	case cl.rkick <- struct{}{}:
	default:
	}
}

// resendLoop sends again what draining connections refused, until Close.
func (cl *Client) resendLoop() {
	for {
		select {
		case <-cl.rkick:
		case <-cl.ctx.Done():
			cl.rmu.Lock()
			q := cl.resend
			cl.resend = nil
			cl.rmu.Unlock()
			for _, k := range q {
				k.answer(Response{MessageID: k.msg.MessageID, Error: "CONNECTION_DRAINING", Err: ErrClosed})
			}
			return
		}
		cl.rmu.Lock()
		q := cl.resend
		cl.resend = nil
		cl.rmu.Unlock()
		for _, k := range q {
			if err := cl.SendAsync(cl.ctx, k.msg, k.done); err != nil {
				k.answer(Response{MessageID: k.msg.MessageID, Error: "CONNECTION_DRAINING", Err: err})
			}
		}
	}
}

// Close ends the stream on every connection, lets the server answer what is
// pending (up to WriteTimeout), and closes. Unanswered messages get
// ErrConnectionLost.
func (cl *Client) Close() error {
	cl.mu.Lock()
	if cl.closed {
		cl.mu.Unlock()
		return nil
	}
	cl.closed = true
	conns := make([]*conn, 0, len(cl.conns))
	for c := range cl.conns {
		conns = append(conns, c)
	}
	cl.mu.Unlock()
	for _, c := range conns {
		c.endStream()
	}
	timer := time.NewTimer(cl.cfg.WriteTimeout)
	defer timer.Stop()
	for _, c := range conns {
		select {
		case <-c.done:
		case <-timer.C:
			for _, c := range conns {
				c.raw.Close()
			}
		}
	}
	cl.cancel()
	cl.wg.Wait()
	return nil
}
