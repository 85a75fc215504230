package queue

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// Live routing and presence. A device's connection, wherever it is in the
// cluster, subscribes to live.<android id>. When a downstream publish is
// acknowledged by JetStream the queue republishes it there (core NATS, no
// storage) with its stream sequence, so a connected device gets it at once
// and an offline one costs a publish nobody receives. The subscription is
// the presence record: NATS routes the live message to the node that holds
// the device. Logging in publishes a kick on the same subject so an older
// connection of the same device, on any node, closes.
//
// All subscriptions of a Presence share one channel (ChanSubscribe), read by
// one dispatcher goroutine: 100k devices cost no goroutines and ~1 KB each
// (measured/jetstream.md).

// Live headers.
const (
	hdrSeq     = "Ccsd-Seq"
	hdrSubject = "Ccsd-Subject"
	hdrKick    = "Ccsd-Kick"
)

// Live is one downstream message pushed to a connected device.
type Live struct {
	Seq     uint64 // stream sequence; 0 for a time_to_live 0 message that was never stored
	Subject string // the subject it is stored under ("" when not stored)
	Record  []byte // gcm.AppendRecord bytes
}

// DeviceSink receives live traffic for one connected device. Methods are
// called from the dispatcher goroutine and must not block.
type DeviceSink interface {
	// Live delivers a stored or live-only message.
	Live(l Live)
	// Kicked reports that the device logged in on another connection.
	Kicked()
	// Resync reports that live messages for the device may have been lost
	// on the way (the dispatcher fell behind and NATS dropped some): the
	// connection must read the store for anything it has not delivered.
	Resync()
}

func liveSubject(androidID uint64) string {
	return "live." + strconv.FormatUint(androidID, 10)
}

// onStored is the downstream publisher's ack hook: it republishes every
// stored downstream message to its device's live subject.
func (q *Queue) onStored(subject string, seq uint64, data []byte) {
	// subject is down.<android id>.n or down.<android id>.c.<hash>.
	rest, ok := strings.CutPrefix(subject, "down.")
	if !ok {
		return
	}
	aid, _, _ := strings.Cut(rest, ".")
	if q.cfg.LocalPresence && !q.isOnline(aid) {
		return // offline: the device reads it from the store at login
	}
	h := nats.Header{hdrSeq: []string{strconv.FormatUint(seq, 10)}, hdrSubject: []string{subject}}
	_ = q.nc.PublishMsg(&nats.Msg{Subject: "live." + aid, Header: h, Data: data})
}

// PublishLive pushes a record that is not stored (time_to_live 0) to the
// device if it is connected now, anywhere in the cluster.
func (q *Queue) PublishLive(androidID uint64, record []byte) error {
	if q.cfg.LocalPresence && !q.isOnline(strconv.FormatUint(androidID, 10)) {
		return nil
	}
	if err := q.nc.Publish(liveSubject(androidID), record); err != nil {
		return fmt.Errorf("publishing live message: %w", err)
	}
	return nil
}

// isOnline reports whether a connection of the device is joined on this node.
func (q *Queue) isOnline(aid string) bool {
	q.onlineMu.RLock()
	n := q.online[aid]
	q.onlineMu.RUnlock()
	return n > 0
}

// markOnline counts a device connection joining (+1) or leaving (-1).
func (q *Queue) markOnline(aid string, delta int) {
	q.onlineMu.Lock()
	if n := q.online[aid] + delta; n > 0 {
		q.online[aid] = n
	} else {
		delete(q.online, aid)
	}
	q.onlineMu.Unlock()
}

// Presence tracks the devices connected to this node and dispatches their
// live traffic. Create it with NewPresence and run Run.
type Presence struct {
	q  *Queue
	ch chan *nats.Msg

	mu    sync.Mutex
	conns map[*nats.Subscription]*presenceEntry // guarded by mu
}

type presenceEntry struct {
	connID  string
	sink    DeviceSink
	dropped int // owned by Run: sub.Dropped() when last checked
}

// NewPresence returns a Presence whose dispatcher buffers up to buffer
// messages (zero means 65536).
func (q *Queue) NewPresence(buffer int) *Presence {
	if buffer <= 0 {
		buffer = 65536
	}
	return &Presence{q: q, ch: make(chan *nats.Msg, buffer), conns: make(map[*nats.Subscription]*presenceEntry)}
}

// Run dispatches live messages to their devices until ctx ends. NATS drops
// messages for a subscription whose channel is full (all of this node's
// device subscriptions share p.ch); when the channel has come close to full,
// Run looks for subscriptions that dropped messages once a second and tells
// their devices to read the store (Resync): the store is the buffer, and a
// dropped live message is only a late one.
func (p *Presence) Run(ctx context.Context) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	pressed := false // p.ch was at least 3/4 full since the last check
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			if pressed {
				pressed = false
				p.resyncDropped()
			}
		case m := <-p.ch:
			if len(p.ch) >= cap(p.ch)*3/4 {
				pressed = true
			}
			p.mu.Lock()
			e := p.conns[m.Sub]
			p.mu.Unlock()
			if e == nil {
				continue // left while the message was queued
			}
			if kick := m.Header.Get(hdrKick); kick != "" {
				if kick != e.connID {
					e.sink.Kicked()
				}
				continue
			}
			l := Live{Record: m.Data, Subject: m.Header.Get(hdrSubject)}
			if s := m.Header.Get(hdrSeq); s != "" {
				seq, err := strconv.ParseUint(s, 10, 64)
				if err != nil {
					continue
				}
				l.Seq = seq
			}
			e.sink.Live(l)
		}
	}
}

// resyncDropped tells every device whose subscription dropped messages
// since the last check to read the store.
func (p *Presence) resyncDropped() {
	var sinks []DeviceSink
	p.mu.Lock()
	for sub, e := range p.conns {
		if n, err := sub.Dropped(); err == nil && n != e.dropped {
			e.dropped = n
			sinks = append(sinks, e.sink)
		}
	}
	p.mu.Unlock()
	for _, s := range sinks {
		s.Resync()
	}
}

// Join makes this node the device's home: live messages for androidID go
// to sink until leave is called, and any other connection of the device is
// kicked.
func (p *Presence) Join(androidID uint64, connID string, sink DeviceSink) (leave func(), err error) {
	subj := liveSubject(androidID)
	sub, err := p.q.nc.ChanSubscribe(subj, p.ch)
	if err != nil {
		return nil, fmt.Errorf("subscribing %s: %w", subj, err)
	}
	p.mu.Lock()
	p.conns[sub] = &presenceEntry{connID: connID, sink: sink}
	p.mu.Unlock()
	aid := strconv.FormatUint(androidID, 10)
	// Marked online before the caller reads the backlog: a message whose
	// store completes after this is republished live; one stored before is
	// in the backlog.
	p.q.markOnline(aid, 1)
	kick := &nats.Msg{Subject: subj, Header: nats.Header{hdrKick: []string{connID}}}
	if err := p.q.nc.PublishMsg(kick); err != nil {
		p.q.markOnline(aid, -1)
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("publishing kick: %w", err)
	}
	// Make sure the subscription is known to the server (and so to the
	// cluster) before the caller reads the backlog: a message stored after
	// this point reaches the device live.
	if err := p.q.nc.Flush(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		p.q.markOnline(aid, -1)
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("flushing subscription: %w", err)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			p.q.markOnline(aid, -1)
			_ = sub.Unsubscribe()
			p.mu.Lock()
			delete(p.conns, sub)
			p.mu.Unlock()
		})
	}, nil
}
