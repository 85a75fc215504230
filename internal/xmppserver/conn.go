package xmppserver

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ccsd/ccsd/internal/gcm"
	"github.com/ccsd/ccsd/internal/xmltok"
	"github.com/ccsd/ccsd/internal/xmpp"
)

// conn is one app-server connection. Its goroutines:
//
//   - serve, the reader: TLS handshake, negotiation, reading and handling
//     stanzas; it starts the others and, at the end, waits for them, closes
//     the feed and unregisters the connection.
//   - writeLoop, the writer: the only goroutine that writes to the socket;
//     it pushes upstream items from the feed; it closes the socket and
//     cancels ctx when it ends.
//   - ackLoop, the acker (started at bind): waits the tickets of pending
//     downstream messages in order and queues their ACK/NACK.
type conn struct {
	// immutable after newConn
	srv        *Server
	raw        net.Conn
	tc         *tls.Conn
	id         string
	log        *slog.Logger
	ctx        context.Context // ends when the writer ends or the connection is aborted
	cancel     context.CancelFunc
	maxPending int
	start      time.Time

	// owned by the reader goroutine
	dr      deadlineReader
	rd      *xmltok.Reader
	tk      xmltok.Tokenizer
	st      xmpp.Stanza
	neg     negotiator
	in      gcm.Inbound
	js      []byte           // copy of the <gcm> text handed to DecodeInbound
	rbuf    []byte           // reader's JSON scratch (direct NACKs)
	nbuf    []byte           // negotiation output scratch
	serr    xmpp.StanzaError // reused stanza error
	feed    Feed             // set at bind; the reader calls Ack and, at the end, Close
	ackerUp bool             // the acker goroutine was started

	// written by the reader before any other goroutine reads them (before
	// register for sender, before feedCh for jid)
	sender string
	jid    string
	bound  bool // guarded by srv.mu

	// owned by the acker goroutine
	ajs []byte // answer JSON scratch

	// shared; each type documents its own locking
	win        window
	up         inflight
	out        outbound
	draining   atomic.Bool // CONNECTION_DRAINING was sent: new downstream is NACKed
	drainOnce  sync.Once
	feedCh     chan Feed     // cap 1: reader → writer, at bind
	writerDone chan struct{} // closed when the writer ends
	ackerDone  chan struct{} // closed when the acker ends

	reasonMu  sync.Mutex // guards reason, reasonErr
	reason    string     // why the connection closed; the first one set wins
	reasonErr error
}

func newConn(s *Server, raw net.Conn) *conn {
	ctx, cancel := context.WithCancel(context.Background())
	c := &conn{
		srv:        s,
		raw:        raw,
		id:         s.newID(),
		ctx:        ctx,
		cancel:     cancel,
		maxPending: s.cfg.MaxPending,
		start:      time.Now(),
		feedCh:     make(chan Feed, 1),
		writerDone: make(chan struct{}),
		ackerDone:  make(chan struct{}),
	}
	c.log = s.cfg.Logger.With("conn", c.id, "remote", raw.RemoteAddr().String())
	c.dr = deadlineReader{c: raw, fixed: c.start.Add(s.cfg.HandshakeTimeout), idle: s.cfg.IdleTimeout}
	c.tc = tls.Server(&c.dr, s.tls)
	c.win.init(s.cfg.MaxPending)
	c.up.init(s.cfg.MaxPending)
	// Room for a full window of answers plus slack; the acker waits beyond it.
	c.out.init(max(64<<10, 4*outBufSize))
	c.neg.init(s.cfg.Domain, s.random)
	return c
}

// setReason records why the connection ends; the first reason wins.
func (c *conn) setReason(reason string, err error) {
	c.reasonMu.Lock()
	if c.reason == "" {
		c.reason, c.reasonErr = reason, err
	}
	c.reasonMu.Unlock()
}

// shutdown closes the connection gracefully: tail (a stream error or end)
// is the last thing written, then the writer closes the socket.
func (c *conn) shutdown(reason string, tail []byte) {
	c.setReason(reason, nil)
	c.out.close(tail)
}

// abort closes the connection at once.
func (c *conn) abort(reason string) {
	c.setReason(reason, nil)
	c.out.close(nil)
	c.cancel()
	c.raw.Close()
}

// serve is the reader goroutine: it runs the connection and cleans up.
func (c *conn) serve() {
	defer c.srv.wg.Done()
	c.raw.SetDeadline(c.dr.fixed)
	hctx, cancel := context.WithDeadline(c.ctx, c.dr.fixed)
	err := c.tc.HandshakeContext(hctx)
	cancel()
	if err != nil {
		reason := "tls-handshake"
		if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
			reason = "handshake-timeout"
		}
		c.setReason(reason, err)
		c.raw.Close()
		c.cancel()
		c.finish()
		return
	}
	c.raw.SetWriteDeadline(time.Time{})
	c.rd = xmltok.NewReader(c.tc, c.srv.cfg.Limits)
	c.srv.wg.Add(1)
	go func() {
		defer c.srv.wg.Done()
		c.writeLoop()
	}()
	c.readLoop()
	c.out.close(nil)
	<-c.writerDone
	c.finish()
}

// finish runs after the writer has ended (the socket is closed).
func (c *conn) finish() {
	if c.ackerUp {
		<-c.ackerDone
	}
	c.reasonMu.Lock()
	reason, err := c.reason, c.reasonErr
	c.reasonMu.Unlock()
	if reason == "" {
		reason = "unknown"
	}
	c.srv.m.CCSClosed.WithLabelValues(reason).Inc()
	if c.feed != nil {
		c.feed.Close()
	}
	c.srv.unregister(c)
	attrs := []any{"reason", reason, "duration", time.Since(c.start).Round(time.Millisecond)}
	if err != nil {
		attrs = append(attrs, "err", err)
	}
	c.log.Info("ccs connection closed", attrs...)
}

// readLoop reads frames, a batch per read, until the connection ends.
func (c *conn) readLoop() {
	for {
		f, err := c.rd.Next()
		if err != nil {
			c.readFailed(err)
			return
		}
		if !c.frame(f) {
			return
		}
		for {
			f, ok, err := c.rd.TryNext()
			if err != nil {
				c.readFailed(err)
				return
			}
			if !ok {
				break
			}
			if !c.frame(f) {
				return
			}
		}
	}
}

// readFailed turns a read error into the close reason and last bytes.
func (c *conn) readFailed(err error) {
	var xe *xmltok.Error
	switch {
	case errors.As(err, &xe):
		c.streamError(xe.Condition, xe.Reason, err)
	case errors.Is(err, os.ErrDeadlineExceeded):
		if c.neg.phase == phaseReady {
			c.streamErrorReason("connection-timeout", "idle", "idle")
		} else {
			c.streamErrorReason("connection-timeout", "negotiation too slow", "handshake-timeout")
		}
	case errors.Is(err, io.EOF):
		c.shutdown("eof", nil)
	default:
		c.setReason("read-error", err)
		c.out.close(nil)
	}
}

func (c *conn) streamError(condition, text string, err error) {
	out, _ := c.neg.streamError(c.nbuf[:0], condition, text)
	c.setReason(condition, err)
	c.shutdown(condition, out)
}

func (c *conn) streamErrorReason(condition, text, reason string) {
	out, _ := c.neg.streamError(c.nbuf[:0], condition, text)
	c.shutdown(reason, out)
}

// frame handles one frame and reports whether to keep reading.
func (c *conn) frame(f xmltok.Frame) bool {
	switch f.Kind {
	case xmltok.Stanza:
		return c.stanza(f.Raw)
	case xmltok.StreamStart:
		h, perr := xmpp.ParseStreamHeader(&c.tk, f.Raw)
		out, act := c.neg.header(c.nbuf[:0], h, perr)
		return c.act(out, act)
	case xmltok.StreamEnd:
		if c.neg.phase == phaseReady {
			c.win.waitEmpty(c.ctx)
		}
		out, act := c.neg.streamEnd(c.nbuf[:0])
		return c.act(out, act)
	}
	return true // whitespace keepalive
}

// stanza handles one top-level element: the hot path for bound messages,
// the negotiator for everything else.
func (c *conn) stanza(raw []byte) bool {
	c.srv.m.CCSStanzasIn.Inc()
	if err := c.st.Parse(&c.tk, raw); err != nil {
		var xe *xmltok.Error
		var se *xmpp.StreamError
		switch {
		case errors.As(err, &xe):
			c.streamError(xe.Condition, xe.Reason, err)
		case errors.As(err, &se):
			c.streamError(se.Condition, se.Text, err)
		default:
			c.streamError("bad-format", "", err)
		}
		return false
	}
	if c.st.Kind == xmpp.KindMessage && c.neg.phase == phaseReady {
		return c.message()
	}
	out, act := c.neg.stanza(c.nbuf[:0], &c.st)
	return c.act(out, act)
}

// act queues the negotiator's output and carries out its action.
func (c *conn) act(out []byte, a action) bool {
	c.nbuf = out[:0]
	switch a {
	case actClose:
		if r := c.neg.reason; strings.HasPrefix(r, "auth-") || r == "invalid-mechanism" || r == "sasl-aborted" {
			c.srv.m.CCSAuthFailures.Inc()
		}
		c.shutdown(c.neg.reason, out)
		return false
	case actAuth:
		if len(out) > 0 {
			c.reply(out)
		}
		return c.authenticate()
	case actRestart:
		c.reply(out)
		c.rd.Restart()
	case actBound:
		c.reply(out)
		return c.bind()
	default:
		if len(out) > 0 {
			c.reply(out)
		}
	}
	return true
}

// reply queues b for the writer, waiting while the outbound queue is full.
func (c *conn) reply(b []byte) {
	if !c.out.waitSpace(c.ctx) {
		return
	}
	if ob := c.out.lock(); ob != nil {
		ob.b = append(ob.b, b...)
	}
	c.out.unlock()
}

// authenticate asks the backend about the credentials the negotiator
// extracted and feeds the answer back.
func (c *conn) authenticate() bool {
	sender := c.neg.sender
	err := c.srv.cfg.Backend.Authenticate(c.ctx, sender, c.neg.password)
	if err == nil {
		c.sender = sender
		if !c.srv.register(c, sender) {
			c.sender = ""
			clear(c.neg.password)
			c.streamErrorReason("policy-violation", "too many connections for this sender", "too-many-connections")
			return false
		}
		c.log = c.log.With("sender", sender)
	} else if !errors.Is(err, ErrUnauthorized) {
		c.log.Warn("ccs authentication failed internally", "sender", sender, "err", err)
	}
	out, act := c.neg.authDone(c.nbuf[:0], err)
	return c.act(out, act)
}

// bind finishes negotiation: the bind result is already queued, so it is
// written before anything from the feed.
func (c *conn) bind() bool {
	c.jid = c.neg.jid
	c.dr.idleMode()
	c.raw.SetReadDeadline(time.Time{})
	draining := c.srv.markBound(c)
	feed, err := c.srv.cfg.Backend.Attach(c.ctx, c.sender, c.id, c.maxPending)
	if err != nil {
		c.setReason("attach-failed", err)
		c.streamErrorReason("internal-server-error", "", "attach-failed")
		return false
	}
	c.feed = feed
	if feed != nil {
		c.feedCh <- feed
	}
	c.ackerUp = true
	c.srv.wg.Add(1)
	go func() {
		defer c.srv.wg.Done()
		c.ackLoop()
	}()
	if draining {
		c.startDrain()
	}
	return true
}

// startDrain sends CONNECTION_DRAINING; from then on new downstream
// messages are NACKed and the connection closes once its windows are empty.
func (c *conn) startDrain() {
	c.drainOnce.Do(func() {
		js := gcm.AppendControlDraining(make([]byte, 0, 80))
		// The flag flips under the outbound lock, after which the control
		// message is queued: a CONNECTION_DRAINING NACK (queued by the
		// acker under the same lock) can only follow it.
		ob := c.out.lock()
		c.draining.Store(true)
		if ob != nil {
			ob.b = xmpp.AppendGCM(ob.b, xmpp.EnvelopeAnswer, "", js)
		}
		c.out.unlock()
		c.srv.m.CCSStanzasOut.Inc()
		c.checkDrained()
	})
}

// checkDrained closes a draining connection whose windows are empty.
func (c *conn) checkDrained() {
	if c.draining.Load() && c.win.len() == 0 && c.up.len() == 0 {
		c.shutdown("drained", xmpp.AppendStreamEnd(nil))
	}
}

// deadlineReader is what the TLS layer reads from: during negotiation every
// read has the fixed handshake deadline (set once); afterwards each read
// pushes the idle deadline forward. To keep the timer cheap the deadline is
// refreshed only when a sixteenth of IdleTimeout has passed, so a connection
// is closed after between 15/16 and 16/16 of IdleTimeout without bytes.
// It is used only by the reader goroutine (through tls.Conn.Read; the TLS
// handshake also writes through it).
type deadlineReader struct {
	c     net.Conn
	fixed time.Time // handshake deadline; zero once bound
	idle  time.Duration
	set   time.Time // when the idle deadline was last pushed
}

func (d *deadlineReader) Read(p []byte) (int, error) {
	if d.fixed.IsZero() {
		if now := time.Now(); now.Sub(d.set) > d.idle/16 {
			d.c.SetReadDeadline(now.Add(d.idle))
			d.set = now
		}
	}
	return d.c.Read(p)
}

func (d *deadlineReader) Write(p []byte) (int, error) { return d.c.Write(p) }

func (d *deadlineReader) idleMode() { d.fixed = time.Time{}; d.set = time.Time{} }

// The rest of net.Conn, for tls.Server.
func (d *deadlineReader) Close() error                       { return d.c.Close() }
func (d *deadlineReader) LocalAddr() net.Addr                { return d.c.LocalAddr() }
func (d *deadlineReader) RemoteAddr() net.Addr               { return d.c.RemoteAddr() }
func (d *deadlineReader) SetDeadline(t time.Time) error      { return d.c.SetDeadline(t) }
func (d *deadlineReader) SetReadDeadline(t time.Time) error  { return d.c.SetReadDeadline(t) }
func (d *deadlineReader) SetWriteDeadline(t time.Time) error { return d.c.SetWriteDeadline(t) }
