package deviceserver

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/ccsd/ccsd/internal/gcm"
	"github.com/ccsd/ccsd/internal/mcs"
	"github.com/ccsd/ccsd/internal/mcs/mcspb"
	"github.com/ccsd/ccsd/internal/queue"
	"github.com/ccsd/ccsd/internal/router"
)

// Building the DataMessageStanza of a downstream message (mcs.md §8.1):
//
//	from          the sender id
//	category      the registration's app
//	token         the collapse key, or "do_not_collapse"
//	persistent_id mcs.NewPersistentID(accepted µs, seq), or a live-only id
//	id            the app server's message_id
//	ttl, sent     time_to_live (s) and the accepted time (ms)
//	app_data      the data pairs (values as strings), then the
//	              notification's pairs as "gcm.n.<key>" with "gcm.n.e"="1",
//	              then "subtype" when the registration has one; the reserved
//	              keys "from", "gcm", "google…" and any sender "subtype" are
//	              dropped
//	device_user_id 0; raw_data unset
//	last_stream_id_received the stamp (package doc)

// stanza is a reusable DataMessageStanza with the storage its fields point
// into, borrowed from stanzaPool for one message.
type stanza struct {
	m    mcspb.DataMessageStanza
	ad   []mcspb.AppData
	adp  []*mcspb.AppData
	kv   []gcm.KV
	from string
	cat  string
	tok  string
	pid  string
	id   string
	ttl  int32
	sent int64
	dui  int64
	last int32
}

var stanzaPool = sync.Pool{New: func() any { return new(stanza) }}

// reset empties st for the next message, keeping its slices.
func (st *stanza) reset() {
	st.m.Reset()
	clear(st.kv)
	st.kv = st.kv[:0]
	clear(st.adp)
	st.adp = st.adp[:0]
}

// build fills st.m for sd with registration reg and persistent id pid.
func (st *stanza) build(sd *storedDown, reg *queue.Registration, pid string) error {
	msg := &sd.Message
	st.reset()
	st.from, st.cat, st.pid, st.id = msg.SenderID, reg.App, pid, msg.MessageID
	st.tok = msg.CollapseKey
	if st.tok == "" {
		st.tok = mcs.NoCollapseToken
	}
	st.ttl, st.sent, st.dui = msg.TTL, msg.Accepted, 0
	if msg.Data != nil {
		if err := gcm.DataPairs(msg.Data, st.addData); err != nil {
			return fmt.Errorf("message %s data: %w", msg.MessageID, err)
		}
	}
	if msg.Notification != nil {
		n := len(st.kv)
		if err := gcm.DataPairs(msg.Notification, st.addNotification); err != nil {
			return fmt.Errorf("message %s notification: %w", msg.MessageID, err)
		}
		if len(st.kv) > n {
			st.kv = append(st.kv, gcm.KV{Key: "gcm.n.e", Value: "1"})
		}
	}
	if reg.Subtype != "" {
		st.kv = append(st.kv, gcm.KV{Key: "subtype", Value: reg.Subtype})
	}
	m := &st.m
	m.From, m.Category, m.Token, m.PersistentId, m.Id = &st.from, &st.cat, &st.tok, &st.pid, &st.id
	m.Ttl, m.Sent, m.DeviceUserId, m.LastStreamIdReceived = &st.ttl, &st.sent, &st.dui, &st.last
	if cap(st.ad) < len(st.kv) {
		st.ad = make([]mcspb.AppData, len(st.kv))
	}
	st.ad = st.ad[:len(st.kv)]
	for i := range st.kv {
		a := &st.ad[i]
		a.Reset()
		a.Key, a.Value = &st.kv[i].Key, &st.kv[i].Value
		st.adp = append(st.adp, a)
	}
	if len(st.adp) > 0 {
		m.AppData = st.adp
	}
	return nil
}

func (st *stanza) addData(k, v string) {
	if reservedDataKey(k) {
		return
	}
	st.kv = append(st.kv, gcm.KV{Key: k, Value: v})
}

func (st *stanza) addNotification(k, v string) {
	st.kv = append(st.kv, gcm.KV{Key: "gcm.n." + k, Value: v})
}

// reservedDataKey reports the data keys a device must not get from a
// sender: those the client sets itself and subtype, which only the
// registration may set.
func reservedDataKey(k string) bool {
	return k == "from" || k == "gcm" || k == "subtype" || strings.HasPrefix(k, "google")
}

// deliver writes one downstream message as a DataMessageStanza and records
// it in flight.
func (c *conn) deliver(sd *storedDown) error {
	s := c.srv
	reg, err := s.be.Registration(s.ctx, sd.Message.To)
	if err != nil {
		if errors.Is(err, queue.ErrNotFound) {
			s.log.Info("mcs dropping message of a deleted registration", "android_id", c.aid, "seq", sd.Seq)
			if sd.Seq != 0 {
				s.be.Retire(sd.Seq)
			}
			return nil
		}
		return storeError{fmt.Errorf("registration of message %d: %w", sd.Seq, err)}
	}
	var pid string
	if sd.Seq != 0 {
		pid = mcs.NewPersistentID(sd.Message.Accepted*1000, sd.Seq)
	} else {
		pid = s.liveID()
	}
	st := stanzaPool.Get().(*stanza)
	defer stanzaPool.Put(st)
	if err := st.build(sd, &reg, pid); err != nil {
		s.log.Warn("mcs dropping undeliverable message", "android_id", c.aid, "seq", sd.Seq, "err", err)
		if sd.Seq != 0 {
			s.be.Retire(sd.Seq)
		}
		return nil
	}
	c.mu.Lock()
	if _, err := c.sess.SentData(pid); err != nil {
		c.mu.Unlock()
		return err // the window was checked by the writer; cannot happen
	}
	st.last = c.stampLocked()
	if sd.Seq != 0 {
		f := flight{seq: sd.Seq}
		if sd.Message.DeliveryReceipt {
			cp := sd.Message
			f.rc, f.cat = &cp, reg.App
		}
		c.flights = append(c.flights, f)
	}
	c.mu.Unlock()
	if err := c.writeFrame(mcs.TagDataMessageStanza, &st.m); err != nil {
		return err
	}
	s.met.MCSDelivered.Inc()
	st.reset()
	return nil
}

// sendError is the data message that tells the device its upstream
// message was refused (mcs.md §9).
func (c *conn) sendError(up *router.DeviceUpstream, code string) *mcspb.DataMessageStanza {
	from, _, _ := strings.Cut(up.To, "@")
	if from == "" {
		from = "gcm.googleapis.com"
	}
	ad := func(k, v string) *mcspb.AppData { return &mcspb.AppData{Key: proto.String(k), Value: proto.String(v)} }
	return &mcspb.DataMessageStanza{
		Id:           proto.String(up.MessageID),
		From:         proto.String(from),
		Category:     proto.String(up.Category),
		Token:        proto.String(mcs.NoCollapseToken),
		PersistentId: proto.String(c.srv.liveID()),
		Ttl:          proto.Int32(0),
		Sent:         proto.Int64(c.srv.nowMs()),
		DeviceUserId: proto.Int64(0),
		AppData: []*mcspb.AppData{
			ad("message_type", "send_error"),
			ad("error", code),
			ad("google.message_id", up.MessageID),
		},
	}
}

// nowMs is Config.Now in milliseconds.
func (s *Server) nowMs() int64 { return s.cfg.Now().UnixMilli() }

// liveID returns a persistent id for a message that is not stored:
// "1:<16-digit µs>%<16 hex>", the hex being the server's random nonce in
// the high 32 bits and a counter in the low 32 (package doc).
func (s *Server) liveID() string {
	us := s.cfg.Now().UnixMicro() % 1e16
	if us < 0 {
		us = 0
	}
	n := s.nonce<<32 | s.liveSeq.Add(1)&0xffffffff
	var b [35]byte
	b[0], b[1], b[18] = '1', ':', '%'
	for i := 17; i >= 2; i-- {
		b[i] = byte('0' + us%10)
		us /= 10
	}
	const hexdig = "0123456789abcdef"
	for i := 34; i >= 19; i-- {
		b[i] = hexdig[n&15]
		n >>= 4
	}
	return string(b[:])
}
