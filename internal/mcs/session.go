package mcs

import (
	"errors"
	"fmt"
	"math"

	"google.golang.org/protobuf/proto"

	"github.com/ccsd/ccsd/internal/mcs/mcspb"
)

// ErrWindowFull is returned by Session.SentData and Session.Prepare when
// the connection already has its maximum of unacknowledged data messages.
var ErrWindowFull = errors.New("mcs: in-flight window full")

// Session is the server's stream-id and acknowledgement bookkeeping for one
// MCS connection (mcs.md §4.2, §4.4). It does no I/O and is not safe for
// concurrent use: the connection's owner calls it for every packet read
// (Receive) and, in write order, for every packet sent (Prepare, Sent or
// SentData).
//
// The server counts the packets it received (the LoginRequest is 1) and
// numbers the packets it sends (the LoginResponse is 1). It remembers the
// stream id of every data message still unacknowledged, at most
// maxInFlight of them, so its memory is bounded by the caller's window.
type Session struct {
	// immutable after NewSession
	maxInFlight int

	// owned by the connection's goroutines, one at a time
	inCount  int32      // packets received on this connection
	outSeq   int32      // stream id of the last packet sent
	acked    int32      // highest stream id acknowledged through last_stream_id_received
	inflight []inflight // unacknowledged data messages by increasing seq
}

type inflight struct {
	seq int32
	pid string
}

// NewSession returns the bookkeeping of a new connection that allows at
// most maxInFlight unacknowledged data messages (at least 1).
func NewSession(maxInFlight int) *Session {
	if maxInFlight < 1 {
		maxInFlight = 1
	}
	return &Session{maxInFlight: maxInFlight}
}

// Received counts one packet received and returns the new count.
func (s *Session) Received() int32 {
	if s.inCount < math.MaxInt32 {
		s.inCount++
	}
	return s.inCount
}

// LastStreamIDReceived is the number of packets received so far: the value
// of last_stream_id_received on every packet the server sends.
func (s *Session) LastStreamIDReceived() int32 { return s.inCount }

// LastStreamIDSent is the stream id of the last packet sent (0 before the
// LoginResponse).
func (s *Session) LastStreamIDSent() int32 { return s.outSeq }

// InFlight returns the number of data messages sent and not acknowledged.
func (s *Session) InFlight() int { return len(s.inflight) }

// WindowFull reports whether SentData would refuse another data message.
func (s *Session) WindowFull() bool { return len(s.inflight) >= s.maxInFlight }

// Sent records one packet sent that carries no persistent id and returns
// its stream id.
func (s *Session) Sent() int32 {
	if s.outSeq < math.MaxInt32 {
		s.outSeq++
	}
	return s.outSeq
}

// SentData records a data message carrying persistent id pid and returns
// its stream id. When the window is full it records nothing and returns
// ErrWindowFull; the message must then not be sent. An empty pid is
// recorded as a packet without persistent id.
func (s *Session) SentData(pid string) (int32, error) {
	if pid == "" {
		return s.Sent(), nil
	}
	if s.WindowFull() {
		return 0, ErrWindowFull
	}
	seq := s.Sent()
	s.inflight = append(s.inflight, inflight{seq: seq, pid: pid})
	return seq, nil
}

// Prepare stamps last_stream_id_received on m (for the message types that
// have it) and records m as sent, as SentData does for a
// DataMessageStanza. Call it just before encoding m, in write order.
func (s *Session) Prepare(m proto.Message) (int32, error) {
	last := s.inCount
	switch m := m.(type) {
	case *mcspb.DataMessageStanza:
		seq, err := s.SentData(m.GetPersistentId())
		if err != nil {
			return 0, err
		}
		m.LastStreamIdReceived = proto.Int32(last)
		return seq, nil
	case *mcspb.HeartbeatPing:
		m.LastStreamIdReceived = proto.Int32(last)
	case *mcspb.HeartbeatAck:
		m.LastStreamIdReceived = proto.Int32(last)
	case *mcspb.IqStanza:
		m.LastStreamIdReceived = proto.Int32(last)
	case *mcspb.LoginResponse:
		m.LastStreamIdReceived = proto.Int32(last)
	}
	return s.Sent(), nil
}

// AckStreamID applies a client's last_stream_id_received: every data
// message sent with a stream id up to last is acknowledged. last is
// clamped to the stream ids actually sent on this connection, because EN
// 4.x keeps counting across reconnects (mcs.md §4.2). The persistent ids
// acknowledged now are appended to dst.
func (s *Session) AckStreamID(dst []string, last int32) []string {
	if last > s.outSeq {
		last = s.outSeq
	}
	if last <= s.acked {
		return dst
	}
	s.acked = last
	k := 0
	for k < len(s.inflight) && s.inflight[k].seq <= last {
		dst = append(dst, s.inflight[k].pid)
		k++
	}
	s.dropFront(k)
	return dst
}

func (s *Session) dropFront(k int) {
	if k == 0 {
		return
	}
	n := copy(s.inflight, s.inflight[k:])
	clear(s.inflight[n:])
	s.inflight = s.inflight[:n]
}

// AckIDs applies a list of persistent ids the client acknowledged, from a
// SelectiveAck or from LoginRequest.received_persistent_id. Every non-empty
// id is appended to dst, in flight on this connection or not (it may have
// been delivered on an earlier connection); the in-flight ones are
// forgotten.
func (s *Session) AckIDs(dst []string, ids []string) []string {
	for _, id := range ids {
		if id == "" {
			continue
		}
		dst = append(dst, id)
		s.forget(id)
	}
	return dst
}

func (s *Session) forget(pid string) {
	n := 0
	for _, e := range s.inflight {
		if e.pid != pid {
			s.inflight[n] = e
			n++
		}
	}
	clear(s.inflight[n:])
	s.inflight = s.inflight[:n]
}

// Unacked appends the persistent ids still in flight, oldest first. They
// are to be redelivered after the client's next login.
func (s *Session) Unacked(dst []string) []string {
	for _, e := range s.inflight {
		dst = append(dst, e.pid)
	}
	return dst
}

// Receive counts m as a packet received and applies every acknowledgement
// it carries: last_stream_id_received (pings, acks, IQs, data), a
// SelectiveAck IQ (extension 12) and a LoginRequest's
// received_persistent_id. The persistent ids acknowledged are appended to
// dst. A SelectiveAck whose data does not decode is an error; the packet is
// still counted.
func (s *Session) Receive(dst []string, m proto.Message) ([]string, error) {
	s.Received()
	switch m := m.(type) {
	case *mcspb.LoginRequest:
		dst = s.AckIDs(dst, m.GetReceivedPersistentId())
	case *mcspb.HeartbeatPing:
		if m.LastStreamIdReceived != nil {
			dst = s.AckStreamID(dst, *m.LastStreamIdReceived)
		}
	case *mcspb.HeartbeatAck:
		if m.LastStreamIdReceived != nil {
			dst = s.AckStreamID(dst, *m.LastStreamIdReceived)
		}
	case *mcspb.DataMessageStanza:
		if m.LastStreamIdReceived != nil {
			dst = s.AckStreamID(dst, *m.LastStreamIdReceived)
		}
	case *mcspb.IqStanza:
		if m.LastStreamIdReceived != nil {
			dst = s.AckStreamID(dst, *m.LastStreamIdReceived)
		}
		ids, ok, err := SelectiveAckIDs(m)
		if err != nil {
			return dst, fmt.Errorf("mcs: receiving iq: %w", err)
		}
		if ok {
			dst = s.AckIDs(dst, ids)
		}
	}
	return dst, nil
}
