package xmppserver

import (
	"context"
	"sync"

	"github.com/ccsd/ccsd/internal/gcm"
	"github.com/ccsd/ccsd/internal/router"
)

// slot is one unanswered downstream message. id and to are copies (their
// backing arrays are reused from message to message).
type slot struct {
	ticket router.Ticket
	id, to []byte
	code   gcm.ErrorCode // non-empty: answer with this NACK, do not wait the ticket
	desc   string
}

// maxKeptID is the largest id or target buffer a slot keeps for reuse; a
// slot that held a longer one lets it go, so the window's memory stays
// near MaxPending × 2 × maxKeptID however long the ids a client sends.
const maxKeptID = 512

// window is the fixed-size, in-order queue of unanswered downstream messages
// of one connection. The reader goroutine pushes (after waitRoom); the acker
// goroutine takes from the front and releases what it answered. Slots in
// [head, head+n) belong to the acker once pushed; the slot at head+n belongs
// to the reader.
type window struct {
	mu    sync.Mutex    // guards head, n
	slots []slot        // fixed at init
	head  int           // index of the oldest unanswered slot
	n     int           // unanswered slots
	room  chan struct{} // cap 1: signalled when slots are released
	ready chan struct{} // cap 1: signalled when a slot is pushed
}

func (w *window) init(size int) {
	w.slots = make([]slot, size)
	w.room = make(chan struct{}, 1)
	w.ready = make(chan struct{}, 1)
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// len returns the number of unanswered messages.
func (w *window) len() int {
	w.mu.Lock()
	n := w.n
	w.mu.Unlock()
	return n
}

// waitRoom blocks until a slot is free or ctx ends; it reports whether a
// slot is free. Only the reader pushes, so room stays until it pushes.
func (w *window) waitRoom(ctx context.Context) bool {
	for {
		w.mu.Lock()
		full := w.n == len(w.slots)
		w.mu.Unlock()
		if !full {
			return true
		}
		select {
		case <-w.room:
		case <-ctx.Done():
			return false
		}
	}
}

// waitEmpty blocks until every pushed message is answered or ctx ends.
func (w *window) waitEmpty(ctx context.Context) bool {
	for {
		if w.len() == 0 {
			return true
		}
		select {
		case <-w.room:
		case <-ctx.Done():
			return false
		}
	}
}

// next returns the slot the reader fills next. Call only after waitRoom.
func (w *window) next() *slot {
	w.mu.Lock()
	s := &w.slots[(w.head+w.n)%len(w.slots)]
	w.mu.Unlock()
	return s
}

// push hands the slot returned by next to the acker.
func (w *window) push() {
	w.mu.Lock()
	w.n++
	w.mu.Unlock()
	signal(w.ready)
}

// take waits until at least one slot is unanswered and returns the index
// of the oldest and how many (at most max) the acker may answer now.
func (w *window) take(ctx context.Context, max int) (first, k int, ok bool) {
	for {
		w.mu.Lock()
		first, k = w.head, w.n
		w.mu.Unlock()
		if k > 0 {
			return first, min(k, max), true
		}
		select {
		case <-w.ready:
		case <-ctx.Done():
			return 0, 0, false
		}
	}
}

// release frees the k oldest slots after they were answered and returns
// how many stay unanswered.
func (w *window) release(k int) int {
	w.mu.Lock()
	for i := 0; i < k; i++ {
		s := &w.slots[(w.head+i)%len(w.slots)]
		s.ticket = router.Ticket{}
		s.code, s.desc = "", ""
		if cap(s.id) > maxKeptID {
			s.id = nil
		}
		if cap(s.to) > maxKeptID {
			s.to = nil
		}
	}
	w.head = (w.head + k) % len(w.slots)
	w.n -= k
	n := w.n
	w.mu.Unlock()
	signal(w.room)
	return n
}

// inflight is the set of upstream messages and receipts pushed on one
// connection and not yet ACKed. The writer goroutine adds, the reader
// goroutine removes.
type inflight struct {
	mu  sync.Mutex
	ids map[string]string // message_id → message_id (the stored string, for Feed.Ack)
	key []byte            // reader-owned scratch for the "dr2:" lookup
}

func (f *inflight) init(size int) { f.ids = make(map[string]string, size) }

func (f *inflight) len() int {
	f.mu.Lock()
	n := len(f.ids)
	f.mu.Unlock()
	return n
}

func (f *inflight) add(id string) {
	f.mu.Lock()
	f.ids[id] = id
	f.mu.Unlock()
}

// remove finds id (or "dr2:"+id, for a receipt ACKed with the stripped id),
// removes it and returns the stored id and the count left.
func (f *inflight) remove(id []byte) (string, int, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.ids[string(id)]
	if !ok {
		f.key = append(append(f.key[:0], gcm.ReceiptPrefix...), id...)
		s, ok = f.ids[string(f.key)]
	}
	if !ok {
		return "", len(f.ids), false
	}
	delete(f.ids, s)
	return s, len(f.ids), true
}
