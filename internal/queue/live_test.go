package queue

import (
	"context"
	"testing"
)

type recSink struct {
	live   chan Live
	resync chan struct{}
}

func (s *recSink) Live(l Live) {
	select {
	case s.live <- l:
	default:
	}
}
func (s *recSink) Kicked() {}
func (s *recSink) Resync() {
	select {
	case s.resync <- struct{}{}:
	default:
	}
}

// TestPresenceResyncsAfterDrops: when NATS drops live messages because the
// shared channel is full, the device is told to read the store.
func TestPresenceResyncsAfterDrops(t *testing.T) {
	q, node := open(t, t.TempDir())
	defer node.Close()
	p := q.NewPresence(1)
	sink := &recSink{live: make(chan Live, 100), resync: make(chan struct{}, 1)}
	leave, err := p.Join(77, "c1", sink)
	if err != nil {
		t.Fatal(err)
	}
	defer leave()
	// Run is not dispatching yet: the one-slot channel fills (with the kick
	// of Join) and NATS drops what follows.
	for range 10 {
		if err := q.PublishLive(77, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	<-sink.resync
	cancel()
	<-done
}
