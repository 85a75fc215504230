package router

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ccsd/ccsd/internal/cluster"
	"github.com/ccsd/ccsd/internal/gcm"
	"github.com/ccsd/ccsd/internal/queue"
)

type fixture struct {
	q      *queue.Queue
	rt     *Router
	sender queue.Sender
	key    queue.APIKey
	reg    queue.Registration
}

func newFixture(t *testing.T, cfg Config) *fixture {
	return newFixtureQ(t, cfg, queue.Config{})
}

func newFixtureQ(t *testing.T, cfg Config, qcfg queue.Config) *fixture {
	t.Helper()
	ctx := context.Background()
	node, err := cluster.Start(ctx, cluster.Config{DataDir: t.TempDir(), ClientListen: "off"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { node.Close() })
	q, err := queue.Open(ctx, node, qcfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Queue = q
	rt, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{q: q, rt: rt}
	if f.sender, f.key, err = q.CreateSender(ctx, "test"); err != nil {
		t.Fatal(err)
	}
	if f.reg, err = q.Register(ctx, queue.RegisterRequest{AndroidID: 1001, App: "com.example", SenderID: f.sender.ID}); err != nil {
		t.Fatal(err)
	}
	return f
}

func send(to, id string) *gcm.Inbound {
	return &gcm.Inbound{Kind: gcm.InboundSend, To: []byte(to), MessageID: []byte(id), TTL: gcm.MaxTTL, Data: []byte(`{"a":"b"}`)}
}

func TestSendAnswers(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, Config{})
	other, _, err := f.q.CreateSender(ctx, "other")
	if err != nil {
		t.Fatal(err)
	}
	gone, err := f.q.Register(ctx, queue.RegisterRequest{AndroidID: 1002, App: "com.example", SenderID: f.sender.ID})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.q.Unregister(ctx, gone.ID); err != nil {
		t.Fatal(err)
	}
	dry := send(f.reg.ID, "dry")
	dry.DryRun = true
	wrongPkg := send(f.reg.ID, "pkg")
	wrongPkg.RestrictedPackageName = []byte("com.other")
	ttl0 := send(f.reg.ID, "ttl0")
	ttl0.TTL = 0

	tests := []struct {
		name     string
		sender   string
		in       *gcm.Inbound
		want     gcm.ErrorCode
		stored   bool
		wantDesc string
	}{
		{"stored", f.sender.ID, send(f.reg.ID, "m1"), "", true, ""},
		{"unknown registration", f.sender.ID, send("APA91bnope", "m2"), gcm.BadRegistration, false, "Invalid token on 'to' field: APA91bnope"},
		{"other sender's registration", other.ID, send(f.reg.ID, "m3"), gcm.BadRegistration, false, ""},
		{"unregistered", f.sender.ID, send(gone.ID, "m4"), gcm.DeviceUnregistered, false, ""},
		{"dry run", f.sender.ID, dry, "", false, ""},
		{"restricted package mismatch", f.sender.ID, wrongPkg, gcm.BadRegistration, false, ""},
		{"ttl 0 is never stored", f.sender.ID, ttl0, "", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tk := f.rt.Send(ctx, tt.sender, tt.in)
			if tk.Stored() != tt.stored {
				t.Errorf("stored = %v, want %v", tk.Stored(), tt.stored)
			}
			res := tk.Wait(ctx)
			if res.Code != tt.want {
				t.Errorf("code = %q (%s), want %q", res.Code, res.Description, tt.want)
			}
			if tt.wantDesc != "" && res.Description != tt.wantDesc {
				t.Errorf("description = %q, want %q", res.Description, tt.wantDesc)
			}
		})
	}
	got, err := f.q.ReadDevice(ctx, 1001)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Message.MessageID != "m1" || got[0].Message.SenderID != f.sender.ID {
		t.Errorf("stored messages = %+v; want only m1", got)
	}
}

func TestRateLimit(t *testing.T) {
	ctx := context.Background()
	now := time.Unix(1000, 0)
	f := newFixture(t, Config{DeviceRate: 1, DeviceBurst: 2, Now: func() time.Time { return now }})
	var codes []gcm.ErrorCode
	for i := range 3 {
		in := send(f.reg.ID, "r")
		in.DryRun = true
		_ = i
		codes = append(codes, f.rt.Send(ctx, f.sender.ID, in).Wait(ctx).Code)
	}
	now = now.Add(time.Second)
	in := send(f.reg.ID, "later")
	in.DryRun = true
	codes = append(codes, f.rt.Send(ctx, f.sender.ID, in).Wait(ctx).Code)
	want := []gcm.ErrorCode{"", "", gcm.DeviceMessageRateExceeded, ""}
	for i := range want {
		if codes[i] != want[i] {
			t.Errorf("send %d: code %q, want %q", i, codes[i], want[i])
		}
	}
}

func TestAuthenticateAndRevoke(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := newFixture(t, Config{})
	revoked := make(chan string, 1)
	f.rt.OnRevoke(func(id string) { revoked <- id })
	done := make(chan error, 1)
	go func() { done <- f.rt.Run(ctx) }()

	if err := f.rt.Authenticate(ctx, f.sender.ID, []byte(f.key)); err != nil {
		t.Errorf("right key: %v", err)
	}
	if err := f.rt.Authenticate(ctx, f.sender.ID, []byte("AIzawrong")); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("wrong key: %v, want ErrUnauthorized", err)
	}
	if err := f.rt.Authenticate(ctx, "424242", []byte(f.key)); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("unknown sender: %v, want ErrUnauthorized", err)
	}
	if err := f.q.RevokeSender(ctx, f.sender.ID); err != nil {
		t.Fatal(err)
	}
	if got := <-revoked; got != f.sender.ID {
		t.Errorf("revoked %q, want %q", got, f.sender.ID)
	}
	if err := f.rt.Authenticate(ctx, f.sender.ID, []byte(f.key)); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("revoked key: %v, want ErrUnauthorized", err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run returned %v, want context.Canceled", err)
	}
}

// TestFullDeviceIsRefused: once a device holds MaxPerDevice stored
// messages, the next one is NACKed DEVICE_MESSAGE_RATE_EXCEEDED and every
// ACKed one is still stored (JetStream never drops to make room).
func TestFullDeviceIsRefused(t *testing.T) {
	ctx := context.Background()
	f := newFixtureQ(t, Config{}, queue.Config{MaxPerDevice: 3})
	var codes []gcm.ErrorCode
	for i := range 5 {
		codes = append(codes, f.rt.Send(ctx, f.sender.ID, send(f.reg.ID, string(rune('a'+i)))).Wait(ctx).Code)
	}
	want := []gcm.ErrorCode{"", "", "", gcm.DeviceMessageRateExceeded, gcm.DeviceMessageRateExceeded}
	for i := range want {
		if codes[i] != want[i] {
			t.Errorf("send %d: %q, want %q", i, codes[i], want[i])
		}
	}
	got, err := f.q.ReadDevice(ctx, 1001)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Message.MessageID != "a" || got[2].Message.MessageID != "c" {
		t.Errorf("stored = %+v; want a, b, c", got)
	}
	// Collapsible messages replace each other and are not refused.
	for i := range 3 {
		in := send(f.reg.ID, "ck")
		in.CollapseKey = []byte("k")
		_ = i
		if r := f.rt.Send(ctx, f.sender.ID, in).Wait(ctx); !r.OK() {
			t.Errorf("collapsible send: %+v", r)
		}
	}
}

// TestFeedSameMessageID: two upstream messages with the same message_id
// (two devices chose the same id) are never in flight together on one
// connection, so the app server's ACK names exactly one; both are delivered.
func TestFeedSameMessageID(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	f := newFixture(t, Config{})
	for _, dev := range []string{"a", "b"} {
		if err := f.q.PublishUp(ctx, f.sender.ID, "same", dev+"/same", []byte(`{"from":"`+dev+`"}`)); err != nil {
			t.Fatal(err)
		}
	}
	feed, err := f.rt.Attach(ctx, f.sender.ID, "c1", 10)
	if err != nil {
		t.Fatal(err)
	}
	defer feed.Close()
	first := <-feed.C()
	if err := feed.Ack("same"); err != nil {
		t.Fatal(err)
	}
	second := <-feed.C()
	if first.ID != "same" || second.ID != "same" || string(first.JSON) == string(second.JSON) {
		t.Errorf("got %s then %s; want both messages once each", first.JSON, second.JSON)
	}
	if err := feed.Ack("same"); err != nil {
		t.Fatal(err)
	}
	if err := feed.Ack("same"); !errors.Is(err, ErrUnknownAck) {
		t.Errorf("third ACK: %v, want ErrUnknownAck", err)
	}
}
