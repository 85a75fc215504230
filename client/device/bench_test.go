package device

import (
	"context"
	"crypto/tls"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/ccsd/ccsd/internal/certs"
	"github.com/ccsd/ccsd/internal/mcs"
	"github.com/ccsd/ccsd/internal/mcs/mcspb"
)

// blastPeer is a minimal MCS server for benchmarking the client alone: it
// accepts one TLS connection, answers the login, then writes n data
// messages (one frame per Write) and drains whatever the client sends.
func blastPeer(b *testing.B, n int) (addr string, tc *tls.Config) {
	b.Helper()
	bundle, err := certs.Ensure(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", bundle.ServerTLS())
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	b.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		rd := mcs.NewReader(nc, mcs.ReaderConfig{Tags: mcs.ClientSendTags})
		if _, err := rd.Next(); err != nil {
			return
		}
		out, _ := mcs.AppendVersionedFrame(nil, mcs.TagLoginResponse, mcs.LoginResponse("x", 1))
		if _, err := nc.Write(out); err != nil {
			return
		}
		drained := make(chan struct{})
		go func() {
			defer close(drained)
			for {
				if _, err := rd.Next(); err != nil {
					return
				}
			}
		}()
		m := &mcspb.DataMessageStanza{From: proto.String("123456789012"), Category: proto.String("com.example"),
			Token: proto.String(mcs.NoCollapseToken), Sent: proto.Int64(1), Ttl: proto.Int32(60),
			AppData: []*mcspb.AppData{{Key: proto.String("k"), Value: proto.String("some value of a typical size")}}}
		var buf []byte
		for i := range n {
			m.PersistentId = proto.String(mcs.NewPersistentID(1, uint64(i)))
			m.LastStreamIdReceived = proto.Int32(int32(i%1000 + 1))
			buf, _ = mcs.AppendFrame(buf[:0], mcs.TagDataMessageStanza, m)
			if _, err := nc.Write(buf); err != nil {
				return
			}
		}
		<-drained
	}()
	return ln.Addr().String(), bundle.ClientTLS("127.0.0.1")
}

// BenchmarkConnReceiveAck measures the client side of receiving one
// downstream message and acknowledging it (go test -bench ConnReceiveAck
// ./client/device).
func BenchmarkConnReceiveAck(b *testing.B) {
	addr, tc := blastPeer(b, b.N)
	ctx := context.Background()
	c, err := Dial(ctx, addr, tc, Credentials{AndroidID: 1, SecurityToken: 2}, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		m, err := c.Next(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Ack(m.PersistentID); err != nil {
			b.Fatal(err)
		}
	}
}

func TestStampHoldsBackUnacked(t *testing.T) {
	c := &Conn{changed: make(chan struct{})}
	c.inCount = 5
	steps := []struct {
		name string
		do   func()
		want int32
	}{
		{"nothing unacked", func() {}, 5},
		{"message 6 unacked", func() { c.inCount = 6; c.unacked = append(c.unacked, inMsg{6, "a"}) }, 5},
		{"ping 7, message 8", func() { c.inCount = 8; c.unacked = append(c.unacked, inMsg{8, "b"}) }, 5},
		{"a acked", func() { c.unacked = c.unacked[1:] }, 7},
		{"b acked", func() { c.unacked = c.unacked[1:] }, 8},
	}
	for _, s := range steps {
		s.do()
		if got := c.stampLocked(); got != s.want {
			t.Errorf("%s: stamp = %d, want %d", s.name, got, s.want)
		}
	}
}

func TestApplyAckClampsAndResolves(t *testing.T) {
	c := &Conn{changed: make(chan struct{})}
	c.outSeq = 4
	p3, p4 := &pendingSend{seq: 3, id: "u3"}, &pendingSend{seq: 4, id: "u4"}
	c.pending = []*pendingSend{p3, p4}
	v := func(n int32) *int32 { return &n }
	c.applyAck(v(3))
	if !p3.done || p4.done {
		t.Fatalf("after ack 3: done = %v, %v; want true, false", p3.done, p4.done)
	}
	c.applyAck(v(1 << 30)) // beyond what was sent: clamped to 4
	if !p4.done || c.outAcked != 4 {
		t.Fatalf("after a huge ack: done = %v, outAcked = %d; want true, 4", p4.done, c.outAcked)
	}
	c.applyAck(nil)
	c.applyAck(v(2)) // going back is ignored
	if c.outAcked != 4 {
		t.Errorf("outAcked = %d after an older ack, want 4", c.outAcked)
	}
}

func TestToMessage(t *testing.T) {
	m := &mcspb.DataMessageStanza{
		Id: proto.String("id1"), From: proto.String("42"), Category: proto.String("com.x"), Token: proto.String("ck"),
		PersistentId: proto.String("0:1%2"), Ttl: proto.Int32(60), Sent: proto.Int64(99), RawData: []byte{1},
		AppData: []*mcspb.AppData{
			{Key: proto.String("message_type"), Value: proto.String("deleted_messages")},
			{Key: proto.String("total_deleted"), Value: proto.String("3")},
		},
	}
	got := toMessage(m)
	want := Message{PersistentID: "0:1%2", ID: "id1", From: "42", Category: "com.x", CollapseKey: "ck", TTL: 60, Sent: 99,
		MessageType: MessageTypeDeleted}
	if got.PersistentID != want.PersistentID || got.ID != want.ID || got.From != want.From || got.Category != want.Category ||
		got.CollapseKey != want.CollapseKey || got.TTL != want.TTL || got.Sent != want.Sent || got.MessageType != want.MessageType ||
		len(got.Data) != 1 || got.Data["total_deleted"] != "3" || len(got.RawData) != 1 {
		t.Errorf("toMessage = %+v, want %+v with data total_deleted=3 and raw data", got, want)
	}
}

func TestParseLines(t *testing.T) {
	tests := []struct {
		in   string
		want map[string]string
	}{
		{"token=abc", map[string]string{"token": "abc"}},
		{"token=abc\n", map[string]string{"token": "abc"}},
		{"Error=INVALID_SENDER", map[string]string{"Error": "INVALID_SENDER"}},
		{"deleted=com.x\nother", map[string]string{"deleted": "com.x"}},
		{"a=b=c", map[string]string{"a": "b=c"}},
		{"", map[string]string{}},
	}
	for _, tt := range tests {
		got := parseLines([]byte(tt.in))
		if len(got) != len(tt.want) {
			t.Errorf("parseLines(%q) = %v, want %v", tt.in, got, tt.want)
			continue
		}
		for k, v := range tt.want {
			if got[k] != v {
				t.Errorf("parseLines(%q)[%q] = %q, want %q", tt.in, k, got[k], v)
			}
		}
	}
}
