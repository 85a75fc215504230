package deviceserver

import (
	"errors"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/ccsd/ccsd/internal/gcm"
	"github.com/ccsd/ccsd/internal/mcs"
	"github.com/ccsd/ccsd/internal/mcs/mcspb"
	"github.com/ccsd/ccsd/internal/router"
)

// Heartbeat rate limit: a ping every pingEvery on average, bursts of
// pingBurst (the limit is "more than 10 a second, sustained").
const (
	pingEvery = 100 * time.Millisecond
	pingBurst = 20
)

// readLoop reads and applies client packets until the connection ends,
// and returns why.
func (c *conn) readLoop() string {
	s := c.srv
	var acked []string
	for {
		if s.cfg.IdleTimeout > 0 {
			_ = c.nc.SetReadDeadline(time.Now().Add(s.cfg.IdleTimeout))
		}
		f, err := c.rd.Next()
		if err != nil {
			return c.readFailed(err)
		}
		m, err := mcs.Decode(f)
		if c.rd.Buffered() == 0 {
			c.rd.Release()
		}
		if err != nil {
			c.closeAndWait(reasonBadPayload)
			return reasonBadPayload
		}
		c.mu.Lock()
		acked, err = c.sess.Receive(acked[:0], m)
		if st, ok := statusOf(m); ok {
			idle := st&1 != 0
			_, canIdle := m.(*mcspb.HeartbeatPing)
			if !idle || canIdle {
				wasIdle := c.idle
				c.idle = idle
				if wasIdle && !idle {
					c.kickLocked() // release held messages
				}
			}
		}
		inCount := c.sess.LastStreamIDReceived()
		if _, up := m.(*mcspb.DataMessageStanza); up {
			// Hold the stamp below this packet from the moment it is counted:
			// a frame written before upstream() stores it must not
			// acknowledge it (invariant 1). upstream() clears it.
			c.upPending = inCount
		}
		c.mu.Unlock()
		if err != nil {
			c.closeAndWait(reasonBadPayload)
			return reasonBadPayload
		}
		if len(acked) > 0 {
			c.applyAcks(acked)
			clear(acked)
		}
		if r := c.handle(m, inCount); r != "" {
			return r
		}
	}
}

// readFailed maps a read error to a close reason, sending Close first for
// protocol errors.
func (c *conn) readFailed(err error) string {
	var fe *mcs.FrameError
	switch {
	case errors.As(err, &fe):
		r := reasonProtocol
		switch fe.Reason {
		case mcs.ReasonUnknownTag, mcs.ReasonTagNotAllowed:
			r = reasonBadTag
		case mcs.ReasonFrameTooLarge:
			r = reasonFrameSize
		}
		c.srv.log.Info("mcs protocol error", "conn", c.num, "android_id", c.aid, "err", err)
		c.closeAndWait(r)
		return r
	case errors.Is(err, io.EOF):
		return reasonEOF
	case errors.Is(err, os.ErrDeadlineExceeded):
		c.closeAndWait(reasonIdle)
		return reasonIdle
	case errors.Is(err, net.ErrClosed):
		return reasonServerClosed // closed by us; the first reason recorded wins
	default:
		return reasonReadError
	}
}

// statusOf returns the status field of a client packet, when present.
func statusOf(m proto.Message) (int64, bool) {
	var p *int64
	switch m := m.(type) {
	case *mcspb.HeartbeatPing:
		p = m.Status
	case *mcspb.HeartbeatAck:
		p = m.Status
	case *mcspb.IqStanza:
		p = m.Status
	case *mcspb.DataMessageStanza:
		p = m.Status
	}
	if p == nil {
		return 0, false
	}
	return *p, true
}

// handle acts on one client packet after its acknowledgements were applied.
// It returns a close reason to end the connection.
func (c *conn) handle(m proto.Message, inCount int32) string {
	switch m := m.(type) {
	case *mcspb.HeartbeatPing:
		if !c.allowPing() {
			c.srv.log.Info("mcs heartbeat flood", "conn", c.num, "android_id", c.aid)
			c.closeAndWait(reasonFlood)
			return reasonFlood
		}
		c.queueCtlWait(mcs.HeartbeatAck(0))
	case *mcspb.HeartbeatAck:
		// The answer to a server ping; its acknowledgements are applied.
	case *mcspb.IqStanza:
		if mcs.IsStreamAck(m) {
			c.mu.Lock()
			queued := c.ackQueued
			c.ackQueued = true
			c.mu.Unlock()
			if !queued {
				c.queueCtlWait(mcs.StreamAckIQ("", 0))
			}
		}
	case *mcspb.DataMessageStanza:
		c.upstream(m, inCount)
	case *mcspb.Close:
		return reasonClientClose
	case *mcspb.LoginRequest:
		c.closeAndWait(reasonProtocol) // one login per connection
		return reasonProtocol
	}
	return ""
}

// allowPing applies the heartbeat rate limit (a GCRA on Config.Now).
func (c *conn) allowPing() bool {
	now := c.srv.cfg.Now().UnixNano()
	tat := max(c.pingTAT, now) + int64(pingEvery)
	if tat-now > int64(pingEvery)*pingBurst {
		return false
	}
	c.pingTAT = tat
	return true
}

// queueCtlWait queues a control frame, first waiting while the control
// queue is full (the reader stops reading while the device does not read).
func (c *conn) queueCtlWait(m proto.Message) {
	c.mu.Lock()
	for len(c.ctl) >= ctlQueueMax && !c.dead {
		c.waitLocked()
	}
	if !c.dead {
		c.ctl = append(c.ctl, m)
		c.kickLocked()
	}
	c.mu.Unlock()
}

// applyAcks retires the messages the device acknowledged and emits their
// receipts. One packet can acknowledge a message twice: its
// last_stream_id_received and a SelectiveAck listing the same id (what
// client/device and others send); the second is ignored, not looked up in
// the store as a message of an earlier connection.
func (c *conn) applyAcks(pids []string) {
	s := c.srv
	nowMs := s.nowMs()
	var takenBuf [128]uint64
	taken := takenBuf[:0] // sequences taken from flights by this packet
	for _, pid := range pids {
		seq, ok := mcs.ParsePersistentID(pid)
		if !ok {
			continue // live-only or not ours: nothing to retire
		}
		c.mu.Lock()
		f, found := c.takeFlightLocked(seq)
		if found {
			c.kickLocked() // the window opened
		}
		c.mu.Unlock()
		if !found {
			if !slices.Contains(taken, seq) {
				c.ackUnknown(seq, nowMs)
			}
			continue
		}
		taken = append(taken, seq)
		s.be.Retire(seq)
		s.met.MCSAcked.Inc()
		if f.rc != nil {
			if err := s.be.Delivered(s.ctx, f.rc, f.cat, nowMs); err != nil {
				s.log.Warn("mcs delivery receipt", "android_id", c.aid, "message_id", f.rc.MessageID, "err", err)
			}
		}
	}
}

// takeFlightLocked removes the flight of seq.
func (c *conn) takeFlightLocked(seq uint64) (flight, bool) {
	for i, f := range c.flights {
		if f.seq == seq {
			copy(c.flights[i:], c.flights[i+1:])
			c.flights[len(c.flights)-1] = flight{}
			c.flights = c.flights[:len(c.flights)-1]
			if len(c.flights) == 0 && cap(c.flights) > 16 {
				c.flights = nil
			}
			return f, true
		}
	}
	return flight{}, false
}

// ackUnknown handles the acknowledgement of a message not in flight on this
// connection (delivered on an earlier one): it is retired once the store
// says it is this device's.
func (c *conn) ackUnknown(seq uint64, nowMs int64) {
	s := c.srv
	sd, err := s.be.StoredMessage(s.ctx, seq)
	if err != nil {
		return // gone already, or unreadable: nothing to do
	}
	if !strings.HasPrefix(sd.Subject, deviceSubjectPrefix(c.aid)) {
		s.log.Warn("mcs ack of another device's message", "android_id", c.aid, "seq", seq)
		return
	}
	c.mu.Lock()
	c.unholdLocked(seq)
	c.mu.Unlock()
	c.ackStored(&sd, nowMs)
}

// ackStored retires an acknowledged stored message and emits its receipt.
func (c *conn) ackStored(sd *storedDown, nowMs int64) {
	s := c.srv
	s.be.Retire(sd.Seq)
	s.met.MCSAcked.Inc()
	if !sd.Message.DeliveryReceipt {
		return
	}
	cat := ""
	if reg, err := s.be.Registration(s.ctx, sd.Message.To); err == nil {
		cat = reg.App
	}
	if err := s.be.Delivered(s.ctx, &sd.Message, cat, nowMs); err != nil {
		s.log.Warn("mcs delivery receipt", "android_id", c.aid, "message_id", sd.Message.MessageID, "err", err)
	}
}

// upstream takes an upstream message from the device (mcs.md §9): stored
// through the backend, then acknowledged by the stream id stamp and a
// StreamAck, or refused with a send_error message.
func (c *conn) upstream(m *mcspb.DataMessageStanza, inCount int32) {
	s := c.srv
	if m.GetCategory() == mcs.IdleCategory {
		c.mu.Lock()
		c.upPending = 0
		c.mu.Unlock()
		return // a reply to IdleNotification, which ccsd does not send
	}
	up := &router.DeviceUpstream{To: m.GetTo(), From: m.GetFrom(), RegID: m.GetRegId(),
		Category: m.GetCategory(), MessageID: m.GetId(), TTL: -1}
	if m.Ttl != nil {
		up.TTL = *m.Ttl
	}
	size := len(m.RawData)
	up.Data = make([]gcm.KV, 0, len(m.AppData))
	for _, kv := range m.AppData {
		up.Data = append(up.Data, gcm.KV{Key: kv.GetKey(), Value: kv.GetValue()})
		size += len(kv.GetKey()) + len(kv.GetValue())
	}
	// readLoop set upPending = inCount when it counted this packet; it is
	// cleared once the message is stored or refused.
	var err error
	if size > gcm.MaxDataBytes {
		err = router.ErrUpstreamTooBig
	} else {
		err = s.be.Upstream(s.ctx, c.aid, up)
	}
	if err == nil {
		c.mu.Lock()
		c.upPending = 0
		c.mu.Unlock()
		s.met.MCSUpstreamIn.Inc()
		c.mu.Lock()
		queued := c.ackQueued
		c.ackQueued = true
		c.mu.Unlock()
		if !queued {
			c.queueCtlWait(mcs.StreamAckIQ("", 0))
		} else {
			c.mu.Lock()
			c.kickLocked()
			c.mu.Unlock()
		}
		return
	}
	code := upstreamErrorCode(err)
	s.log.Info("mcs upstream refused", "android_id", c.aid, "message_id", up.MessageID, "error", code, "err", err)
	// The send_error goes out while the stamp still stays below the refused
	// packet, so the device learns of the refusal before any frame
	// acknowledges its stream id; the writer releases the stamp when it has
	// written it, and the reader waits for that before reading on.
	se := c.sendError(up, code)
	c.mu.Lock()
	c.upRefusal = se
	c.mu.Unlock()
	c.queueCtlWait(se)
	c.mu.Lock()
	for c.upRefusal == se && !c.dead {
		c.waitLocked()
	}
	c.upRefusal = nil
	c.upPending = 0
	c.mu.Unlock()
}

// upstreamErrorCode is the send_error code of an Upstream error.
func upstreamErrorCode(err error) string {
	switch {
	case errors.Is(err, router.ErrUpstreamSender):
		return "InvalidSender"
	case errors.Is(err, router.ErrUpstreamTooBig):
		return "MessageTooBig"
	case errors.Is(err, router.ErrUpstreamInvalid):
		return "InvalidParameters"
	default:
		return "ServiceUnavailable"
	}
}
