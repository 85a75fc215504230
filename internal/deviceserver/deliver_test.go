package deviceserver

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/ccsd/ccsd/internal/gcm"
	"github.com/ccsd/ccsd/internal/mcs"
	"github.com/ccsd/ccsd/internal/mcs/mcspb"
	"github.com/ccsd/ccsd/internal/queue"
	"github.com/ccsd/ccsd/internal/router"
)

func TestLiveDelivery(t *testing.T) {
	f := newFixture(t, fixtureOpts{subtype: "wp:receiver#1"})
	c := f.login()
	in := msg("m1")
	in.Data = []byte(`{"k":"v","n":3,"subtype":"forged"}`)
	f.send(in)
	d := c.data()
	sds := f.stored()
	if len(sds) != 1 {
		t.Fatalf("store holds %d messages, want 1", len(sds))
	}
	wantPID := mcs.NewPersistentID(epoch.UnixMilli()*1000, sds[0].Seq)
	want := &mcspb.DataMessageStanza{
		Id: proto.String("m1"), From: proto.String(f.sender.ID), Category: proto.String("com.example.app"),
		Token: proto.String("do_not_collapse"), PersistentId: proto.String(wantPID),
		Ttl: proto.Int32(gcm.MaxTTL), Sent: proto.Int64(epoch.UnixMilli()), DeviceUserId: proto.Int64(0),
		LastStreamIdReceived: proto.Int32(1),
		AppData: []*mcspb.AppData{
			{Key: proto.String("k"), Value: proto.String("v")},
			{Key: proto.String("n"), Value: proto.String("3")},
			{Key: proto.String("subtype"), Value: proto.String("wp:receiver#1")},
		},
	}
	if !proto.Equal(d, want) {
		t.Errorf("data message\n got %v\nwant %v", d, want)
	}
}

func TestNotificationAndLiveOnly(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	c := f.login()
	in := msg("ttl0")
	in.TTL = 0
	in.Notification = []byte(`{"title":"hi"}`)
	f.send(in)
	d := c.data()
	if _, ok := mcs.ParsePersistentID(d.GetPersistentId()); ok || !strings.HasPrefix(d.GetPersistentId(), "1:") || len(d.GetPersistentId()) != 35 {
		t.Errorf("live-only persistent_id %q: want a 1:… id that maps to no stored sequence", d.GetPersistentId())
	}
	ad := appData(d)
	if ad["gcm.n.title"] != "hi" || ad["gcm.n.e"] != "1" || ad["k"] != "ttl0" {
		t.Errorf("app_data = %v, want k, gcm.n.title and gcm.n.e", ad)
	}
	c.ping(true, nil) // acking a live-only id does nothing
}

func TestBacklogAtLogin(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	for _, id := range []string{"b1", "b2", "b3"} {
		f.send(msg(id))
	}
	c := f.login()
	var got []*mcspb.DataMessageStanza
	for range 3 {
		got = append(got, c.data())
	}
	f.send(msg("live"))
	got = append(got, c.data())
	if want := []string{"b1", "b2", "b3", "live"}; !slices.Equal(ids(got), want) {
		t.Errorf("delivered %v, want %v", ids(got), want)
	}
}

// TestAck covers the three ways a device acknowledges (mcs.md §4.4): each
// retires the message, so the next login gets nothing.
func TestAck(t *testing.T) {
	tests := []struct {
		name string
		ack  func(f *fixture, c *client, d *mcspb.DataMessageStanza) *client
	}{
		{"received_persistent_id at login", func(f *fixture, c *client, d *mcspb.DataMessageStanza) *client {
			c.nc.Close()
			return f.login(d.GetPersistentId())
		}},
		{"SelectiveAck IQ", func(f *fixture, c *client, d *mcspb.DataMessageStanza) *client {
			data, _ := proto.Marshal(&mcspb.SelectiveAck{Id: []string{d.GetPersistentId()}})
			c.send(&mcspb.IqStanza{Type: mcs.IqSet.Enum(), Id: proto.String(""),
				Extension: &mcspb.Extension{Id: proto.Int32(mcs.ExtensionSelectiveAck), Data: data}})
			return c
		}},
		{"last_stream_id_received on a ping", func(f *fixture, c *client, d *mcspb.DataMessageStanza) *client {
			c.ping(true, nil)
			return c
		}},
		{"StreamAck IQ", func(f *fixture, c *client, d *mcspb.DataMessageStanza) *client {
			c.send(mcs.StreamAckIQ("", c.in))
			tag, m := c.recv()
			if iq, ok := m.(*mcspb.IqStanza); tag != mcs.TagIqStanza || !ok || !mcs.IsStreamAck(iq) {
				t.Errorf("answer to StreamAck: %s %v, want a StreamAck IQ", mcs.TagName(tag), m)
			}
			return c
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, fixtureOpts{})
			f.send(msg("a1"))
			c := f.login()
			d := c.data()
			c = tt.ack(f, c, d)
			c.ping(false, nil) // the ack has been applied
			f.waitStored(0)
			if got := counter(f.met.MCSAcked); got != 1 {
				t.Errorf("acked = %v, want 1", got)
			}
			c.nc.Close()
			c = f.login()
			f.send(msg("a2"))
			if d := c.data(); d.GetId() != "a2" {
				t.Errorf("after the ack the next login got %q, want only the new a2", d.GetId())
			}
		})
	}
}

func TestRedeliveryOfUnacked(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	c := f.login()
	f.send(msg("r1"))
	first := c.data()
	c.nc.Close()
	c = f.login()
	again := c.data()
	if again.GetId() != "r1" || again.GetPersistentId() != first.GetPersistentId() {
		t.Errorf("redelivered %q %q, want r1 with the same persistent_id %q", again.GetId(), again.GetPersistentId(), first.GetPersistentId())
	}
}

func TestTTLExpiry(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	short := msg("short")
	short.TTL = 60
	f.send(short)
	f.send(msg("long"))
	f.clk.Advance(61e9)
	c := f.login()
	if d := c.data(); d.GetId() != "long" {
		t.Errorf("delivered %q, want only long", d.GetId())
	}
	f.waitStored(1)
	if got := counter(f.met.QueueExpired); got != 1 {
		t.Errorf("expired = %v, want 1", got)
	}
}

func collapsible(id, key string) *gcm.Inbound {
	in := msg(id)
	in.CollapseKey = []byte(key)
	return in
}

func TestCollapse(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	for _, id := range []string{"c1", "c2", "c3"} {
		f.send(collapsible(id, "score"))
	}
	c := f.login()
	f.send(msg("marker"))
	got := []*mcspb.DataMessageStanza{c.data(), c.data()}
	if want := []string{"c3", "marker"}; !slices.Equal(ids(got), want) {
		t.Errorf("delivered %v, want %v", ids(got), want)
	}
	if got[0].GetToken() != "score" {
		t.Errorf("token = %q, want the collapse key", got[0].GetToken())
	}
}

func TestFourCollapseKeys(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	for i := range 6 {
		f.send(collapsible("k"+itoa(i), "key"+itoa(i)))
	}
	c := f.login()
	f.send(msg("marker"))
	var got []*mcspb.DataMessageStanza
	for range 5 {
		got = append(got, c.data())
	}
	if want := []string{"k2", "k3", "k4", "k5", "marker"}; !slices.Equal(ids(got), want) {
		t.Errorf("delivered %v, want %v", ids(got), want)
	}
	f.waitStored(5)
}

func TestOverHundredDeleted(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	for i := range 101 {
		f.send(msg("n" + itoa(i)))
	}
	f.send(collapsible("keep", "ck"))
	c := f.login()
	got := []*mcspb.DataMessageStanza{c.data(), c.data()}
	if got[0].GetId() != "keep" {
		t.Errorf("first delivered %q, want the collapsible keep", got[0].GetId())
	}
	d := got[1]
	ad := appData(d)
	if ad["message_type"] != "deleted_messages" || ad["total_deleted"] != "101" || d.GetFrom() != f.sender.ID || d.GetCategory() != "com.example.app" {
		t.Errorf("marker %v (app_data %v), want deleted_messages, total_deleted 101, from the sender, category the app", d, ad)
	}
	f.waitStored(2) // keep and the marker
}

// TestDelayWhileIdle: held while the device says it is idle, delivered
// when it says it is active; priority high and other messages pass.
func TestDelayWhileIdle(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	c := f.dial()
	req := f.loginReq()
	req.Status = proto.Int64(1)
	c.loginWith(req)

	dwi := msg("dwi")
	dwi.DelayWhileIdle = true
	f.send(dwi)
	high := msg("high")
	high.DelayWhileIdle, high.Priority = true, gcm.PriorityHigh
	f.send(high)
	f.send(msg("plain"))
	// Live messages are taken in order, so dwi was held when these arrive.
	got := []*mcspb.DataMessageStanza{c.data(), c.data()}
	if want := []string{"high", "plain"}; !slices.Equal(ids(got), want) {
		t.Fatalf("while idle delivered %v, want %v", ids(got), want)
	}
	_, before := c.ping(false, proto.Int64(1)) // still idle
	if len(before) != 0 {
		t.Errorf("idle ping released %v", ids(before))
	}
	_, rest := c.ping(false, proto.Int64(0)) // active: the ack follows the release or precedes it
	if len(rest) == 0 {
		rest = append(rest, c.data())
	}
	if want := []string{"dwi"}; !slices.Equal(ids(rest), want) {
		t.Errorf("on active delivered %v, want %v", ids(rest), want)
	}
}

// TestDelayWhileIdleMany holds more than fit in memory; the rest are read
// back from the store, in order.
func TestDelayWhileIdleMany(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	c := f.dial()
	req := f.loginReq()
	req.Status = proto.Int64(1)
	c.loginWith(req)
	for i := range heldInMemory + 5 {
		in := msg("h" + itoa(i))
		in.DelayWhileIdle = true
		f.send(in)
	}
	f.send(msg("sync"))
	if d := c.data(); d.GetId() != "sync" {
		t.Fatalf("got %q, want sync first", d.GetId())
	}
	c.send(&mcspb.HeartbeatAck{Status: proto.Int64(0)})
	var got []string
	for range heldInMemory + 5 {
		got = append(got, c.data().GetId())
	}
	for i := range got {
		if got[i] != "h"+itoa(i) {
			t.Fatalf("released %v, want h0..h%d in order", got, heldInMemory+4)
		}
	}
}

// TestReconnectDeliversHeld: a reconnect delivers everything, idle or not.
func TestReconnectDeliversHeld(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	dwi := msg("dwi")
	dwi.DelayWhileIdle = true
	f.send(dwi)
	c := f.dial()
	req := f.loginReq()
	req.Status = proto.Int64(1)
	c.loginWith(req)
	if d := c.data(); d.GetId() != "dwi" {
		t.Errorf("got %q, want the stored dwi at login", d.GetId())
	}
}

func TestReceiptOnAck(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	ctx := context.Background()
	feed, err := f.rt.Attach(ctx, f.sender.ID, "ccs-test", 10)
	if err != nil {
		t.Fatal(err)
	}
	defer feed.Close()
	in := msg("rc1")
	in.DeliveryReceipt = true
	f.send(in)
	c := f.login()
	c.data()
	c.ping(true, nil)
	up := <-feed.C()
	if up.ID != "dr2:rc1" || !strings.Contains(string(up.JSON), `"original_message_id":"rc1"`) || !strings.Contains(string(up.JSON), `"category":"com.example.app"`) {
		t.Errorf("receipt %s %s, want dr2:rc1 for rc1 in com.example.app", up.ID, up.JSON)
	}
	if err := feed.Ack(up.ID); err != nil {
		t.Error(err)
	}
}

// TestWindowOverflow: with a window of 2 and no acks, live messages pile up
// past the live queue; they are read again from the store as the window
// opens, in order, none twice.
func TestWindowOverflow(t *testing.T) {
	f := newFixture(t, fixtureOpts{cfg: Config{MaxInFlight: 2}})
	c := f.login()
	n := liveQueueMax + 20
	for i := range n {
		f.send(msg("w" + itoa(i)))
	}
	var got []string
	for len(got) < n {
		d := c.data()
		got = append(got, d.GetId())
		if len(got)%2 == 0 {
			c.send(&mcspb.HeartbeatAck{LastStreamIdReceived: proto.Int32(c.in)})
		}
	}
	for i := range got {
		if got[i] != "w"+itoa(i) {
			t.Fatalf("delivered %v, want w0..w%d in order", got, n-1)
		}
	}
	c.ping(true, nil)
	f.waitStored(0)
}

// TestBacklogThenLive: messages stored before and during login arrive once
// each, in order.
func TestBacklogThenLive(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	for i := range 5 {
		f.send(msg("x" + itoa(i)))
	}
	c := f.dial()
	c.send(f.loginReq())
	for i := 5; i < 10; i++ {
		f.send(msg("x" + itoa(i)))
	}
	var got []string
	for len(got) < 10 {
		tag, m := c.recv()
		if d, ok := m.(*mcspb.DataMessageStanza); ok {
			got = append(got, d.GetId())
		} else if tag == mcs.TagClose {
			t.Fatal("closed")
		}
	}
	for i := range got {
		if got[i] != "x"+itoa(i) {
			t.Fatalf("delivered %v, want x0..x9 once each in order", got)
		}
	}
	_, extra := c.ping(false, nil)
	if len(extra) != 0 {
		t.Errorf("duplicates after the backlog: %v", ids(extra))
	}
}

// countingBackend counts the store calls of the ack path.
type countingBackend struct {
	*router.Router
	mu      sync.Mutex
	retires []uint64
	lookups int // StoredMessage calls
}

func (b *countingBackend) Retire(seq uint64) {
	b.mu.Lock()
	b.retires = append(b.retires, seq)
	b.mu.Unlock()
	b.Router.Retire(seq)
}

func (b *countingBackend) StoredMessage(ctx context.Context, seq uint64) (queue.StoredDown, error) {
	b.mu.Lock()
	b.lookups++
	b.mu.Unlock()
	return b.Router.StoredMessage(ctx, seq)
}

// TestAckTwiceInOnePacket: a SelectiveAck whose last_stream_id_received
// covers the same message (client/device acks that way) retires it once,
// with one receipt and no store lookup for the second signal.
func TestAckTwiceInOnePacket(t *testing.T) {
	cb := &countingBackend{}
	f := newFixture(t, fixtureOpts{backend: func(b Backend) Backend { cb.Router = b.(*router.Router); return cb }})
	ctx := context.Background()
	feed, err := f.rt.Attach(ctx, f.sender.ID, "ccs-test", 10)
	if err != nil {
		t.Fatal(err)
	}
	defer feed.Close()
	in := msg("tw1")
	in.DeliveryReceipt = true
	f.send(in)
	c := f.login()
	d := c.data()
	data, _ := proto.Marshal(&mcspb.SelectiveAck{Id: []string{d.GetPersistentId()}})
	c.send(&mcspb.IqStanza{Type: mcs.IqSet.Enum(), Id: proto.String(""), LastStreamIdReceived: proto.Int32(c.in),
		Extension: &mcspb.Extension{Id: proto.Int32(mcs.ExtensionSelectiveAck), Data: data}})
	c.ping(false, nil) // the ack has been applied
	f.waitStored(0)
	if up := <-feed.C(); up.ID != "dr2:tw1" {
		t.Errorf("receipt %s, want dr2:tw1", up.ID)
	}
	cb.mu.Lock()
	gotRetires, gotLookups := len(cb.retires), cb.lookups
	cb.mu.Unlock()
	if gotRetires != 1 || gotLookups != 0 {
		t.Errorf("retires = %d, store lookups = %d; want 1 and 0", gotRetires, gotLookups)
	}
	if got := counter(f.met.MCSAcked); got != 1 {
		t.Errorf("acked = %v, want 1", got)
	}
	select {
	case up := <-feed.C():
		t.Errorf("second receipt %s", up.ID)
	default:
	}
}
