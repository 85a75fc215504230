package router

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/ccsd/ccsd/internal/queue"
)

// Upstream is one server-originated message for an app server (an upstream
// message or a receipt): ID is its message_id, JSON the CCS payload.
type Upstream struct {
	ID   string
	JSON []byte
}

// Feed is one CCS connection's share of its sender's upstream messages and
// receipts. C is read by the connection's writer, Ack is called by its
// reader, Close once when the connection has ended.
type Feed interface {
	C() <-chan Upstream
	Ack(id string) error
	Close()
}

// ErrUnknownAck is returned by Feed.Ack for an id not in flight on that
// connection (the CCS endpoint answers BAD_ACK).
var ErrUnknownAck = errors.New("no such upstream message in flight on this connection")

// fetchWait is how long one fetch waits for upstream messages; it bounds
// how long a closed feed's goroutine lives.
const fetchWait = time.Second

// Attach gives a bound CCS connection its share of the sender's upstream
// messages: at most window un-ACKed at a time.
func (r *Router) Attach(ctx context.Context, senderID, connID string, window int) (Feed, error) {
	cons, err := r.q.UpstreamConsumer(ctx, senderID)
	if err != nil {
		return nil, err
	}
	fctx, cancel := context.WithCancel(context.Background())
	f := &upFeed{
		cons: cons, window: window, ch: make(chan Upstream, window),
		inflight: make(map[string]*queue.UpMsg), room: make(chan struct{}, 1),
		cancel: cancel, done: make(chan struct{}), log: r.log.With("conn", connID, "sender", senderID),
	}
	go f.run(fctx)
	return f, nil
}

// upFeed pulls from the sender's durable consumer within the window.
type upFeed struct {
	// immutable after Attach
	cons   *queue.UpConsumer
	window int
	ch     chan Upstream // buffered to window: run never blocks on a full window
	room   chan struct{} // signalled by Ack
	cancel context.CancelFunc
	done   chan struct{} // closed when run returns
	log    interface {
		Warn(msg string, args ...any)
	}

	mu       sync.Mutex
	inflight map[string]*queue.UpMsg // guarded by mu: fetched, not yet ACKed
	closed   bool                    // guarded by mu
}

func (f *upFeed) C() <-chan Upstream { return f.ch }

// run fetches while the window has room, until Close. It owns f.ch and
// closes it on the way out.
func (f *upFeed) run(ctx context.Context) {
	defer close(f.done)
	defer close(f.ch)
	for ctx.Err() == nil {
		f.mu.Lock()
		free := f.window - len(f.inflight)
		f.mu.Unlock()
		if free <= 0 {
			select {
			case <-f.room:
				continue
			case <-ctx.Done():
				return
			}
		}
		err := f.cons.Fetch(ctx, free, fetchWait, f.deliver)
		if err != nil && ctx.Err() == nil {
			f.log.Warn("fetching upstream", "err", err)
			select {
			case <-time.After(fetchWait):
			case <-ctx.Done():
			}
		}
	}
}

// deliver puts one fetched message in flight and hands it to the
// connection. f.ch has room: in-flight messages never exceed the window.
func (f *upFeed) deliver(m *queue.UpMsg) {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		_ = m.Nak()
		return
	}
	if old := f.inflight[m.ID]; old != nil && old.Seq != m.Seq {
		// Another message with the same message_id (two devices chose the
		// same id): the app server's ACK could not tell them apart on this
		// connection, so it waits for a later fetch, here or elsewhere.
		f.mu.Unlock()
		_ = m.NakLater(time.Second)
		return
	}
	f.inflight[m.ID] = m // new, or a redelivery (after AckWait) of the one in flight
	f.mu.Unlock()
	f.ch <- Upstream{ID: m.ID, JSON: m.Payload}
}

// Ack retires id if it is in flight on this connection.
func (f *upFeed) Ack(id string) error {
	f.mu.Lock()
	m := f.inflight[id]
	delete(f.inflight, id)
	f.mu.Unlock()
	if m == nil {
		return ErrUnknownAck
	}
	select {
	case f.room <- struct{}{}:
	default:
	}
	return m.Ack()
}

// Close stops fetching and hands every un-ACKed message back for
// redelivery at once.
func (f *upFeed) Close() {
	f.cancel()
	f.mu.Lock()
	f.closed = true
	left := f.inflight
	f.inflight = nil
	f.mu.Unlock()
	for _, m := range left {
		_ = m.Nak()
	}
	<-f.done
}
