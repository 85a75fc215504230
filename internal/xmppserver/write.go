package xmppserver

import (
	"context"
	"errors"
	"os"
	"sync"
	"time"

	"github.com/ccsd/ccsd/internal/xmpp"
)

// outBuf is a pooled write buffer. A connection holds one only while bytes
// are pending, so an idle connection costs no buffer.
type outBuf struct{ b []byte }

const (
	outBufSize    = 16 << 10 // initial capacity of a pooled buffer
	outBufKeepMax = 1 << 20  // buffers grown past this are not pooled again
)

var outPool = sync.Pool{New: func() any { return &outBuf{b: make([]byte, 0, outBufSize)} }}

// outbound is what the reader and acker goroutines (and the server, for
// control and closing bytes) queue for the writer goroutine. It is bounded:
// producers call waitSpace first, which blocks while max bytes are queued.
type outbound struct {
	mu      sync.Mutex    // guards buf, closing, tail
	buf     *outBuf       // nil when nothing is pending
	closing bool          // set once: nothing more is queued; the writer closes after flushing
	kick    chan struct{} // cap 1: wakes the writer
	space   chan struct{} // cap 1: the writer flushed a batch
	max     int           // soft limit on queued bytes (immutable)
}

func (o *outbound) init(max int) {
	o.kick = make(chan struct{}, 1)
	o.space = make(chan struct{}, 1)
	o.max = max
}

// waitSpace blocks while the queue holds max bytes or more, until the writer
// flushes or ctx ends. The writer's write deadline bounds the wait.
func (o *outbound) waitSpace(ctx context.Context) bool {
	for {
		o.mu.Lock()
		full := o.buf != nil && len(o.buf.b) >= o.max && !o.closing
		o.mu.Unlock()
		if !full {
			return true
		}
		select {
		case <-o.space:
		case <-ctx.Done():
			return false
		}
	}
}

// lock returns the pending buffer to append to, borrowing one if none is
// pending, or nil when the connection is closing (the bytes are dropped).
// The caller appends and then calls unlock.
func (o *outbound) lock() *outBuf {
	o.mu.Lock()
	if o.closing {
		return nil
	}
	if o.buf == nil {
		o.buf = outPool.Get().(*outBuf)
	}
	return o.buf
}

// unlock releases the lock taken by lock and wakes the writer.
func (o *outbound) unlock() {
	o.mu.Unlock()
	signal(o.kick)
}

// queue appends b to the pending bytes (used off the hot path).
func (o *outbound) queue(b []byte) {
	if ob := o.lock(); ob != nil {
		ob.b = append(ob.b, b...)
	}
	o.unlock()
}

// close queues tail as the last bytes and marks the queue closing. It
// reports whether this call closed it.
func (o *outbound) close(tail []byte) bool {
	o.mu.Lock()
	if o.closing {
		o.mu.Unlock()
		return false
	}
	if len(tail) > 0 {
		if o.buf == nil {
			o.buf = outPool.Get().(*outBuf)
		}
		o.buf.b = append(o.buf.b, tail...)
	}
	o.closing = true
	o.mu.Unlock()
	signal(o.kick)
	return true
}

// take hands the pending bytes to the writer.
func (o *outbound) take() (*outBuf, bool) {
	o.mu.Lock()
	b, closing := o.buf, o.closing
	o.buf = nil
	o.mu.Unlock()
	return b, closing
}

func putOutBuf(b *outBuf) {
	if b == nil || cap(b.b) > outBufKeepMax {
		return
	}
	b.b = b.b[:0]
	outPool.Put(b)
}

// writeLoop is the connection's only writer. It waits for queued bytes or
// an upstream item the window has room for, takes everything ready, writes
// it once with a deadline, and blocks again. It exits after writing the
// closing bytes, on a write error, or when the connection's context ends;
// on exit it closes the socket and cancels the context, which ends the
// reader and acker goroutines.
func (c *conn) writeLoop() {
	defer close(c.writerDone)
	defer c.cancel()
	defer c.raw.Close()
	var feedC <-chan Upstream
	for {
		var upC <-chan Upstream
		if feedC != nil && !c.draining.Load() && c.up.len() < c.maxPending {
			upC = feedC
		}
		var first *Upstream
		var u Upstream
		select {
		case <-c.out.kick:
		case f := <-c.feedCh:
			feedC = f.C()
			continue
		case v, ok := <-upC:
			if !ok {
				feedC = nil
				continue
			}
			u, first = v, &u
		case <-c.ctx.Done():
			return
		}
		ob, closing := c.out.take()
		// Nothing may follow the closing bytes; an item taken but not
		// written is not in flight, so the feed redelivers it.
		if first != nil && !closing {
			ob = c.appendUpstream(ob, first)
			ob = c.drainFeed(ob, feedC)
		}
		if ob == nil || len(ob.b) == 0 {
			putOutBuf(ob)
			if closing {
				c.closeTLS()
				return
			}
			continue
		}
		c.raw.SetWriteDeadline(time.Now().Add(c.srv.cfg.WriteTimeout))
		_, err := c.tc.Write(ob.b)
		putOutBuf(ob)
		signal(c.out.space)
		if err != nil {
			reason := "write-error"
			if errors.Is(err, os.ErrDeadlineExceeded) {
				reason = "slow-consumer"
			}
			c.setReason(reason, err)
			return
		}
		if closing {
			c.closeTLS()
			return
		}
	}
}

// closeTLS ends the TLS session politely (close_notify) within the write
// timeout.
func (c *conn) closeTLS() {
	c.raw.SetWriteDeadline(time.Now().Add(c.srv.cfg.WriteTimeout))
	c.tc.Close()
}

// drainFeed appends the upstream items already waiting in feedC while the
// window has room.
func (c *conn) drainFeed(ob *outBuf, feedC <-chan Upstream) *outBuf {
	for len(ob.b) < c.out.max && c.up.len() < c.maxPending {
		select {
		case u, ok := <-feedC:
			if !ok {
				return ob
			}
			ob = c.appendUpstream(ob, &u)
		default:
			return ob
		}
	}
	return ob
}

// appendUpstream records u as in flight and appends its stanza.
func (c *conn) appendUpstream(ob *outBuf, u *Upstream) *outBuf {
	if ob == nil {
		ob = outPool.Get().(*outBuf)
	}
	c.up.add(u.ID)
	ob.b = xmpp.AppendGCM(ob.b, xmpp.EnvelopeNormal, c.jid, u.JSON)
	c.srv.m.CCSUpstreamOut.Inc()
	c.srv.m.CCSStanzasOut.Inc()
	return ob
}

// isClosing reports whether the queue was closed.
func (o *outbound) isClosing() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.closing
}
