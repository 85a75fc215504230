package cluster

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// testContext bounds a test's waits so a broken cluster fails instead of hanging.
func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// tWriter sends log lines to t.Log.
type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func startNode(t *testing.T, cfg Config) *Node {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	n, err := Start(testContext(t), cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func createStream(t *testing.T, ctx context.Context, js jetstream.JetStream, replicas int) jetstream.Stream {
	t.Helper()
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name:     "T",
		Subjects: []string{"t.>"},
		Storage:  jetstream.FileStorage,
		Replicas: replicas,
	})
	if err != nil {
		t.Fatalf("CreateStream: %v", err)
	}
	return s
}

func TestRestartKeepsData(t *testing.T) {
	dir := t.TempDir()
	ctx := testContext(t)

	n := startNode(t, Config{DataDir: dir})
	if n.Replicas != 1 {
		t.Errorf("Replicas = %d, want 1", n.Replicas)
	}
	if !strings.HasPrefix(n.ClientURL(), "nats://127.0.0.1:") {
		t.Errorf("ClientURL = %q, want nats://127.0.0.1:PORT", n.ClientURL())
	}
	createStream(t, ctx, n.JS, n.Replicas)
	if _, err := n.JS.Publish(ctx, "t.a", []byte("kept")); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	name := n.Name
	if err := n.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, infoFileName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("nats.json after Close: stat err = %v, want not exist", err)
	}

	n2 := startNode(t, Config{DataDir: dir})
	if n2.Name != name {
		t.Errorf("Name after restart = %q, want %q", n2.Name, name)
	}
	s, err := n2.JS.Stream(ctx, "T")
	if err != nil {
		t.Fatalf("Stream after restart: %v", err)
	}
	m, err := s.GetMsg(ctx, 1)
	if err != nil {
		t.Fatalf("GetMsg after restart: %v", err)
	}
	if got, want := string(m.Data), "kept"; got != want {
		t.Errorf("message after restart = %q, want %q", got, want)
	}
	if err := n2.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := n2.Close(); err != nil {
		t.Errorf("Close twice: %v", err)
	}
}

func TestConfigFiles(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, Config{DataDir: dir})
	for _, name := range []string{infoFileName, "node-id", "LOCK"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("stat %s: %v", name, err)
		}
		if got, want := fi.Mode().Perm(), os.FileMode(0o600); got != want {
			t.Errorf("%s mode = %v, want %v", name, got, want)
		}
	}
	info, err := readConnInfo(filepath.Join(dir, infoFileName))
	if err != nil {
		t.Fatal(err)
	}
	if info.URL != n.ClientURL() || len(info.Token) < 32 || info.Name != n.Name {
		t.Errorf("nats.json = %+v, want url %s, name %s and a token", info, n.ClientURL(), n.Name)
	}
}

func TestLockConflict(t *testing.T) {
	dir := t.TempDir()
	startNode(t, Config{DataDir: dir})
	_, err := Start(testContext(t), Config{DataDir: dir})
	if !errors.Is(err, ErrDataDirInUse) {
		t.Fatalf("second Start: err = %v, want ErrDataDirInUse", err)
	}
	if want := "data dir " + dir + " is in use by another ccsd serve"; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
}

func TestConnectWhileServing(t *testing.T) {
	dir := t.TempDir()
	ctx := testContext(t)
	serve := startNode(t, Config{DataDir: dir})
	createStream(t, ctx, serve.JS, 1)

	cli, err := Connect(ctx, dir, testLogger(t))
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	defer cli.Close()
	if got, want := cli.NC.ConnectedUrl(), serve.ClientURL(); got != want {
		t.Errorf("Connect went to %q, want TCP %q", got, want)
	}
	if cli.Name != serve.Name {
		t.Errorf("Connect Name = %q, want %q", cli.Name, serve.Name)
	}
	if _, err := cli.JS.Publish(ctx, "t.cli", []byte("x")); err != nil {
		t.Fatalf("Publish through Connect: %v", err)
	}
	if err := cli.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	// The serve is unaffected by the command's Close, and nats.json stays.
	if _, err := serve.JS.Publish(ctx, "t.serve", []byte("y")); err != nil {
		t.Fatalf("Publish after client Close: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, infoFileName)); err != nil {
		t.Errorf("nats.json after client Close: %v", err)
	}

	tests := []struct {
		name string
		opts []nats.Option
	}{
		{"wrong token", []nats.Option{nats.Token("wrong"), nats.MaxReconnects(0)}},
		{"no token", []nats.Option{nats.MaxReconnects(0)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nc, err := nats.Connect(serve.ClientURL(), tt.opts...)
			if err == nil {
				nc.Close()
				t.Fatal("connect succeeded, want authorization error")
			}
			if !errors.Is(err, nats.ErrAuthorization) {
				t.Errorf("err = %v, want %v", err, nats.ErrAuthorization)
			}
		})
	}
}

func TestConnectWithoutServe(t *testing.T) {
	dir := t.TempDir()
	ctx := testContext(t)
	{
		n := startNode(t, Config{DataDir: dir})
		createStream(t, ctx, n.JS, 1)
		if err := n.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// A nats.json left behind by a killed serve must not send Connect to a dead address.
	stale := connInfo{URL: "nats://127.0.0.1:1", Token: "stale"}
	if err := writeConnInfo(filepath.Join(dir, infoFileName), stale); err != nil {
		t.Fatal(err)
	}

	cli, err := Connect(ctx, dir, testLogger(t))
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	if cli.srv == nil {
		t.Fatal("Connect without a serve did not start an embedded server")
	}
	if got := cli.ClientURL(); got != "" {
		t.Errorf("ClientURL = %q, want none", got)
	}
	if _, err := os.Stat(filepath.Join(dir, infoFileName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("nats.json while the command runs: stat err = %v, want not exist", err)
	}
	if _, err := cli.JS.Publish(ctx, "t.a", []byte("x")); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	// The command holds the dir, so a serve cannot start until it is done.
	if _, err := Start(ctx, Config{DataDir: dir}); !errors.Is(err, ErrDataDirInUse) {
		t.Errorf("Start during a command: err = %v, want ErrDataDirInUse", err)
	}
	if err := cli.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	n := startNode(t, Config{DataDir: dir})
	s, err := n.JS.Stream(ctx, "T")
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := info.State.Msgs, uint64(1); got != want {
		t.Errorf("messages = %d, want %d", got, want)
	}
}

// TestCloseLeavesNoGoroutines runs serially, so no other test's servers are alive: every
// goroutine of nats or of this package must be gone once Close returns (the nats client's
// goroutines end asynchronously after the closed callback, so wait for them, bounded).
func TestCloseLeavesNoGoroutines(t *testing.T) {
	ctx := testContext(t)
	n, err := Start(ctx, Config{DataDir: t.TempDir(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	createStream(t, ctx, n.JS, 1)
	if ourGoroutines() == "" {
		t.Fatal("no nats goroutines found while a node runs: the stack filter is broken")
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	cli, err := Connect(ctx, t.TempDir(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := cli.Close(); err != nil {
		t.Fatal(err)
	}
	var left string
	err = poll(ctx, func() bool {
		left = ourGoroutines()
		return left == ""
	}, "waiting for goroutines to end")
	if err != nil {
		t.Fatalf("goroutines left after Close:\n%s", left)
	}
}

// ourGoroutines returns the stacks of live goroutines running nats or cluster code.
func ourGoroutines() string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "TestCloseLeavesNoGoroutines") || strings.Contains(g, "testing.tRunner") && !strings.Contains(g, "nats-io") {
			continue
		}
		if strings.Contains(g, "github.com/nats-io/") || strings.Contains(g, "ccsd/internal/cluster.") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}

func TestStartExternal(t *testing.T) {
	ctx := testContext(t)
	dir := t.TempDir()
	serve := startNode(t, Config{DataDir: dir})
	info, err := readConnInfo(filepath.Join(dir, infoFileName))
	if err != nil {
		t.Fatal(err)
	}
	withToken := strings.Replace(info.URL, "nats://", "nats://"+info.Token+"@", 1)

	ext := startNode(t, Config{DataDir: t.TempDir(), URL: withToken, NodeName: "ext"})
	if ext.srv != nil || ext.ClientURL() != "" {
		t.Error("external Start ran an embedded server")
	}
	if got, want := ext.Name, "ext"; got != want {
		t.Errorf("Name = %q, want %q", got, want)
	}
	if got, want := ext.Replicas, 1; got != want {
		t.Errorf("Replicas = %d, want %d", got, want)
	}
	createStream(t, ctx, ext.JS, 1)
	if _, err := serve.JS.Stream(ctx, "T"); err != nil {
		t.Errorf("stream created through the external connection not visible to the server: %v", err)
	}

	if _, err := Start(ctx, Config{DataDir: t.TempDir(), URL: info.URL}); !errors.Is(err, nats.ErrAuthorization) {
		t.Errorf("external Start without the token: err = %v, want %v", err, nats.ErrAuthorization)
	}
}

func TestConnectServeWithoutListener(t *testing.T) {
	dir := t.TempDir()
	startNode(t, Config{DataDir: dir, ClientListen: ClientListenOff})
	ctx, cancel := context.WithTimeout(testContext(t), 100*time.Millisecond)
	defer cancel()
	_, err := Connect(ctx, dir, testLogger(t))
	if !errors.Is(err, ErrDataDirInUse) {
		t.Errorf("Connect: err = %v, want ErrDataDirInUse", err)
	}
}
