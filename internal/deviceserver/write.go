package deviceserver

import (
	"fmt"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/ccsd/ccsd/internal/mcs"
	"github.com/ccsd/ccsd/internal/mcs/mcspb"
)

// bufPool holds write buffers: a connection borrows one for a single frame
// and gives it back at once, so idle connections hold none.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// maxPooledBuf is the largest buffer put back into bufPool.
const maxPooledBuf = 64 << 10

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

func putBuf(p *[]byte, b []byte) {
	if cap(b) > maxPooledBuf {
		return
	}
	*p = b[:0]
	bufPool.Put(p)
}

// writeLoop is one writer run: it writes control frames and data messages
// while there are any and the connection lives, then ends. kickLocked
// starts the next run when work arrives.
func (c *conn) writeLoop() {
	wrote := false
	defer func() {
		if wrote {
			_ = c.nc.SetWriteDeadline(time.Time{})
		}
	}()
	for {
		c.mu.Lock()
		busy := c.p.busy()
		if !c.hasWorkLocked(busy) {
			c.pumpBusy = busy
			c.writing = false
			c.mu.Unlock()
			return
		}
		if c.closing {
			reason := c.closeReason
			c.mu.Unlock()
			wrote = true
			_ = c.writeFrame(mcs.TagClose, mcs.Close())
			c.closeConn(reason, true)
			c.mu.Lock()
			c.writing = false
			c.mu.Unlock()
			return
		}
		if !c.p.scanned {
			// The backlog is read before the LoginResponse goes out: what
			// was stored before the device saw it is the login backlog
			// (delivered even while idle), the rest is live.
			c.mu.Unlock()
			if err := c.scan(); err != nil {
				c.srv.log.Warn("mcs reading backlog", "android_id", c.aid, "err", err)
				c.closeConn(reasonStore, false)
				c.mu.Lock()
				c.writing = false
				c.mu.Unlock()
				return
			}
			c.p.scanned = true
			continue
		}
		ctl := c.ctl
		c.ctl = nil
		c.ackQueued = false
		c.signalLocked()
		c.mu.Unlock()

		var err error
		for i, m := range ctl {
			wrote = true
			if err = c.writeCtl(m); err != nil {
				break
			}
			ctl[i] = nil
		}
		if err == nil {
			err = c.pumpData(&wrote)
		}
		if err != nil {
			reason := reasonWriteError
			if se, ok := err.(storeError); ok {
				reason = reasonStore
				c.srv.log.Warn("mcs delivery stopped", "android_id", c.aid, "err", se.err)
			}
			c.closeConn(reason, false)
			c.mu.Lock()
			c.writing = false
			c.mu.Unlock()
			return
		}
	}
}

// storeError is a backend failure of the writer: the connection closes and
// the device gets its messages after it reconnects.
type storeError struct{ err error }

func (e storeError) Error() string { return "store: " + e.err.Error() }

// stampLocked is the last_stream_id_received to put on a packet: the
// receive count, minus the upstream message being stored if there is one
// (package doc, "Stream ids").
func (c *conn) stampLocked() int32 {
	if c.upPending > 0 {
		return c.upPending - 1
	}
	return c.sess.LastStreamIDReceived()
}

// writeCtl writes one control frame: stamped, recorded in the session,
// encoded and written. A DataMessageStanza here is a send_error: it is not
// counted in the window (its acknowledgement would do nothing).
func (c *conn) writeCtl(m proto.Message) error {
	tag, ok := mcs.TagOf(m)
	if !ok {
		return fmt.Errorf("writing %T: not a frame message", m)
	}
	c.mu.Lock()
	stamp := c.stampLocked()
	if dm, ok := m.(*mcspb.DataMessageStanza); ok {
		c.sess.Sent()
		dm.LastStreamIdReceived = proto.Int32(stamp)
		if m == c.upRefusal {
			// Stamped below the refused upstream packet; once this is on
			// the wire, later frames may acknowledge it.
			defer c.refusalWritten(m)
		}
	} else {
		_, _ = c.sess.Prepare(m) // only data messages can be refused
		restamp(m, stamp)
	}
	c.mu.Unlock()
	return c.writeFrame(tag, m)
}

// refusalWritten releases the stamp held for a refused upstream packet
// after its send_error frame was written, and wakes the reader.
func (c *conn) refusalWritten(m proto.Message) {
	c.mu.Lock()
	if c.upRefusal == m {
		c.upRefusal = nil
		c.upPending = 0
		c.signalLocked()
	}
	c.mu.Unlock()
}

// restamp overwrites the last_stream_id_received Session.Prepare put on m.
func restamp(m proto.Message, v int32) {
	var p *int32
	switch m := m.(type) {
	case *mcspb.HeartbeatPing:
		p = m.LastStreamIdReceived
	case *mcspb.HeartbeatAck:
		p = m.LastStreamIdReceived
	case *mcspb.IqStanza:
		p = m.LastStreamIdReceived
	case *mcspb.LoginResponse:
		p = m.LastStreamIdReceived
	case *mcspb.DataMessageStanza:
		p = m.LastStreamIdReceived
	}
	if p != nil {
		*p = v
	}
}

// writeFrame encodes m into a pooled buffer and writes it with one Write
// call, the version byte first on the connection's first frame.
func (c *conn) writeFrame(tag byte, m proto.Message) error {
	buf := getBuf()
	var b []byte
	var err error
	if c.p.versionSent {
		b, err = mcs.AppendFrame((*buf)[:0], tag, m)
	} else {
		b, err = mcs.AppendVersionedFrame((*buf)[:0], tag, m)
	}
	if err != nil {
		putBuf(buf, b)
		return err
	}
	c.p.versionSent = true
	now := time.Now()
	_ = c.nc.SetWriteDeadline(now.Add(c.srv.cfg.WriteTimeout))
	_, err = c.nc.Write(b)
	putBuf(buf, b)
	c.lastWrite.Store(now.UnixNano())
	if err != nil {
		return fmt.Errorf("writing %s: %w", mcs.TagName(tag), err)
	}
	return nil
}
