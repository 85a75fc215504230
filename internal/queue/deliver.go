package queue

import (
	"context"
	"errors"
	"fmt"
	"strconv"
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

// MaxDeviceBatch is the most messages one ReadDeviceBatch call returns.
const MaxDeviceBatch = 256

// ReadDeviceBatch is ReadDeviceFrom in one request: a batched direct get
// ({"seq":from,"next_by_subj":filter,"batch":limit} on
// $JS.API.DIRECT.GET.<stream>) whose replies are read until the 204 EOB
// status. limit is clamped to 1..MaxDeviceBatch. It costs more than
// ReadDeviceFrom for an empty backlog (measured/jetstream.md: ~74-216 µs
// against ~15 µs) and less for any page of several messages.
func (q *Queue) ReadDeviceBatch(ctx context.Context, androidID uint64, from uint64, limit int) ([]StoredDown, error) {
	limit = min(max(limit, 1), MaxDeviceBatch)
	filter := DeviceFilter(androidID)
	// One reply per message plus the EOB status; a full channel would drop
	// replies (slow consumer), so it holds them all.
	replies := make(chan *nats.Msg, limit+1)
	inbox := nats.NewInbox()
	sub, err := q.nc.ChanSubscribe(inbox, replies)
	if err != nil {
		return nil, fmt.Errorf("reading backlog of %d: subscribing: %w", androidID, err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	body := make([]byte, 0, 96)
	body = append(body, `{"seq":`...)
	body = strconv.AppendUint(body, max(from, 1), 10)
	body = append(body, `,"next_by_subj":`...)
	body = strconv.AppendQuote(body, filter)
	body = append(body, `,"batch":`...)
	body = strconv.AppendInt(body, int64(limit), 10)
	body = append(body, '}')
	if err := q.nc.PublishRequest("$JS.API.DIRECT.GET."+StreamDown, inbox, body); err != nil {
		return nil, fmt.Errorf("reading backlog of %d: %w", androidID, err)
	}
	timer := time.NewTimer(5 * time.Second)
	defer timer.Stop()
	out := make([]StoredDown, 0, min(limit, 16))
	for {
		var m *nats.Msg
		select {
		case m = <-replies:
		case <-ctx.Done():
			return out, fmt.Errorf("reading backlog of %d: %w", androidID, ctx.Err())
		case <-timer.C:
			return out, fmt.Errorf("reading backlog of %d: no end of batch after %d messages", androidID, len(out))
		}
		if st := m.Header.Get("Status"); st != "" {
			switch st {
			case "204", "404": // end of batch; nothing (more) matches
				return out, nil
			}
			return out, fmt.Errorf("reading backlog of %d: direct get status %s %s", androidID, st, m.Header.Get("Description"))
		}
		seq, err := strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
		if err != nil {
			return out, fmt.Errorf("reading backlog of %d: bad sequence header: %w", androidID, err)
		}
		sd := StoredDown{Seq: seq, Subject: m.Header.Get(jetstream.SubjectHeader)}
		if err := gcm.DecodeRecord(m.Data, &sd.Message); err != nil {
			q.log.Warn("dropping undecodable downstream record", "seq", seq, "err", err)
			q.Retire(seq)
			continue
		}
		out = append(out, sd)
		if len(out) == limit {
			// The EOB status follows; the deferred unsubscribe drops it.
			return out, nil
		}
	}
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
	var body []byte // reused: PublishRequest copies it into the connection's buffer
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
		body = append(strconv.AppendUint(append(body[:0], `{"seq":`...), seq, 10), `,"no_erase":true}`...)
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
