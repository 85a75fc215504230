package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ccsd/ccsd/internal/gcm"
)

// MaxStoredPerDevice is the default cap on the non-collapsible messages
// JetStream keeps for one device (MaxMsgsPerSubject of the downstream stream,
// with DiscardNewPerSubject: the store refuses the next one instead of
// dropping an old one). GCM's own limit, 100, is applied when the backlog is
// read (all are dropped and the device gets deleted_messages); this cap
// bounds the disk a device that never comes back, or one that acks slower
// than its senders send, can use.
const MaxStoredPerDevice = 1000

// ReadDeviceFrom returns the messages stored for androidID with a stream
// sequence of at least from, oldest first, at most limit of them (limit <= 0:
// all). It reads with direct gets by subject, one request per message, which
// costs ~15 µs for an empty backlog.
func (q *Queue) ReadDeviceFrom(ctx context.Context, androidID uint64, from uint64, limit int) ([]StoredDown, error) {
	filter := DeviceFilter(androidID)
	var out []StoredDown
	seq := max(from, 1)
	for limit <= 0 || len(out) < limit {
		m, err := q.down.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(filter))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("reading backlog of %d: %w", androidID, err)
		}
		seq = m.Sequence + 1
		sd := StoredDown{Seq: m.Sequence, Subject: m.Subject}
		if err := gcm.DecodeRecord(m.Data, &sd.Message); err != nil {
			q.log.Warn("dropping undecodable downstream record", "seq", m.Sequence, "err", err)
			q.Retire(m.Sequence)
			continue
		}
		out = append(out, sd)
	}
	return out, nil
}

// GetDown returns the stored message with sequence seq, or ErrNotFound.
func (q *Queue) GetDown(ctx context.Context, seq uint64) (StoredDown, error) {
	m, err := q.down.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return StoredDown{}, ErrNotFound
	}
	if err != nil {
		return StoredDown{}, fmt.Errorf("reading message %d: %w", seq, err)
	}
	sd := StoredDown{Seq: m.Sequence, Subject: m.Subject}
	if err := gcm.DecodeRecord(m.Data, &sd.Message); err != nil {
		return StoredDown{}, fmt.Errorf("decoding message %d: %w", seq, err)
	}
	return sd, nil
}

// Retire deletes a delivered (or expired, or dropped) downstream message
// from the store. Deletes are pipelined through JetStream's API by the
// retirer goroutine; Retire blocks only when its queue is full. A message
// retired twice, or already gone, is not an error.
func (q *Queue) Retire(seq uint64) {
	q.retireOnce.Do(q.startRetirer)
	q.retireCh <- seq
	q.met.QueueDeleted.Inc()
}

// startRetirer starts the goroutine that pipelines deletes. It ends when
// Close closes the queue.
func (q *Queue) startRetirer() {
	q.retireCh = make(chan uint64, 4096)
	q.retireDone = make(chan struct{})
	go q.retirer()
}

// retirer sends delete requests with at most deleteWindow unanswered.
func (q *Queue) retirer() {
	defer close(q.retireDone)
	const deleteWindow = 256
	subj := "$JS.API.STREAM.MSG.DELETE." + StreamDown
	inbox := nats.NewInbox()
	replies := make(chan *nats.Msg, deleteWindow)
	sub, err := q.nc.ChanSubscribe(inbox, replies)
	if err != nil {
		q.log.Error("retirer cannot subscribe; deletes fall back to one at a time", "err", err)
	}
	inflight := 0
	for seq := range q.retireCh {
		if sub == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = q.down.DeleteMsg(ctx, seq)
			cancel()
			continue
		}
		for inflight >= deleteWindow {
			select {
			case <-replies:
				inflight--
			case <-time.After(5 * time.Second):
				inflight = 0 // lost replies: the deletes were sent; move on
			}
		}
		body, _ := json.Marshal(struct {
			Seq     uint64 `json:"seq"`
			NoErase bool   `json:"no_erase"`
		}{seq, true})
		if err := q.nc.PublishRequest(subj, inbox, body); err != nil {
			q.log.Warn("deleting downstream message", "seq", seq, "err", err)
			continue
		}
		inflight++
	drain:
		for {
			select {
			case <-replies:
				inflight--
			default:
				break drain
			}
		}
	}
	if sub != nil {
		_ = sub.Unsubscribe()
	}
}

// Close stops the queue's background work after pending deletes are sent.
func (q *Queue) Close() {
	q.closeOnce.Do(func() {
		close(q.sweepStop)
		<-q.sweepDone
		q.pub.close()
		q.retireOnce.Do(q.startRetirer)
		close(q.retireCh)
		<-q.retireDone
		_ = q.nc.Flush()
	})
}
