package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ccsd/ccsd/client/ccs"
)

// e2eLine is one line of `ccsd device listen`.
type e2eLine struct {
	PersistentID string            `json:"persistent_id"`
	From         string            `json:"from"`
	Category     string            `json:"category"`
	CollapseKey  string            `json:"collapse_key"`
	MessageType  string            `json:"message_type"`
	Data         map[string]string `json:"data"`
}

// deviceRegister runs `ccsd device register` and returns the registration id.
func e2eRegister(t *testing.T, dir, state, sender string) string {
	t.Helper()
	out, err := runCLI(t, "device", "register", "--data-dir", dir, "--sender", sender, "--state", state, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		RegistrationID string `json:"registration_id"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.RegistrationID == "" {
		t.Fatalf("device register = %q, %v", out, err)
	}
	return r.RegistrationID
}

// deviceListen runs `ccsd device listen --count n` and returns its lines.
func e2eListen(t *testing.T, dir, state string, n int) []e2eLine {
	t.Helper()
	out, err := runCLI(t, "device", "listen", "--data-dir", dir, "--state", state, "--count", fmt.Sprint(n), "--json", "--timeout", "60s")
	if err != nil {
		t.Fatalf("device listen: %v\n%s", err, out)
	}
	var lines []e2eLine
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var l e2eLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("device listen line %q: %v", sc.Text(), err)
		}
		lines = append(lines, l)
	}
	return lines
}

// TestDeviceEndToEnd: app server → ccsd → device (offline, then from the
// store at login), the delivery receipt back to the app server, and an
// upstream message from the device, all through the real binary and CLI.
func TestDeviceEndToEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	s := startServer(t, dir)
	state := filepath.Join(dir, "phone.json")
	reg := e2eRegister(t, dir, state, s.dev.SenderID)
	if again := e2eRegister(t, dir, state, s.dev.SenderID); again != reg {
		t.Errorf("re-register = %q, want the canonical %q", again, reg)
	}

	receipts := make(chan *ccs.Receipt, 4)
	upstream := make(chan *ccs.Upstream, 4)
	c := s.dial(ctx, ccs.Config{
		OnReceipt:  func(r *ccs.Receipt) error { receipts <- r; return nil },
		OnUpstream: func(u *ccs.Upstream) error { upstream <- u; return nil },
	})
	for i, m := range []*ccs.Message{
		{To: reg, MessageID: "e2e-1", Data: map[string]string{"n": "1"}, DeliveryReceiptRequested: true},
		{To: reg, MessageID: "e2e-2", Data: map[string]string{"n": "2"}},
		{To: reg, MessageID: "e2e-3", Data: map[string]string{"n": "3"}, CollapseKey: "score"},
	} {
		r, err := c.Send(ctx, m)
		if err != nil || !r.OK() {
			t.Fatalf("send %d: %+v, %v", i, r, err)
		}
	}
	got := e2eListen(t, dir, state, 3)
	if len(got) != 3 {
		t.Fatalf("device got %d messages, want 3: %+v", len(got), got)
	}
	for i, l := range got {
		if l.Data["n"] != fmt.Sprint(i+1) || l.From != s.dev.SenderID || l.Category == "" || l.PersistentID == "" {
			t.Errorf("message %d = %+v", i, l)
		}
	}
	if got[2].CollapseKey != "score" {
		t.Errorf("collapse key = %q, want score", got[2].CollapseKey)
	}
	select {
	case r := <-receipts:
		if r.OriginalMessageID != "e2e-1" || r.DeviceRegistrationID != reg || r.Status != "MESSAGE_SENT_TO_DEVICE" {
			t.Errorf("receipt = %+v", r)
		}
	case <-ctx.Done():
		t.Fatal("no delivery receipt")
	}
	// Acked messages are gone: a second login gets nothing new; a new message
	// arrives live.
	if r, err := c.Send(ctx, &ccs.Message{To: reg, MessageID: "e2e-4", Data: map[string]string{"n": "4"}}); err != nil || !r.OK() {
		t.Fatalf("send 4: %+v, %v", r, err)
	}
	if got := e2eListen(t, dir, state, 1); len(got) != 1 || got[0].Data["n"] != "4" {
		t.Fatalf("second login got %+v, want only message 4", got)
	}

	// Upstream: device → ccsd → app server.
	out, err := runCLI(t, "device", "send", "--data-dir", dir, "--state", state, "--to", s.dev.SenderID,
		"--json", `{"data":{"ping":"pong"}}`, "--message-id", "up-1")
	if err != nil || !strings.Contains(out, `"stored"`) {
		t.Fatalf("device send = %q, %v", out, err)
	}
	select {
	case u := <-upstream:
		if u.MessageID != "up-1" || u.From != reg || u.Data["ping"] != "pong" || u.Category == "" {
			t.Errorf("upstream = %+v", u)
		}
	case <-ctx.Done():
		t.Fatal("no upstream message")
	}
	// Unregister: later sends are NACKed DEVICE_UNREGISTERED.
	if _, err := runCLI(t, "device", "unregister", "--data-dir", dir, "--state", state); err != nil {
		t.Fatal(err)
	}
	if r, err := c.Send(ctx, &ccs.Message{To: reg, MessageID: "e2e-5"}); err != nil || r.Error != "DEVICE_UNREGISTERED" {
		t.Errorf("send after unregister: %+v, %v; want DEVICE_UNREGISTERED", r, err)
	}
}

// TestDeviceBacklogSurvivesKill9: messages stored for an offline device
// survive kill -9 of ccsd; after a restart the device receives all of them.
func TestDeviceBacklogSurvivesKill9(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	s := startServer(t, dir)
	state := filepath.Join(dir, "phone.json")
	reg := e2eRegister(t, dir, state, s.dev.SenderID)
	c := s.dial(ctx, ccs.Config{})
	const n = 60
	for i := range n {
		r, err := c.Send(ctx, &ccs.Message{To: reg, MessageID: fmt.Sprint("k-", i), Data: map[string]string{"i": fmt.Sprint(i)}})
		if err != nil || !r.OK() {
			t.Fatalf("send %d: %+v, %v", i, r, err)
		}
	}
	c.Close()
	s.kill()
	s = startServer(t, dir)
	got := e2eListen(t, dir, state, n)
	seen := map[string]bool{}
	for _, l := range got {
		seen[l.Data["i"]] = true
	}
	for i := range n {
		if !seen[fmt.Sprint(i)] {
			t.Errorf("message %d not delivered after kill -9 and restart", i)
		}
	}
	if err := s.term(); err != nil {
		t.Errorf("exit: %v", err)
	}
}

// TestUpstreamRedelivery: an upstream message the app server did not ACK
// before disconnecting is redelivered on its next connection.
func TestUpstreamRedelivery(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	s := startServer(t, dir)
	state := filepath.Join(dir, "phone.json")
	reg := e2eRegister(t, dir, state, s.dev.SenderID)

	first := make(chan *ccs.Upstream, 1)
	c1 := s.dial(ctx, ccs.Config{OnUpstream: func(u *ccs.Upstream) error {
		first <- u
		return fmt.Errorf("not acking") // leave it un-ACKed
	}})
	if out, err := runCLI(t, "device", "send", "--data-dir", dir, "--state", state, "--to", s.dev.SenderID,
		"--json", `{"data":{"k":"v"}}`, "--message-id", "redeliver-1"); err != nil {
		t.Fatalf("device send = %q, %v", out, err)
	}
	u := <-first
	if u.MessageID != "redeliver-1" || u.From != reg {
		t.Fatalf("first delivery = %+v", u)
	}
	c1.Close()
	second := make(chan *ccs.Upstream, 1)
	s.dial(ctx, ccs.Config{OnUpstream: func(u *ccs.Upstream) error { second <- u; return nil }})
	select {
	case u := <-second:
		if u.MessageID != "redeliver-1" {
			t.Errorf("redelivered %+v", u)
		}
	case <-ctx.Done():
		t.Fatal("upstream message not redelivered after the app server disconnected")
	}
	_ = exec.ErrNotFound
}
