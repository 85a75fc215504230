package mcs

import (
	"errors"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/ccsd/ccsd/internal/mcs/mcspb"
)

// A session step: receive a message from the client (recv), or send a
// packet (send: "" for a packet without persistent id, else a data
// message with that persistent id).
type sessionStep struct {
	recv proto.Message
	send *string

	wantAcked []string // persistent ids acknowledged by this step
	wantSeq   int32    // stream id of a sent packet
	wantErr   error
}

func send(pid string, seq int32) sessionStep { return sessionStep{send: &pid, wantSeq: seq} }
func recv(m proto.Message, acked ...string) sessionStep {
	return sessionStep{recv: m, wantAcked: acked}
}
func ping(last int32) *mcspb.HeartbeatPing {
	return &mcspb.HeartbeatPing{LastStreamIdReceived: proto.Int32(last)}
}
func selAck(ids ...string) *mcspb.IqStanza { return SelectiveAckIQ(ids) }

func TestSession(t *testing.T) {
	login := LoginRequest("c", 1, 2, nil)
	loginWithIDs := LoginRequest("c", 1, 2, []string{"old1", "", "old2"})
	tests := []struct {
		name         string
		window       int
		steps        []sessionStep
		wantIn       int32
		wantOut      int32
		wantUnacked  []string
		wantInFlight int
	}{
		{
			name:   "stream-id acks in order",
			window: 10,
			steps: []sessionStep{
				recv(login),
				send("", 1), // LoginResponse
				send("p1", 2), send("p2", 3), send("p3", 4),
				recv(ping(2), "p1"),
				recv(ping(3), "p2"),
				recv(ping(3)),
				recv(ping(1)),
				recv(&mcspb.HeartbeatAck{LastStreamIdReceived: proto.Int32(4)}, "p3"),
			},
			wantIn: 6, wantOut: 4,
		},
		{
			name:   "login received_persistent_id acks earlier deliveries",
			window: 10,
			steps: []sessionStep{
				recv(loginWithIDs, "old1", "old2"),
				send("", 1),
			},
			wantIn: 1, wantOut: 1,
		},
		{
			name:   "EN counts across reconnects: clamped to what was sent",
			window: 10,
			steps: []sessionStep{
				recv(login),
				send("", 1), send("p1", 2), send("p2", 3),
				recv(ping(57), "p1", "p2"),
				send("p3", 4),
				recv(ping(57), "p3"),
				recv(ping(58)),
			},
			wantIn: 4, wantOut: 4,
		},
		{
			name:   "selective ack removes from the middle",
			window: 10,
			steps: []sessionStep{
				recv(login),
				send("", 1), send("p1", 2), send("p2", 3), send("p3", 4),
				recv(selAck("p2", "elsewhere"), "p2", "elsewhere"),
				recv(ping(3), "p1"),
			},
			wantIn: 3, wantOut: 4, wantUnacked: []string{"p3"}, wantInFlight: 1,
		},
		{
			name:   "last_stream_id_received on IQs and data",
			window: 10,
			steps: []sessionStep{
				recv(login),
				send("", 1), send("p1", 2), send("", 3), send("p2", 4),
				recv(StreamAckIQ("", 2), "p1"),
				recv(&mcspb.DataMessageStanza{From: proto.String("x"), Category: proto.String("y"), LastStreamIdReceived: proto.Int32(4)}, "p2"),
			},
			wantIn: 3, wantOut: 4,
		},
		{
			name:   "packets without last_stream_id_received ack nothing",
			window: 10,
			steps: []sessionStep{
				recv(login),
				send("", 1), send("p1", 2),
				recv(&mcspb.HeartbeatPing{}),
				recv(&mcspb.HeartbeatAck{}),
				recv(StreamAckIQ("", 0)),
				recv(Close()),
			},
			wantIn: 5, wantOut: 2, wantUnacked: []string{"p1"}, wantInFlight: 1,
		},
		{
			name:   "window full refuses and records nothing",
			window: 2,
			steps: []sessionStep{
				recv(login),
				send("", 1), send("p1", 2), send("p2", 3),
				{send: proto.String("p3"), wantErr: ErrWindowFull},
				send("", 4), // pings and acks are never blocked
				recv(ping(2), "p1"),
				send("p3", 5),
			},
			wantIn: 2, wantOut: 5, wantUnacked: []string{"p2", "p3"}, wantInFlight: 2,
		},
		{
			name:   "selective ack with garbage data",
			window: 10,
			steps: []sessionStep{
				recv(login),
				{recv: &mcspb.IqStanza{Type: IqSet.Enum(), Id: proto.String(""),
					Extension: &mcspb.Extension{Id: proto.Int32(ExtensionSelectiveAck), Data: []byte{0x0a, 0x09}}},
					wantErr: errors.New("any")},
			},
			wantIn: 2,
		},
		{
			name:   "same id sent twice is acked by one selective ack",
			window: 10,
			steps: []sessionStep{
				recv(login),
				send("", 1), send("p1", 2), send("p1", 3),
				recv(selAck("p1"), "p1"),
			},
			wantIn: 2, wantOut: 3,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewSession(tt.window)
			for i, st := range tt.steps {
				switch {
				case st.recv != nil:
					got, err := s.Receive(nil, st.recv)
					if (err != nil) != (st.wantErr != nil) {
						t.Fatalf("step %d: got error %v, want %v", i, err, st.wantErr)
					}
					if !slices.Equal(got, st.wantAcked) {
						t.Fatalf("step %d: acked %q, want %q", i, got, st.wantAcked)
					}
				case st.send != nil:
					seq, err := s.SentData(*st.send)
					if !errors.Is(err, st.wantErr) {
						t.Fatalf("step %d: got error %v, want %v", i, err, st.wantErr)
					}
					if seq != st.wantSeq {
						t.Fatalf("step %d: stream id %d, want %d", i, seq, st.wantSeq)
					}
				}
			}
			if got := s.LastStreamIDReceived(); got != tt.wantIn {
				t.Errorf("LastStreamIDReceived: got %d, want %d", got, tt.wantIn)
			}
			if got := s.LastStreamIDSent(); got != tt.wantOut {
				t.Errorf("LastStreamIDSent: got %d, want %d", got, tt.wantOut)
			}
			if got := s.Unacked(nil); !slices.Equal(got, tt.wantUnacked) {
				t.Errorf("Unacked: got %q, want %q", got, tt.wantUnacked)
			}
			if got := s.InFlight(); got != tt.wantInFlight {
				t.Errorf("InFlight: got %d, want %d", got, tt.wantInFlight)
			}
		})
	}
}

func TestSessionPrepare(t *testing.T) {
	s := NewSession(1)
	if _, err := s.Receive(nil, LoginRequest("c", 1, 2, nil)); err != nil {
		t.Fatal(err)
	}
	lr := &mcspb.LoginResponse{Id: proto.String("c")}
	d1, d2 := testData(), testData()
	d2.PersistentId = proto.String("other")
	d1.LastStreamIdReceived, d2.LastStreamIdReceived = nil, nil
	tests := []struct {
		name     string
		m        proto.Message
		received int // packets received before this one
		wantSeq  int32
		wantErr  error
		last     func() *int32
	}{
		{"login response", lr, 0, 1, nil, func() *int32 { return lr.LastStreamIdReceived }},
		{"data", d1, 0, 2, nil, func() *int32 { return d1.LastStreamIdReceived }},
		{"data, window full", d2, 0, 0, ErrWindowFull, func() *int32 { return d2.LastStreamIdReceived }},
		{"close", Close(), 0, 3, nil, nil},
	}
	for _, tt := range tests {
		seq, err := s.Prepare(tt.m)
		if seq != tt.wantSeq || !errors.Is(err, tt.wantErr) {
			t.Errorf("%s: got %d, %v; want %d, %v", tt.name, seq, err, tt.wantSeq, tt.wantErr)
		}
		if tt.last == nil {
			continue
		}
		wantLast := int32(1)
		if tt.wantErr != nil {
			if got := tt.last(); got != nil {
				t.Errorf("%s: refused message was stamped %d", tt.name, *got)
			}
			continue
		}
		if got := tt.last(); got == nil || *got != wantLast {
			t.Errorf("%s: last_stream_id_received %v, want %d", tt.name, got, wantLast)
		}
	}
	// Pings, acks and IQs are stamped with the current count.
	s.Received()
	s.Received()
	hb, ha, iq := &mcspb.HeartbeatPing{}, &mcspb.HeartbeatAck{}, SelectiveAckIQ(nil)
	for _, m := range []proto.Message{hb, ha, iq} {
		if _, err := s.Prepare(m); err != nil {
			t.Fatal(err)
		}
	}
	if hb.GetLastStreamIdReceived() != 3 || ha.GetLastStreamIdReceived() != 3 || iq.GetLastStreamIdReceived() != 3 {
		t.Errorf("stamps: ping %d, ack %d, iq %d; want 3", hb.GetLastStreamIdReceived(), ha.GetLastStreamIdReceived(), iq.GetLastStreamIdReceived())
	}
	if hb.Status != nil {
		t.Error("Prepare set status on a ping")
	}
	if got := s.LastStreamIDSent(); got != 6 {
		t.Errorf("LastStreamIDSent: got %d, want 6", got)
	}
}

// Bookkeeping on the hot path does not allocate once the in-flight slice
// has grown to the window.
func TestSessionAllocs(t *testing.T) {
	s := NewSession(8)
	ids := make([]string, 8)
	for i := range ids {
		ids[i] = NewPersistentID(1, uint64(i))
	}
	dst := make([]string, 0, 8)
	p := ping(0)
	round := func() {
		for _, id := range ids {
			if _, err := s.SentData(id); err != nil {
				t.Fatal(err)
			}
		}
		*p.LastStreamIdReceived = s.LastStreamIDSent()
		var err error
		dst, err = s.Receive(dst[:0], p)
		if err != nil || len(dst) != len(ids) {
			t.Fatalf("acked %d, %v", len(dst), err)
		}
	}
	round()
	if got := testing.AllocsPerRun(100, round); got != 0 {
		t.Errorf("%v allocations per round, want 0", got)
	}
}
