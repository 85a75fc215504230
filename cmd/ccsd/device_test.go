package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ccsd/ccsd/internal/certs"
	"github.com/ccsd/ccsd/internal/deviceserver"
	"github.com/ccsd/ccsd/internal/gcm"
	"github.com/ccsd/ccsd/internal/httpapi"
	"github.com/ccsd/ccsd/internal/metrics"
	"github.com/ccsd/ccsd/internal/queue"
	"github.com/ccsd/ccsd/internal/router"
	"github.com/ccsd/ccsd/internal/router/routertest"
)

// deviceSide runs the device endpoints of a server (router, HTTPS routes,
// MCS) and writes DIR/endpoints.json as ccsd serve does.
type deviceSide struct {
	dir    string
	q      *queue.Queue
	rt     *router.Router
	sender queue.Sender
}

func newDeviceSide(t *testing.T) *deviceSide {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	met := metrics.New()
	q, rt := routertest.Start(t, filepath.Join(dir, "nats"), router.Config{Logger: log, Metrics: met}, queue.Config{})
	var err error
	d := &deviceSide{dir: dir, q: q, rt: rt}
	if d.sender, _, err = q.CreateSender(ctx, "test"); err != nil {
		t.Fatal(err)
	}
	bundle, err := certs.Ensure(filepath.Join(dir, "tls"))
	if err != nil {
		t.Fatal(err)
	}

	hln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: httpapi.DeviceHandler(rt, log, met), TLSConfig: bundle.ServerTLS(), ReadHeaderTimeout: 10 * time.Second}
	hdone := make(chan struct{})
	go func() { defer close(hdone); _ = hs.ServeTLS(hln, "", "") }()
	t.Cleanup(func() { _ = hs.Close(); <-hdone })

	ds, err := deviceserver.New(deviceserver.Config{TLSConfig: bundle.ServerTLS(), Backend: rt, Logger: log, Metrics: met})
	if err != nil {
		t.Fatal(err)
	}
	mln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mdone := make(chan struct{})
	go func() { defer close(mdone); _ = ds.Serve(mln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = ds.Shutdown(ctx)
		<-mdone
	})
	ep := map[string]string{"device": hln.Addr().String(), "mcs": mln.Addr().String(), "ca_file": bundle.CAFile}
	if err := writeJSONFile(filepath.Join(dir, "endpoints.json"), ep); err != nil {
		t.Fatal(err)
	}
	return d
}

// run runs `ccsd device ARGS...` and returns its stdout.
func (d *deviceSide) run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := cmdDevice(context.Background(), args, &out, &errb)
	if err != nil && errb.Len() > 0 {
		t.Logf("stderr: %s", errb.String())
	}
	return out.String(), err
}

func (d *deviceSide) must(t *testing.T, args ...string) string {
	t.Helper()
	out, err := d.run(t, args...)
	if err != nil {
		t.Fatalf("ccsd device %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func (d *deviceSide) send(t *testing.T, reg, id, data string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	in := &gcm.Inbound{Kind: gcm.InboundSend, To: []byte(reg), MessageID: []byte(id), TTL: gcm.MaxTTL, Data: []byte(data)}
	if res := d.rt.Send(ctx, d.sender.ID, in).Wait(ctx); !res.OK() {
		t.Fatalf("send %s: %s", id, res.Code)
	}
}

func (d *deviceSide) state(t *testing.T) deviceState {
	t.Helper()
	var st deviceState
	if err := readJSONFile(filepath.Join(d.dir, "device.json"), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func listenLines(t *testing.T, out string) []listenLine {
	t.Helper()
	var lines []listenLine
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var l listenLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		lines = append(lines, l)
	}
	return lines
}

func TestDeviceSimulator(t *testing.T) {
	d := newDeviceSide(t)
	ctx := context.Background()

	// register: prints the id, writes the state; again: same device, same id.
	out := d.must(t, "register", "--data-dir", d.dir, "--sender", d.sender.ID, "--json")
	var got struct {
		RegistrationID string `json:"registration_id"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil || got.RegistrationID == "" {
		t.Fatalf("register printed %q (%v), want {\"registration_id\":…}", out, err)
	}
	st := d.state(t)
	if st.AndroidID == 0 || len(st.Registrations) != 1 || st.Registrations[0].RegistrationID != got.RegistrationID {
		t.Fatalf("state = %+v; want credentials and the registration", st)
	}
	plain := d.must(t, "register", "--data-dir", d.dir, "--sender", d.sender.ID)
	if strings.TrimSpace(plain) != got.RegistrationID {
		t.Errorf("second register printed %q, want the same id %q", plain, got.RegistrationID)
	}
	if st2 := d.state(t); st2.AndroidID != st.AndroidID || len(st2.Registrations) != 1 {
		t.Errorf("second register: state %+v; want the same android id %d and one registration", st2, st.AndroidID)
	}

	// listen: each message is one JSON line, acked.
	d.send(t, got.RegistrationID, "m1", `{"n":"1"}`)
	d.send(t, got.RegistrationID, "m2", `{"n":"2"}`)
	lines := listenLines(t, d.must(t, "listen", "--data-dir", d.dir, "--count", "2", "--timeout", "20s"))
	if len(lines) != 2 || lines[0].Data["n"] != "1" || lines[1].Data["n"] != "2" {
		t.Fatalf("listen printed %+v; want messages 1 and 2", lines)
	}
	for _, l := range lines {
		if l.From != d.sender.ID || l.Category != defaultDeviceApp || l.PersistentID == "" {
			t.Errorf("line %+v: want from %s, category %s, a persistent id", l, d.sender.ID, defaultDeviceApp)
		}
	}
	// The acked messages do not come back.
	d.send(t, got.RegistrationID, "m3", `{"n":"3"}`)
	lines = listenLines(t, d.must(t, "listen", "--data-dir", d.dir, "--count", "1", "--timeout", "20s"))
	if len(lines) != 1 || lines[0].Data["n"] != "3" {
		t.Fatalf("second listen printed %+v; want only message 3", lines)
	}

	// send: upstream, printed once stored.
	out = d.must(t, "send", "--data-dir", d.dir, "--to", d.sender.ID, "--json", `{"data":{"hello":"world","n":5}}`, "--message-id", "up-1")
	var sent map[string]string
	if err := json.Unmarshal([]byte(out), &sent); err != nil || sent["message_id"] != "up-1" || sent["status"] != "stored" {
		t.Fatalf("send printed %q, want message_id up-1, status stored", out)
	}
	uc, err := d.q.UpstreamConsumer(ctx, d.sender.ID)
	if err != nil {
		t.Fatal(err)
	}
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var msgs []*queue.UpMsg
	if err := uc.Fetch(fctx, 1, 5*time.Second, func(m *queue.UpMsg) { msgs = append(msgs, m) }); err != nil || len(msgs) != 1 || msgs[0].ID != "up-1" {
		t.Fatalf("stored upstream = %v, %v; want up-1", msgs, err)
	}
	if out, err := d.run(t, "send", "--data-dir", d.dir, "--to", "999999999999", "--message-id", "up-2"); err == nil {
		t.Errorf("send to an unknown sender succeeded: %s", out)
	}

	// unregister: the registration is gone on both sides.
	out = d.must(t, "unregister", "--data-dir", d.dir)
	if strings.TrimSpace(out) != `{"deleted":"`+defaultDeviceApp+`"}` {
		t.Errorf("unregister printed %q", out)
	}
	if st := d.state(t); len(st.Registrations) != 0 {
		t.Errorf("state after unregister has %+v", st.Registrations)
	}
	if reg, err := d.rt.Registration(ctx, got.RegistrationID); err != nil || reg.Active() {
		t.Errorf("registration after unregister = %+v, %v; want inactive", reg, err)
	}
}

func TestDeviceUsageErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name  string
		args  []string
		usage bool
	}{
		{"no command", nil, true},
		{"unknown command", []string{"dance"}, true},
		{"register without sender", []string{"register", "--data-dir", dir}, true},
		{"register without a server", []string{"register", "--data-dir", dir, "--sender", "1"}, false},
		{"listen without state", []string{"listen", "--data-dir", dir}, false},
		{"send without --to", []string{"send", "--data-dir", dir}, true},
		{"send with bad json", []string{"send", "--data-dir", dir, "--to", "1", "--json", "[1]"}, true},
		{"listen with negative count", []string{"listen", "--count", "-1"}, true},
		{"positional argument", []string{"unregister", "extra"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			err := cmdDevice(context.Background(), tt.args, &out, &errb)
			if err == nil {
				t.Fatal("no error")
			}
			var ue usageError
			if got := errors.As(err, &ue); got != tt.usage {
				t.Errorf("err = %v; usage error %v, want %v", err, got, tt.usage)
			}
		})
	}
}
