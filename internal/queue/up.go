package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Upstream layout: one WorkQueue stream, CCSD_UP, subject up.<sender id>,
// holding device messages and delivery receipts until an app server ACKs
// them. Each sender has one durable pull consumer shared by all its CCS
// connections (on every node); a connection fetches at most its free window
// and acks what the app server ACKed. JetStream redelivers what is not acked
// within UpAckWait, or at once when a connection closes (Nak).

// UpAckWait is how long an upstream message may stay un-ACKed on a
// connection before JetStream offers it again (to any connection).
const UpAckWait = 30 * time.Second

func upSubject(sender string) string { return "up." + sender }

// hdrUpID carries an upstream message's message_id.
const hdrUpID = "Ccsd-Id"

// PublishUp stores one upstream message (or receipt) with message id id for
// sender and waits until it is stored. dedupID makes a resend of the same
// message within two minutes a no-op (the device's retry after a lost ack).
func (q *Queue) PublishUp(ctx context.Context, sender, id, dedupID string, payload []byte) error {
	m := &nats.Msg{Subject: upSubject(sender), Data: payload, Header: nats.Header{hdrUpID: []string{id}}}
	if dedupID != "" {
		m.Header.Set(jetstream.MsgIDHeader, dedupID)
	}
	if _, err := q.js.PublishMsg(ctx, m); err != nil {
		return fmt.Errorf("storing upstream message: %w", err)
	}
	return nil
}

// UpMsg is one upstream message handed to a connection.
type UpMsg struct {
	ID      string // message_id the app server must ACK
	Seq     uint64 // stream sequence: the same for every redelivery of one message
	Payload []byte // the CCS JSON
	msg     jetstream.Msg
}

// Ack retires the message: the app server ACKed it.
func (m *UpMsg) Ack() error { return m.msg.Ack() }

// Nak hands the message back for redelivery now.
func (m *UpMsg) Nak() error { return m.msg.Nak() }

// NakLater hands the message back for redelivery after d.
func (m *UpMsg) NakLater(d time.Duration) error { return m.msg.NakWithDelay(d) }

// UpConsumer is a sender's shared upstream consumer.
type UpConsumer struct {
	c jetstream.Consumer
}

// UpstreamConsumer returns sender's durable upstream consumer, creating it
// on first use.
func (q *Queue) UpstreamConsumer(ctx context.Context, sender string) (*UpConsumer, error) {
	name := "up-" + sender
	c, err := q.up.Consumer(ctx, name)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		c, err = q.up.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
			Durable:       name,
			FilterSubject: upSubject(sender),
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       UpAckWait,
			MaxDeliver:    -1,
			MaxAckPending: 1 << 20,
			DeliverPolicy: jetstream.DeliverAllPolicy,
			Replicas:      q.cfg.Replicas,
		})
	}
	if err != nil {
		return nil, fmt.Errorf("opening upstream consumer of %s: %w", sender, err)
	}
	return &UpConsumer{c: c}, nil
}

// Fetch asks for up to n messages and calls fn for each as it arrives
// (not when the batch is complete: a batch of n that only partly fills would
// otherwise hold the first message for the whole wait). It returns after n
// messages or when wait has passed; no messages and no error means none
// arrived in time.
func (u *UpConsumer) Fetch(ctx context.Context, n int, wait time.Duration, fn func(*UpMsg)) error {
	batch, err := u.c.Fetch(n, jetstream.FetchMaxWait(wait))
	if err != nil {
		return fmt.Errorf("fetching upstream: %w", err)
	}
	for m := range batch.Messages() {
		um := &UpMsg{ID: m.Headers().Get(hdrUpID), Payload: m.Data(), msg: m}
		if md, err := m.Metadata(); err == nil {
			um.Seq = md.Sequence.Stream
		}
		fn(um)
	}
	if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("fetching upstream: %w", err)
	}
	return ctx.Err()
}
