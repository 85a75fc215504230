package ccs

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ccsd/ccsd/internal/xmltok"
	"github.com/ccsd/ccsd/internal/xmpp"
)

// errConnGone means the connection stopped taking sends; SendAsync retries
// on the next one.
var errConnGone = errors.New("ccs: connection gone")

// call is one unanswered message.
type call struct {
	msg  *Message
	done func(Response)
}

func (k call) answer(r Response) {
	if k.done != nil {
		k.done(r)
	}
}

// conn is one CCS connection: negotiated synchronously by dialConn, then
// run by one reader goroutine (readLoop: answers, upstream, control) and
// one writer goroutine (writeLoop: batches everything queued into one
// write).
type conn struct {
	// immutable after dialConn
	cl   *Client
	raw  net.Conn
	tc   *tls.Conn
	jid  string
	sem  chan struct{} // one token per unanswered message (the window)
	done chan struct{} // closed when the reader ends

	// owned by the reader goroutine (and dialConn before it)
	rd  *xmltok.Reader
	tk  xmltok.Tokenizer
	st  xmpp.Stanza
	p   payload
	rjs []byte

	mu       sync.Mutex // guards pending, dead
	pending  map[string]call
	dead     bool        // the reader ended: no more answers
	draining atomic.Bool // CONNECTION_DRAINING received

	omu     sync.Mutex // guards obuf, js, closing
	obuf    []byte     // queued bytes
	js      []byte     // payload encode scratch
	closing bool       // </stream:stream> queued
	kick    chan struct{}
	wdone   chan struct{} // closed when the writer ends

	sent int // owned by the writer goroutine: ping ids
}

// dialConn dials and negotiates one connection (TLS, stream, PLAIN,
// restart, bind, session). The goroutines are started by start.
func (cl *Client) dialConn(ctx context.Context) (*conn, error) {
	cfg := &cl.cfg
	deadline := time.Now().Add(cfg.HandshakeTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("ccs: dialing %s: %w", cfg.Addr, err)
	}
	raw.SetDeadline(deadline)
	tc := tls.Client(raw, cfg.TLSConfig)
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("ccs: tls handshake with %s: %w", cfg.Addr, err)
	}
	c := &conn{
		cl:      cl,
		raw:     raw,
		tc:      tc,
		sem:     make(chan struct{}, cfg.MaxPending),
		done:    make(chan struct{}),
		pending: make(map[string]call, cfg.MaxPending),
		kick:    make(chan struct{}, 1),
		wdone:   make(chan struct{}),
		rd:      xmltok.NewReader(tc, cfg.Limits),
	}
	if err := c.negotiate(); err != nil {
		raw.Close()
		return nil, err
	}
	raw.SetDeadline(time.Time{})
	return c, nil
}

// negotiate runs the client side of the session negotiation.
func (c *conn) negotiate() error {
	cfg := &c.cl.cfg
	var b []byte
	write := func() error {
		_, err := c.tc.Write(b)
		b = b[:0]
		if err != nil {
			return fmt.Errorf("ccs: writing negotiation: %w", err)
		}
		return nil
	}
	// Stream and SASL.
	b = xmpp.AppendClientStreamHeader(b, cfg.Domain)
	if err := write(); err != nil {
		return err
	}
	if err := c.expectHeader(); err != nil {
		return err
	}
	if _, err := c.expect(xmpp.KindFeatures); err != nil {
		return err
	}
	plain := false
	for _, m := range c.st.Mechanisms {
		plain = plain || string(m) == "PLAIN"
	}
	if !plain {
		return errors.New("ccs: server does not offer SASL PLAIN")
	}
	b = xmpp.AppendAuthPlain(b, "", cfg.SenderID+"@"+cfg.Domain, cfg.APIKey)
	if err := write(); err != nil {
		return err
	}
	st, err := c.expect(xmpp.KindSuccess, xmpp.KindFailure)
	if err != nil {
		return err
	}
	if st.Kind == xmpp.KindFailure {
		return fmt.Errorf("%w: %s", ErrAuth, st.ChildLocal)
	}
	// Restart, bind, session.
	c.rd.Restart()
	b = xmpp.AppendClientStreamHeader(b, cfg.Domain)
	if err := write(); err != nil {
		return err
	}
	if err := c.expectHeader(); err != nil {
		return err
	}
	if _, err := c.expect(xmpp.KindFeatures); err != nil {
		return err
	}
	session := c.st.FeatureSession
	b = xmpp.AppendBindRequest(b, "bind1", cfg.Resource)
	if err := write(); err != nil {
		return err
	}
	if st, err = c.expectIQ("bind1"); err != nil {
		return err
	}
	c.jid = string(st.BindJID)
	if session {
		b = xmpp.AppendSessionRequest(b, "sess1")
		if err := write(); err != nil {
			return err
		}
		if _, err := c.expectIQ("sess1"); err != nil {
			return err
		}
	}
	return nil
}

// nextStanza returns the next stanza (or header), skipping whitespace.
func (c *conn) nextFrame() (xmltok.Frame, error) {
	for {
		f, err := c.rd.Next()
		if err != nil {
			return f, fmt.Errorf("ccs: reading: %w", err)
		}
		switch f.Kind {
		case xmltok.Whitespace:
			continue
		case xmltok.StreamEnd:
			return f, errors.New("ccs: server closed the stream")
		}
		return f, nil
	}
}

func (c *conn) expectHeader() error {
	f, err := c.nextFrame()
	if err != nil {
		return err
	}
	if f.Kind != xmltok.StreamStart {
		return errors.New("ccs: expected a stream header")
	}
	if _, err := xmpp.ParseStreamHeader(&c.tk, f.Raw); err != nil {
		return fmt.Errorf("ccs: stream header: %w", err)
	}
	return nil
}

// expect reads the next stanza and checks its kind.
func (c *conn) expect(kinds ...xmpp.StanzaKind) (*xmpp.Stanza, error) {
	f, err := c.nextFrame()
	if err != nil {
		return nil, err
	}
	if f.Kind != xmltok.Stanza {
		return nil, errors.New("ccs: unexpected stream header")
	}
	if err := c.st.Parse(&c.tk, f.Raw); err != nil {
		return nil, fmt.Errorf("ccs: parsing: %w", err)
	}
	if c.st.Kind == xmpp.KindStreamError {
		return nil, fmt.Errorf("ccs: stream error %s: %s", c.st.ChildLocal, c.st.Text)
	}
	for _, k := range kinds {
		if c.st.Kind == k {
			return &c.st, nil
		}
	}
	return nil, fmt.Errorf("ccs: unexpected <%s> during negotiation", c.st.Local)
}

// expectIQ reads until the IQ answer with id.
func (c *conn) expectIQ(id string) (*xmpp.Stanza, error) {
	for {
		st, err := c.expect(xmpp.KindIQ, xmpp.KindPresence, xmpp.KindMessage)
		if err != nil {
			return nil, err
		}
		if st.Kind != xmpp.KindIQ || string(st.ID) != id {
			continue
		}
		if string(st.Type) != "result" {
			return nil, fmt.Errorf("ccs: iq %s answered %s: %s", id, st.Type, st.ChildLocal)
		}
		return st, nil
	}
}

// start runs the reader and writer goroutines.
func (c *conn) start() {
	c.cl.wg.Add(2)
	go func() {
		defer c.cl.wg.Done()
		c.writeLoop()
	}()
	go func() {
		defer c.cl.wg.Done()
		c.readLoop()
	}()
}

// usable reports whether new sends may go to c.
func (c *conn) usable() bool {
	if c.draining.Load() {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.dead
}

// send takes a window slot, records k and queues the stanza.
func (c *conn) send(ctx context.Context, k call) error {
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-c.done:
		return errConnGone
	}
	id := k.msg.MessageID
	c.mu.Lock()
	if c.dead || c.draining.Load() {
		c.mu.Unlock()
		<-c.sem
		return errConnGone
	}
	if _, dup := c.pending[id]; dup {
		c.mu.Unlock()
		<-c.sem
		return fmt.Errorf("ccs: message_id %q is already pending", id)
	}
	c.pending[id] = k
	c.mu.Unlock()
	c.omu.Lock()
	c.js = appendMessage(c.js[:0], k.msg)
	c.obuf = xmpp.AppendClientGCM(c.obuf, c.js)
	c.omu.Unlock()
	signal(c.kick)
	return nil
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// queue appends raw bytes for the writer.
func (c *conn) queue(b []byte) {
	c.omu.Lock()
	if !c.closing {
		c.obuf = append(c.obuf, b...)
	}
	c.omu.Unlock()
	signal(c.kick)
}

// endStream queues </stream:stream>; the server answers what is pending
// and closes.
func (c *conn) endStream() {
	c.omu.Lock()
	if !c.closing {
		c.obuf = xmpp.AppendStreamEnd(c.obuf)
		c.closing = true
	}
	c.omu.Unlock()
	signal(c.kick)
}

// writeLoop writes everything queued in one write per wake-up, and pings.
// It ends after writing </stream:stream>, on a write error (closing the
// socket) or when the reader ended.
func (c *conn) writeLoop() {
	defer close(c.wdone)
	var tick <-chan time.Time
	if iv := c.cl.cfg.PingInterval; iv > 0 {
		t := time.NewTicker(iv)
		defer t.Stop()
		tick = t.C
	}
	var spare []byte
	for {
		select {
		case <-c.kick:
		case <-tick:
			c.sent++
			c.queue(xmpp.AppendPing(nil, "p"+strconv.Itoa(c.sent), c.cl.cfg.Domain))
			continue
		case <-c.done:
			return
		}
		c.omu.Lock()
		b := c.obuf
		c.obuf = spare[:0]
		closing := c.closing
		c.omu.Unlock()
		if len(b) > 0 {
			c.raw.SetWriteDeadline(time.Now().Add(c.cl.cfg.WriteTimeout))
			if _, err := c.tc.Write(b); err != nil {
				c.raw.Close()
				return
			}
		}
		spare = b
		if closing {
			return
		}
	}
}

// readLoop reads answers and server messages until the stream ends.
func (c *conn) readLoop() {
	defer c.finish()
	for {
		f, err := c.rd.Next()
		for err == nil {
			if !c.frame(f) {
				return
			}
			var ok bool
			f, ok, err = c.rd.TryNext()
			if !ok && err == nil {
				break
			}
		}
		if err != nil {
			return
		}
	}
}

// frame handles one frame; false ends the connection.
func (c *conn) frame(f xmltok.Frame) bool {
	switch f.Kind {
	case xmltok.StreamEnd:
		c.endStream()
		return false
	case xmltok.Stanza:
	default:
		return true
	}
	if err := c.st.Parse(&c.tk, f.Raw); err != nil {
		c.cl.log.Warn("ccs: bad stanza from server", "err", err)
		return false
	}
	switch c.st.Kind {
	case xmpp.KindMessage:
		if string(c.st.Type) == "error" {
			c.stanzaError()
			return true
		}
		if c.st.HasGCM {
			c.payload()
		}
	case xmpp.KindIQ:
		if string(c.st.Type) == "get" && string(c.st.ChildNS) == xmpp.NSPing {
			c.queue(xmpp.AppendIQResult(nil, c.st.ID, "", ""))
		}
	case xmpp.KindStreamError:
		c.cl.log.Warn("ccs: stream error from server", "condition", string(c.st.ChildLocal), "text", string(c.st.Text))
		return false
	}
	return true
}

// payload dispatches one server JSON payload.
func (c *conn) payload() {
	p := &c.p
	if err := parsePayload(c.st.GCM, p); err != nil {
		c.cl.log.Warn("ccs: bad json from server", "err", err)
		return
	}
	switch string(p.messageType) {
	case "ack", "nack":
		c.answered(p)
	case "control":
		ct := p.str(fControlType, p.controlType)
		if ct == "CONNECTION_DRAINING" {
			c.draining.Store(true)
			c.cl.draining(c)
		}
		if c.cl.cfg.OnControl != nil {
			c.cl.cfg.OnControl(ct)
		}
	case "receipt":
		r := &Receipt{
			MessageID: p.str(fMessageID, p.messageID),
			From:      p.str(fFrom, p.from),
			Category:  p.str(fCategory, p.category),
			Data:      dataMap(p.data),
		}
		r.OriginalMessageID = r.Data["original_message_id"]
		r.Status = r.Data["message_status"]
		r.DeviceRegistrationID = r.Data["device_registration_id"]
		r.SentTimestamp = r.Data["message_sent_timestamp"]
		var err error
		if h := c.cl.cfg.OnReceipt; h != nil {
			err = h(r)
		}
		if err == nil {
			c.ack(r.From, r.MessageID)
		}
	case "":
		u := &Upstream{
			From:      p.str(fFrom, p.from),
			Category:  p.str(fCategory, p.category),
			MessageID: p.str(fMessageID, p.messageID),
			Data:      dataMap(p.data),
			TTL:       -1,
		}
		if p.hasTTL {
			u.TTL = p.ttl
		}
		var err error
		if h := c.cl.cfg.OnUpstream; h != nil {
			err = h(u)
		}
		if err == nil {
			c.ack(u.From, u.MessageID)
		}
	}
}

// ack queues the ACK of an upstream message or receipt on this connection.
func (c *conn) ack(to, id string) {
	c.omu.Lock()
	if !c.closing {
		c.rjs = appendAck(c.rjs[:0], to, id)
		c.obuf = xmpp.AppendClientGCM(c.obuf, c.rjs)
	}
	c.omu.Unlock()
	signal(c.kick)
}

// answered matches an ACK or NACK to its pending message.
func (c *conn) answered(p *payload) {
	id := p.messageID
	if p.esc&(1<<fMessageID) != 0 {
		id = []byte(unescapeJSON(id))
	}
	c.mu.Lock()
	k, ok := c.pending[string(id)]
	if ok {
		delete(c.pending, string(id))
	}
	c.mu.Unlock()
	if !ok {
		return
	}
	<-c.sem
	r := Response{MessageID: k.msg.MessageID, From: k.msg.To}
	if p.esc&(1<<fFrom) != 0 || string(p.from) != k.msg.To { // usually the target itself: no copy
		r.From = p.str(fFrom, p.from)
	}
	if len(p.errCode) > 0 {
		r.Error = p.str(fError, p.errCode)
		r.Description = p.str(fDesc, p.desc)
	}
	if len(p.regID) > 0 {
		r.RegistrationID = p.str(fRegID, p.regID)
	}
	if r.Error == "CONNECTION_DRAINING" {
		c.cl.queueResend(k)
		return
	}
	k.answer(r)
}

// StanzaError is the Response.Err of a message the server refused with an
// XMPP stanza error (protocol.md §5.4).
type StanzaError struct {
	Condition, Text string
}

func (e *StanzaError) Error() string { return "ccs: stanza error " + e.Condition + ": " + e.Text }

// stanzaError matches a stanza error to a pending message by the
// message_id of the echoed payload, when it has one.
func (c *conn) stanzaError() {
	cond, text := string(c.st.ChildLocal), string(c.st.Text)
	if !c.st.HasGCM || parsePayload(c.st.GCM, &c.p) != nil || len(c.p.messageID) == 0 {
		c.cl.log.Warn("ccs: stanza error from server", "condition", cond, "text", text)
		return
	}
	id := c.p.str(fMessageID, c.p.messageID)
	c.mu.Lock()
	k, ok := c.pending[id]
	delete(c.pending, id)
	c.mu.Unlock()
	if !ok {
		return
	}
	<-c.sem
	k.answer(Response{MessageID: id, Err: &StanzaError{Condition: cond, Text: text}})
}

// finish runs when the reader ends: the socket closes and every pending
// message is answered with ErrConnectionLost.
func (c *conn) finish() {
	c.mu.Lock()
	c.dead = true
	pending := c.pending
	c.pending = nil
	c.mu.Unlock()
	close(c.done)
	<-c.wdone
	c.raw.Close()
	c.cl.gone(c)
	// A draining server closes once its window is empty; messages that
	// crossed the CONNECTION_DRAINING control message on the wire were
	// never read by it, so they go to the new connection. Otherwise the
	// caller decides (they may have been stored).
	drained := c.draining.Load()
	for _, k := range pending {
		<-c.sem
		if drained {
			c.cl.queueResend(k)
			continue
		}
		k.answer(Response{MessageID: k.msg.MessageID, Err: ErrConnectionLost})
	}
}
