package queue

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ccsd/ccsd/internal/gcm"
)

// Downstream layout: one stream, CCSD_DOWN. A device's non-collapsible
// messages share the literal subject down.<android id>.n, so a device's
// backlog is one subject filter away and subjects stay few (see
// measured/jetstream.md: a subject per message makes backlog reads 3× slower
// and costs ~120 B of server memory each). A collapsible message goes to
// down.<android id>.c.<hash of registration and collapse key> with a
// Nats-Rollup: sub header, so JetStream itself keeps only the newest one per
// key. Messages whose time_to_live is shorter than the stream's MaxAge carry
// a Nats-TTL header and expire in the store.

// DownSubject returns the subject a message for androidID is stored under.
// collapse is empty for non-collapsible messages.
func DownSubject(androidID uint64, regID string, collapse []byte) string {
	b := make([]byte, 0, 64)
	b = append(b, "down."...)
	b = strconv.AppendUint(b, androidID, 10)
	if len(collapse) == 0 {
		b = append(b, ".n"...)
		return string(b)
	}
	h := sha256.New()
	h.Write([]byte(regID))
	h.Write([]byte{0})
	h.Write(collapse)
	var sum [sha256.Size]byte
	b = append(b, ".c."...)
	b = hex.AppendEncode(b, h.Sum(sum[:0])[:12])
	return string(b)
}

// DeviceFilter is the subject filter of every message stored for androidID.
func DeviceFilter(androidID uint64) string {
	return "down." + strconv.FormatUint(androidID, 10) + ".>"
}

// ErrDeviceFull is returned when the device already has the most
// non-collapsible messages the store keeps for it (Config.MaxPerDevice).
var ErrDeviceFull = errors.New("device has too many stored messages")

// ErrStoreBusy is returned when the node's publish window stayed full.
var ErrStoreBusy = errors.New("store busy")

// PublishDown stores one downstream record (gcm.AppendRecord) under subject,
// asynchronously. The record must not be modified afterwards (the client may
// resend it). ttl is the message's time_to_live in seconds.
func (q *Queue) PublishDown(subject string, collapsible bool, ttl int32, record []byte) (*Pending, error) {
	m := &nats.Msg{Subject: subject, Data: record}
	if ttl < gcm.MaxTTL || collapsible {
		m.Header = make(nats.Header, 2)
		if ttl < gcm.MaxTTL {
			m.Header["Nats-TTL"] = []string{strconv.Itoa(int(ttl)) + "s"}
		}
		if collapsible {
			m.Header["Nats-Rollup"] = []string{"sub"}
		}
	}
	p, err := q.pub.publish(m, 10*time.Second)
	if err != nil {
		q.met.QueuePublishE.Inc()
		if errors.Is(err, ErrStoreBusy) {
			return nil, ErrStoreBusy
		}
		return nil, fmt.Errorf("publishing downstream message: %w", err)
	}
	q.met.QueueStored.Inc()
	return p, nil
}

// StoredDown is one stored downstream message.
type StoredDown struct {
	Seq     uint64
	Subject string
	Message gcm.Message
}

// ReadDevice returns every message stored for androidID, oldest first (used
// at device login and by tests and tools). Expired messages are skipped.
func (q *Queue) ReadDevice(ctx context.Context, androidID uint64) ([]StoredDown, error) {
	return q.readDown(ctx, DeviceFilter(androidID))
}

// ReadAllDown returns every stored downstream message (tests and tools).
func (q *Queue) ReadAllDown(ctx context.Context) ([]StoredDown, error) {
	return q.readDown(ctx, "down.>")
}

func (q *Queue) readDown(ctx context.Context, filter string) ([]StoredDown, error) {
	c, err := q.down.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}})
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", filter, err)
	}
	var out []StoredDown
	for {
		batch, err := c.FetchNoWait(512)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", filter, err)
		}
		n := 0
		var pending uint64
		for m := range batch.Messages() {
			n++
			md, err := m.Metadata()
			if err != nil {
				return nil, fmt.Errorf("reading %s metadata: %w", filter, err)
			}
			pending = md.NumPending
			var sd StoredDown
			sd.Seq, sd.Subject = md.Sequence.Stream, m.Subject()
			if err := gcm.DecodeRecord(m.Data(), &sd.Message); err != nil {
				q.log.Warn("skipping undecodable downstream record", "seq", sd.Seq, "err", err)
				continue
			}
			out = append(out, sd)
		}
		if err := batch.Error(); err != nil {
			return nil, fmt.Errorf("reading %s: %w", filter, err)
		}
		if n == 0 || pending == 0 {
			return out, nil
		}
	}
}
