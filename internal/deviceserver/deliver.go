package deviceserver

import (
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/ccsd/ccsd/internal/gcm"
	"github.com/ccsd/ccsd/internal/queue"
)

// storedDown is a message read from the store, or a live message with its
// sequence (0 when it was never stored).
type storedDown = queue.StoredDown

// pumpData delivers data messages while the window has room, up to
// pumpBatch of them, and returns early when control frames are waiting.
// Backend failures come back as storeError.
func (c *conn) pumpData(wrote *bool) error {
	for range pumpBatch {
		c.mu.Lock()
		stop := c.dead || c.closing || len(c.ctl) > 0 || c.sess.WindowFull()
		c.mu.Unlock()
		if stop {
			return nil
		}
		sd, ok, err := c.next()
		if err != nil {
			return storeError{err}
		}
		if !ok {
			return nil
		}
		*wrote = true
		if err := c.deliver(&sd); err != nil {
			return err
		}
	}
	return nil
}

// next returns the next message to deliver: held messages once the device
// is active, then the batch read from the store, then (once the store is
// caught up) live messages. Expired, duplicate and held messages are dealt
// with on the way. ok is false when there is nothing to deliver now.
func (c *conn) next() (sd storedDown, ok bool, err error) {
	p := &c.p
	for {
		c.mu.Lock()
		if !c.idle && len(c.held) > 0 {
			h := c.held[0]
			c.held[0] = held{}
			c.held = c.held[1:]
			if h.msg != nil {
				c.heldMem--
			}
			if len(c.held) == 0 {
				c.held = nil
			}
			c.mu.Unlock()
			if sd, ok := c.unhold(h); ok {
				return sd, true, nil
			}
			continue
		}
		if c.liveLost {
			c.liveLost = false
			if !p.reading {
				p.reading = true
				p.readFrom = max(c.lostFrom, c.lastRead+1)
			}
			c.lostFrom = 0
		}
		c.mu.Unlock()

		if len(p.batch) > 0 {
			sd = p.batch[0]
			p.batch[0] = storedDown{}
			p.batch = p.batch[1:]
			login := p.loginBatch
			if len(p.batch) == 0 {
				p.batch, p.loginBatch = nil, false
			}
			if c.consider(&sd, true, login) {
				return sd, true, nil
			}
			continue
		}
		if p.reading {
			if err := c.readPage(); err != nil {
				return sd, false, err
			}
			continue
		}

		c.mu.Lock()
		if len(c.liveQ) == 0 {
			c.liveQ = nil
			c.mu.Unlock()
			return sd, false, nil
		}
		l := c.liveQ[0]
		c.liveQ[0] = queue.Live{}
		c.liveQ = c.liveQ[1:]
		dup := l.Seq != 0 && l.Seq <= c.lastRead
		c.mu.Unlock()
		if dup {
			continue
		}
		sd = storedDown{Seq: l.Seq, Subject: l.Subject}
		if err := gcm.DecodeRecord(l.Record, &sd.Message); err != nil {
			c.srv.log.Warn("mcs undecodable live record", "android_id", c.aid, "seq", l.Seq, "err", err)
			if l.Seq != 0 {
				c.srv.be.Retire(l.Seq)
			}
			continue
		}
		if c.consider(&sd, false, false) {
			return sd, true, nil
		}
	}
}

// readPage reads the next page of the store in store mode.
func (c *conn) readPage() error {
	p := &c.p
	// A re-read follows dropped live messages, so the page is not empty:
	// one batched request instead of one per message.
	sds, err := c.srv.be.BacklogBatch(c.srv.ctx, c.aid, p.readFrom, storePage)
	if err != nil {
		return fmt.Errorf("reading backlog: %w", err)
	}
	if n := len(sds); n > 0 {
		last := sds[n-1].Seq
		p.readFrom = last + 1
		c.mu.Lock()
		c.lastRead = max(c.lastRead, last)
		c.mu.Unlock()
	}
	if len(sds) < storePage {
		p.reading = false
	}
	p.batch, p.loginBatch = sds, false
	if len(p.batch) == 0 {
		p.batch = nil
	}
	return nil
}

// expired reports whether m's time_to_live has run out at nowMs.
func expired(m *gcm.Message, nowMs int64) bool {
	return m.Accepted+int64(m.TTL)*1000 < nowMs
}

// consider decides what to do with a candidate message: false when it was
// retired (expired), is a duplicate, or was held; true to deliver it.
// fromStore marks messages read from the store, login the login backlog
// (delivered even while the device is idle).
func (c *conn) consider(sd *storedDown, fromStore, login bool) bool {
	s := c.srv
	if sd.Seq != 0 && expired(&sd.Message, s.nowMs()) {
		s.be.Retire(sd.Seq)
		s.met.QueueExpired.Inc()
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if fromStore && sd.Seq != 0 && c.knownLocked(sd.Seq) {
		return false // in flight or held already (live messages out of order)
	}
	m := &sd.Message
	if login || !c.idle || !m.DelayWhileIdle || m.Priority == gcm.PriorityHigh {
		return true
	}
	if sd.Seq == 0 {
		return false // time_to_live 0 and the device is idle: never
	}
	if len(c.held) >= heldMax {
		return true // too many held: deliver even while idle
	}
	h := held{seq: sd.Seq}
	if c.heldMem < heldInMemory {
		cp := sd.Message
		h.msg = &cp
		c.heldMem++
	}
	c.held = append(c.held, h)
	return false
}

// knownLocked reports whether seq is in flight or held on this connection.
func (c *conn) knownLocked(seq uint64) bool {
	for _, f := range c.flights {
		if f.seq == seq {
			return true
		}
	}
	for _, h := range c.held {
		if h.seq == seq {
			return true
		}
	}
	return false
}

// unholdLocked forgets a held message (acknowledged from an earlier
// connection).
func (c *conn) unholdLocked(seq uint64) {
	for i, h := range c.held {
		if h.seq == seq {
			if h.msg != nil {
				c.heldMem--
			}
			c.held = slices.Delete(c.held, i, i+1)
			return
		}
	}
}

// unhold returns a released held message, read back from the store when
// only its sequence was kept; false when it is gone or expired.
func (c *conn) unhold(h held) (storedDown, bool) {
	s := c.srv
	var sd storedDown
	if h.msg != nil {
		sd = storedDown{Seq: h.seq, Message: *h.msg}
	} else {
		var err error
		if sd, err = s.be.StoredMessage(s.ctx, h.seq); err != nil {
			if !errors.Is(err, queue.ErrNotFound) {
				s.log.Warn("mcs reading held message", "android_id", c.aid, "seq", h.seq, "err", err)
			}
			return sd, false
		}
	}
	if expired(&sd.Message, s.nowMs()) {
		s.be.Retire(sd.Seq)
		s.met.QueueExpired.Inc()
		return sd, false
	}
	return sd, true
}

// dropCount is what the 100-message limit dropped for one registration.
type dropCount struct {
	sender string
	n      int
	first  uint64
}

// scan reads the device's whole backlog at login, applying the login's
// acknowledgements and GCM's storage limits (package doc), and leaves the
// messages to deliver in the batch. Memory stays bounded: at most
// maxStoredNonC+1 non-collapsible and maxCollapse collapsible messages are
// kept decoded; beyond the limit only sequence numbers are.
func (c *conn) scan() error {
	s, p := c.srv, &c.p
	nowMs := s.nowMs()
	var keep, cks []storedDown
	var drop []uint64
	dropped := map[string]*dropCount{}
	overflow := false
	countDrop := func(sd *storedDown) {
		drop = append(drop, sd.Seq)
		d := dropped[sd.Message.To]
		if d == nil {
			d = &dropCount{sender: sd.Message.SenderID, first: sd.Seq}
			dropped[sd.Message.To] = d
		}
		d.n++
	}
	var last uint64
	from := uint64(1)
	for page := 0; ; page++ {
		// Most logins find nothing: the first read is a single direct get
		// (~15 µs when empty, measured/jetstream.md); once there is a
		// backlog, pages are batched requests.
		var sds []storedDown
		var err error
		limit := storePage
		if page == 0 {
			limit = 1
			sds, err = s.be.Backlog(s.ctx, c.aid, from, limit)
		} else {
			sds, err = s.be.BacklogBatch(s.ctx, c.aid, from, limit)
		}
		if err != nil {
			return fmt.Errorf("reading backlog: %w", err)
		}
		for i := range sds {
			sd := &sds[i]
			last, from = sd.Seq, sd.Seq+1
			if _, ok := p.loginAcks[sd.Seq]; ok {
				c.ackStored(sd, nowMs)
				continue
			}
			if expired(&sd.Message, nowMs) {
				s.be.Retire(sd.Seq)
				s.met.QueueExpired.Inc()
				continue
			}
			if sd.Message.CollapseKey != "" {
				cks = keepCollapsed(cks, *sd, s.be.Retire)
				continue
			}
			if overflow {
				countDrop(sd)
				continue
			}
			keep = append(keep, *sd)
			if len(keep) > maxStoredNonC {
				overflow = true
				for j := range keep {
					countDrop(&keep[j])
				}
				keep = nil
			}
		}
		if len(sds) < limit {
			break
		}
	}
	p.loginAcks = nil
	c.mu.Lock()
	c.lastRead = max(c.lastRead, last)
	c.mu.Unlock()

	if overflow {
		// Store the markers first: a crash in between must not lose the
		// news that messages were dropped.
		regs := make([]string, 0, len(dropped))
		for reg := range dropped {
			regs = append(regs, reg)
		}
		slices.Sort(regs)
		for _, reg := range regs {
			d := dropped[reg]
			m := deletedMessages(reg, d, nowMs)
			if err := s.be.StoreDown(s.ctx, queue.DownSubject(c.aid, reg, nil), false, m); err != nil {
				return fmt.Errorf("storing deleted_messages: %w", err)
			}
		}
		for _, seq := range drop {
			s.be.Retire(seq)
		}
		s.log.Info("mcs backlog over the limit: messages dropped", "android_id", c.aid, "dropped", len(drop))
	}
	batch := append(keep, cks...)
	slices.SortFunc(batch, func(a, b storedDown) int {
		switch {
		case a.Seq < b.Seq:
			return -1
		case a.Seq > b.Seq:
			return 1
		}
		return 0
	})
	if len(batch) == 0 {
		batch = nil
	}
	p.batch, p.loginBatch = batch, true
	return nil
}

// keepCollapsed adds a collapsible message to cks, the newest message of at
// most maxCollapse collapse subjects, retiring what falls out.
func keepCollapsed(cks []storedDown, sd storedDown, retire func(uint64)) []storedDown {
	for i := range cks {
		if cks[i].Subject == sd.Subject {
			retire(cks[i].Seq) // JetStream keeps one per subject; a race can leave two
			cks = slices.Delete(cks, i, i+1)
			break
		}
	}
	if len(cks) >= maxCollapse {
		retire(cks[0].Seq)
		cks = slices.Delete(cks, 0, 1)
	}
	return append(cks, sd)
}

// deletedMessages is the marker stored for a registration whose messages
// the 100-message limit dropped.
func deletedMessages(reg string, d *dropCount, nowMs int64) *gcm.Message {
	data := make([]byte, 0, 64)
	data = append(data, `{"message_type":"deleted_messages","total_deleted":"`...)
	data = strconv.AppendInt(data, int64(d.n), 10)
	data = append(data, `"}`...)
	return &gcm.Message{
		SenderID:  d.sender,
		To:        reg,
		MessageID: "deleted_messages:" + strconv.FormatUint(d.first, 10),
		TTL:       gcm.MaxTTL,
		Accepted:  nowMs,
		Data:      data,
	}
}

// deviceSubjectPrefix is the prefix of every subject stored for androidID.
func deviceSubjectPrefix(androidID uint64) string {
	f := queue.DeviceFilter(androidID)
	return f[:len(f)-1] // "down.<id>.>" without ">"
}
