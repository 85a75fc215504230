package deviceserver

import (
	"sync"
	"testing"

	"github.com/ccsd/ccsd/internal/queue"
)

// dropSink loses every live message, as NATS does for a subscription whose
// channel is full; the test then delivers the Resync the presence
// dispatcher sends in that case.
type dropSink struct {
	queue.DeviceSink
	mu      sync.Mutex
	dropped int
	got     chan struct{}
}

func (d *dropSink) Live(queue.Live) {
	d.mu.Lock()
	d.dropped++
	d.mu.Unlock()
	d.got <- struct{}{}
}

type dropBackend struct {
	Backend
	sinks chan *dropSink
}

func (b *dropBackend) Join(androidID uint64, connID string, sink queue.DeviceSink) (func(), error) {
	ds := &dropSink{DeviceSink: sink, got: make(chan struct{}, 16)}
	b.sinks <- ds
	return b.Backend.Join(androidID, connID, ds)
}

// TestResyncAfterDroppedLive: a live message lost on the way is delivered
// from the store once the connection is told to resync.
func TestResyncAfterDroppedLive(t *testing.T) {
	db := &dropBackend{sinks: make(chan *dropSink, 1)}
	f := newFixture(t, fixtureOpts{backend: func(b Backend) Backend { db.Backend = b; return db }})
	c := f.login()
	sink := <-db.sinks
	f.send(msg("lost-1"))
	<-sink.got // the live copy was dropped
	sink.Resync()
	if got := c.data().GetId(); got != "lost-1" {
		t.Fatalf("after Resync got message %q, want lost-1", got)
	}
}
