package xmppserver

import (
	"github.com/ccsd/ccsd/internal/gcm"
	"github.com/ccsd/ccsd/internal/router"
	"github.com/ccsd/ccsd/internal/xmpp"
)

// ackBatch is the most answers the acker takes from the window at once.
const ackBatch = 64

// message handles a <message> on a bound connection: the hot path. It
// reports whether to keep reading.
func (c *conn) message() bool {
	if c.out.isClosing() {
		return false
	}
	st := &c.st
	if !st.HasGCM {
		c.messageError("missing gcm element")
		return true
	}
	c.js = append(c.js[:0], st.GCM...)
	if err := gcm.DecodeInbound(c.js, &c.in); err != nil {
		de, ok := err.(*gcm.DecodeError)
		switch {
		case !ok:
			c.messageError(err.Error())
		case de.StanzaError:
			c.messageError(de.Description)
		case de.Code == gcm.BadAck:
			c.badAck(de.To, de.MessageID, de.Description)
		default:
			return c.enqueueNack(de.To, de.MessageID, de.Code, de.Description)
		}
		return true
	}
	switch c.in.Kind {
	case gcm.InboundAck:
		c.ackUpstream()
		return true
	case gcm.InboundSend:
		return c.send()
	}
	c.messageError("unsupported message_type")
	return true
}

// send hands a downstream message to the backend and queues its ticket.
// It blocks while the window is full (the window policy).
func (c *conn) send() bool {
	if h := c.srv.testWindowFull; h != nil && c.win.len() == len(c.win.slots) {
		h()
	}
	if !c.win.waitRoom(c.ctx) {
		return false
	}
	if c.draining.Load() {
		return c.enqueueNack(c.in.To, c.in.MessageID, gcm.ConnectionDraining, "connection is draining; send on another connection")
	}
	t := c.srv.cfg.Backend.Send(c.ctx, c.sender, &c.in)
	s := c.win.next()
	s.ticket = t
	s.id = append(s.id[:0], c.in.MessageID...)
	s.to = append(s.to[:0], c.in.To...)
	c.win.push()
	return true
}

// enqueueNack queues a NACK in order behind the pending messages.
func (c *conn) enqueueNack(to, id []byte, code gcm.ErrorCode, desc string) bool {
	if !c.win.waitRoom(c.ctx) {
		return false
	}
	s := c.win.next()
	s.ticket = router.Ticket{}
	s.code, s.desc = code, desc
	s.id = append(s.id[:0], id...)
	s.to = append(s.to[:0], to...)
	c.win.push()
	return true
}

// ackUpstream matches the app server's ACK against the upstream messages in
// flight on this connection.
func (c *conn) ackUpstream() {
	id, left, ok := c.up.remove(c.in.MessageID)
	if !ok {
		c.badAck(c.in.To, c.in.MessageID, "unknown message_id on this connection")
		return
	}
	c.srv.m.CCSUpstreamAcks.Inc()
	if c.feed != nil {
		if err := c.feed.Ack(id); err != nil {
			c.log.Debug("ccs upstream ack not recorded", "message_id", id, "err", err)
		}
	}
	signal(c.out.kick) // the writer may have room for upstream again
	if left == 0 {
		c.checkDrained()
	}
}

// badAck answers a bad ACK with a BAD_ACK NACK at once (ACKs are not in the
// window).
func (c *conn) badAck(to, id []byte, desc string) {
	c.srv.m.CCSBadAcks.Inc()
	c.srv.countNack(gcm.BadAck)
	c.rbuf = gcm.AppendNack(c.rbuf[:0], to, id, gcm.BadAck, desc)
	c.queueAnswer(c.rbuf)
}

// messageError answers the current message with a bad-request stanza error
// echoing its id and gcm child (protocol.md §5.4).
func (c *conn) messageError(text string) {
	c.serr = xmpp.StanzaError{Type: "modify", Condition: "bad-request", Code: 400, Text: text}
	if !c.out.waitSpace(c.ctx) {
		return
	}
	if ob := c.out.lock(); ob != nil {
		ob.b = xmpp.AppendMessageError(ob.b, c.st.ID, c.jid, c.st.GCMRaw, &c.serr)
	}
	c.out.unlock()
	c.srv.m.CCSStanzasOut.Inc()
}

// queueAnswer queues an EnvelopeAnswer stanza around js.
func (c *conn) queueAnswer(js []byte) {
	if !c.out.waitSpace(c.ctx) {
		return
	}
	if ob := c.out.lock(); ob != nil {
		ob.b = xmpp.AppendGCM(ob.b, xmpp.EnvelopeAnswer, "", js)
	}
	c.out.unlock()
	c.srv.m.CCSStanzasOut.Inc()
}

// ackLoop is the acker goroutine: it answers pending downstream messages
// in order, waiting each ticket, until the connection's context ends.
func (c *conn) ackLoop() {
	defer close(c.ackerDone)
	for {
		first, k, ok := c.win.take(c.ctx, ackBatch)
		if !ok {
			return
		}
		c.answer(first, k)
	}
}

// answer waits and answers k slots from first, then releases them.
func (c *conn) answer(first, k int) {
	size := len(c.win.slots)
	for i := 0; i < k; i++ {
		s := &c.win.slots[(first+i)%size]
		var res router.Result
		if s.code != "" {
			res = router.Result{Code: s.code, Description: s.desc}
		} else {
			res = s.ticket.Wait(c.ctx)
		}
		if res.OK() {
			var canonical []byte
			if res.Canonical != "" {
				canonical = []byte(res.Canonical)
			}
			c.ajs = gcm.AppendAck(c.ajs[:0], s.to, s.id, canonical)
			c.srv.m.CCSAcks.Inc()
		} else {
			c.ajs = gcm.AppendNack(c.ajs[:0], s.to, s.id, res.Code, res.Description)
			c.srv.countNack(res.Code)
		}
		c.queueAnswer(c.ajs)
	}
	if c.win.release(k) == 0 {
		c.checkDrained()
	}
}
