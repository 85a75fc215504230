package queue

import (
	"context"
	"errors"
	"testing"

	"github.com/ccsd/ccsd/internal/cluster"
	"github.com/ccsd/ccsd/internal/gcm"
)

// open starts a real embedded JetStream in a temp dir and opens the queue.
func open(t *testing.T, dir string) (*Queue, *cluster.Node) {
	t.Helper()
	ctx := context.Background()
	node, err := cluster.Start(ctx, cluster.Config{DataDir: dir, ClientListen: "off"})
	if err != nil {
		t.Fatal(err)
	}
	q, err := Open(ctx, node, Config{})
	if err != nil {
		node.Close()
		t.Fatal(err)
	}
	return q, node
}

func TestSenders(t *testing.T) {
	ctx := context.Background()
	q, node := open(t, t.TempDir())
	defer node.Close()

	s, key, err := q.CreateSender(ctx, "dev")
	if err != nil {
		t.Fatal(err)
	}
	if len(s.ID) != 12 || len(key) != 39 {
		t.Errorf("sender id %q key length %d: want 12 digits and 39 characters", s.ID, len(key))
	}
	got, err := q.Sender(ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !got.VerifyKey([]byte(key)) {
		t.Error("VerifyKey(right key) = false")
	}
	if got.VerifyKey([]byte(key + "x")) {
		t.Error("VerifyKey(wrong key) = true")
	}
	if got.KeyHash == string(key) {
		t.Error("key stored in clear")
	}
	if err := q.RevokeSender(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	got, _ = q.Sender(ctx, s.ID)
	if got.VerifyKey([]byte(key)) {
		t.Error("VerifyKey after revoke = true")
	}
	if _, err := q.Sender(ctx, "999"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Sender(unknown) err = %v, want ErrNotFound", err)
	}
	if err := q.RevokeSender(ctx, "no such"); !errors.Is(err, ErrNotFound) {
		t.Errorf("RevokeSender(bad id) err = %v, want ErrNotFound", err)
	}
	list, err := q.Senders(ctx)
	if err != nil || len(list) != 1 || !list[0].Revoked {
		t.Errorf("Senders() = %+v, %v; want one revoked sender", list, err)
	}
}

func TestRegistrations(t *testing.T) {
	ctx := context.Background()
	q, node := open(t, t.TempDir())
	defer node.Close()
	s, _, err := q.CreateSender(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	req := RegisterRequest{AndroidID: 42, App: "com.example", SenderID: s.ID}
	r1, err := q.Register(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := q.Register(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if r1.ID != r2.ID {
		t.Errorf("re-register gave %q, want canonical %q", r2.ID, r1.ID)
	}
	other, err := q.Register(ctx, RegisterRequest{AndroidID: 42, App: "com.other", SenderID: s.ID})
	if err != nil || other.ID == r1.ID {
		t.Errorf("second app: %q, %v; want a new registration", other.ID, err)
	}
	if _, err := q.Register(ctx, RegisterRequest{AndroidID: 42, App: "x", SenderID: "123"}); !errors.Is(err, ErrUnknownSender) {
		t.Errorf("register for unknown sender: err = %v, want ErrUnknownSender", err)
	}
	got, err := q.Registration(ctx, r1.ID)
	if err != nil || got.SenderID != s.ID || got.AndroidID != 42 || !got.Active() {
		t.Errorf("Registration() = %+v, %v", got, err)
	}
	un, err := q.UnregisterApp(ctx, 42, "com.example", "")
	if err != nil || len(un) != 1 || un[0].ID != r1.ID {
		t.Fatalf("UnregisterApp = %+v, %v", un, err)
	}
	got, _ = q.Registration(ctx, r1.ID)
	if got.Active() {
		t.Error("registration still active after unregister")
	}
	r3, err := q.Register(ctx, req)
	if err != nil || r3.ID == r1.ID {
		t.Errorf("register after unregister = %q, %v; want a fresh id", r3.ID, err)
	}
}

func TestDownSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	q, node := open(t, dir)
	in := gcm.Inbound{Kind: gcm.InboundSend, To: []byte("REG"), MessageID: []byte("m-1"), TTL: gcm.MaxTTL, Data: []byte(`{"k":"v"}`)}
	rec := gcm.AppendRecord(nil, []byte("123"), &in, 1)
	p, err := q.PublishDown(DownSubject(7, "REG", nil), false, in.TTL, rec)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	in.MessageID = []byte("m-2")
	in.CollapseKey = []byte("score")
	in.TTL = 60
	for range 3 { // only the newest per collapse key is kept
		p, err := q.PublishDown(DownSubject(7, "REG", in.CollapseKey), true, in.TTL, gcm.AppendRecord(nil, []byte("123"), &in, 2))
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	node.Close()

	q, node = open(t, dir)
	defer node.Close()
	got, err := q.ReadDevice(ctx, 7)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Message.MessageID != "m-1" || got[1].Message.MessageID != "m-2" {
		t.Fatalf("after restart: %+v; want m-1 then one m-2", got)
	}
	if string(got[0].Message.Data) != `{"k":"v"}` || got[0].Message.SenderID != "123" {
		t.Errorf("record = %+v", got[0].Message)
	}
	if none, err := q.ReadDevice(ctx, 8); err != nil || len(none) != 0 {
		t.Errorf("other device: %v, %v; want none", none, err)
	}
}
