package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ccsd/ccsd/client/ccs"
	"github.com/ccsd/ccsd/internal/certs"
	"github.com/ccsd/ccsd/internal/cluster"
	"github.com/ccsd/ccsd/internal/queue"
)

// ccsdBin is the real binary, built once for the end-to-end tests.
var ccsdBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ccsd-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ccsdBin = filepath.Join(dir, "ccsd")
	build := exec.Command("go", "build", "-o", ccsdBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building ccsd:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// server is one running `ccsd serve` process.
type server struct {
	t       *testing.T
	cmd     *exec.Cmd
	dir     string
	ep      endpoints
	dev     devSender
	waitErr chan error
	stderr  *syncBuffer
}

// startServer runs `ccsd serve` on dir with every port at 0 and waits for
// its ready line.
func startServer(t *testing.T, dir string, extra ...string) *server {
	t.Helper()
	args := append([]string{"serve", "--data-dir", dir, "--ccs-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
		"--mcs-addr", "127.0.0.1:0", "--device-addr", "127.0.0.1:0", "--drain-timeout", "10s"}, extra...)
	cmd := exec.Command(ccsdBin, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s := &server{t: t, cmd: cmd, dir: dir, waitErr: make(chan error, 1), stderr: &syncBuffer{}}
	cmd.Stderr = s.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sent := false
		for sc.Scan() {
			if !sent && strings.Contains(sc.Text(), " ready") {
				ready <- true
				sent = true
			}
		}
		if !sent {
			ready <- false
		}
	}()
	go func() { s.waitErr <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-s.waitErr
		}
	})
	if !<-ready {
		t.Fatalf("ccsd serve exited before ready: %v\n%s", <-s.waitErr, s.stderr)
	}
	if err := readJSONFile(filepath.Join(dir, "endpoints.json"), &s.ep); err != nil {
		t.Fatal(err)
	}
	// Absent when the store already had senders (a node joining a cluster).
	_ = readJSONFile(filepath.Join(dir, "dev-sender.json"), &s.dev)
	return s
}

// kill sends SIGKILL and waits for the process to end.
func (s *server) kill() {
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.waitErr
}

// term sends SIGTERM and returns the exit error.
func (s *server) term() error {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	return <-s.waitErr
}

// dial connects an app server to s with the development sender.
func (s *server) dial(ctx context.Context, cfg ccs.Config) *ccs.Client {
	s.t.Helper()
	pool, err := certs.LoadCA(s.ep.CAFile)
	if err != nil {
		s.t.Fatal(err)
	}
	cfg.Addr = s.ep.CCS
	if cfg.SenderID == "" {
		cfg.SenderID, cfg.APIKey = s.dev.SenderID, s.dev.APIKey
	}
	cfg.TLSConfig = clientTLS(pool, "localhost")
	c, err := ccs.Dial(ctx, cfg)
	if err != nil {
		s.t.Fatalf("dial: %v\n%s", err, s.stderr)
	}
	s.t.Cleanup(func() { c.Close() })
	return c
}

// withStore opens the server's store through its NATS listener (or on the
// data dir when it is not running) — the real registration API.
func withStore(t *testing.T, dir string, fn func(q *queue.Queue)) {
	t.Helper()
	ctx := context.Background()
	node, err := cluster.Connect(ctx, dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()
	q, err := queue.Open(ctx, node, queue.Config{BindOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	fn(q)
}

func register(t *testing.T, dir, sender string, n int) []string {
	t.Helper()
	var ids []string
	withStore(t, dir, func(q *queue.Queue) {
		for i := range n {
			r, err := q.Register(context.Background(), queue.RegisterRequest{AndroidID: uint64(5000 + i), App: "com.example.e2e", SenderID: sender})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, r.ID)
		}
	})
	return ids
}

// run runs a ccsd subcommand and returns its stdout.
func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(ccsdBin, args...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("%v: %s", err, errb.String())
	}
	return out.String(), nil
}

// TestKill9KeepsAckedMessages: every message ccsd ACKed is in the store
// after kill -9 and a restart on the same data dir (DESIGN invariant 1).
func TestKill9KeepsAckedMessages(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	s := startServer(t, dir)
	regs := register(t, dir, s.dev.SenderID, 20)
	c := s.dial(ctx, ccs.Config{})

	const n = 3000
	var mu sync.Mutex
	acked := map[string]bool{}
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		id := fmt.Sprintf("k9-%d", i)
		m := &ccs.Message{To: regs[i%len(regs)], MessageID: id, Data: map[string]string{"i": fmt.Sprint(i)}}
		err := c.SendAsync(ctx, m, func(r ccs.Response) {
			defer wg.Done()
			if r.OK() {
				mu.Lock()
				acked[r.MessageID] = true
				mu.Unlock()
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		if i == n/2 {
			// Kill while the second half is still in flight: ACKs already
			// received must survive; the rest may or may not.
			wg.Add(1)
			go func() { defer wg.Done(); s.kill() }()
			break
		}
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(acked) == 0 {
		t.Fatal("no ACKs before the kill")
	}

	stored := map[string]bool{}
	withStore(t, dir, func(q *queue.Queue) {
		all, err := q.ReadAllDown(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range all {
			stored[m.Message.MessageID] = true
		}
	})
	for id := range acked {
		if !stored[id] {
			t.Errorf("ACKed message %s lost after kill -9", id)
		}
	}
	t.Logf("%d ACKed before kill -9, %d stored after restart", len(acked), len(stored))

	// The restarted server still serves on the same data.
	s2 := startServer(t, dir)
	c2 := s2.dial(ctx, ccs.Config{})
	r, err := c2.Send(ctx, &ccs.Message{To: regs[0], MessageID: "after-restart"})
	if err != nil || !r.OK() {
		t.Fatalf("send after restart: %+v, %v", r, err)
	}
	if err := s2.term(); err != nil {
		t.Errorf("SIGTERM exit: %v\n%s", err, s2.stderr)
	}
}

// TestCLI covers serve's defaults output, sender create/list/revoke while
// serve runs (revocation closes open connections), send, and drain.
func TestCLI(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	s := startServer(t, dir)

	out, err := runCLI(t, "sender", "create", "--data-dir", dir, "--name", "cli", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var created struct{ SenderID, APIKey string }
	if err := json.Unmarshal([]byte(out), &struct {
		SenderID *string `json:"sender_id"`
		APIKey   *string `json:"api_key"`
	}{&created.SenderID, &created.APIKey}); err != nil || created.SenderID == "" || created.APIKey == "" {
		t.Fatalf("sender create --json = %q, %v", out, err)
	}
	// Without --json the key is printed too (not redacted).
	out, err = runCLI(t, "sender", "create", "--data-dir", dir)
	if err != nil || !strings.Contains(out, "api key:   AIza") {
		t.Fatalf("sender create = %q, %v; want the API key", out, err)
	}
	// A second serve on the same data dir refuses to start and leaves the
	// running one's files alone.
	if out, err := runCLI(t, "serve", "--data-dir", dir, "--ccs-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
		"--mcs-addr", "127.0.0.1:0", "--device-addr", "127.0.0.1:0"); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second serve on one data dir: %q, %v; want an in-use error", out, err)
	}
	if _, err := readEndpoints(dir); err != nil {
		t.Fatalf("the failed second serve removed the running server's endpoints: %v", err)
	}
	out, err = runCLI(t, "sender", "list", "--data-dir", dir)
	if err != nil || !strings.Contains(out, created.SenderID) || !strings.Contains(out, "cli") {
		t.Fatalf("sender list = %q, %v", out, err)
	}

	regs := register(t, dir, created.SenderID, 1)
	out, err = runCLI(t, "send", "--data-dir", dir, "--sender", created.SenderID, "--api-key", created.APIKey,
		"--to", regs[0], "--json", `{"data":{"hello":"world"},"message_id":"cli-1"}`)
	if err != nil || !strings.Contains(out, `"message_type":"ack"`) || !strings.Contains(out, `"cli-1"`) {
		t.Fatalf("send = %q, %v", out, err)
	}
	// The development sender does not own this registration: NACK, exit 1.
	out, err = runCLI(t, "send", "--data-dir", dir, "--to", regs[0], "--json", `{"data":{"a":"b"}}`)
	if err == nil || !strings.Contains(out, "BAD_REGISTRATION") {
		t.Fatalf("send with the wrong sender = %q, %v; want a BAD_REGISTRATION NACK", out, err)
	}

	// Revoking closes the open connection at once and refuses new ones.
	c := s.dial(ctx, ccs.Config{SenderID: created.SenderID, APIKey: created.APIKey})
	if _, err := runCLI(t, "sender", "revoke", created.SenderID, "--data-dir", dir); err != nil {
		t.Fatal(err)
	}
	// The revocation reaches the server through a KV watch; each attempt is a
	// full round trip, and the connection must be closed within a few.
	closedAfter := -1
	for i := range 10000 {
		r, err := c.Send(ctx, &ccs.Message{To: regs[0], MessageID: fmt.Sprint("after-revoke-", i), DryRun: true})
		if err != nil {
			closedAfter = i
			break
		}
		if !r.OK() {
			t.Fatalf("send after revoke: %+v", r)
		}
	}
	if closedAfter < 0 {
		t.Fatal("connection of a revoked sender still open after 10000 round trips")
	}
	pool, _ := certs.LoadCA(s.ep.CAFile)
	if _, err := ccs.Dial(ctx, ccs.Config{Addr: s.ep.CCS, SenderID: created.SenderID, APIKey: created.APIKey, TLSConfig: clientTLS(pool, "localhost")}); err == nil {
		t.Error("dial with a revoked key succeeded")
	}
	out, _ = runCLI(t, "sender", "list", "--data-dir", dir, "--json")
	if !strings.Contains(out, `"revoked":true`) {
		t.Errorf("sender list after revoke = %q", out)
	}

	// Metrics are served.
	if err := checkMetrics(s.ep.HTTP); err != nil {
		t.Error(err)
	}

	// drain: the server drains and exits 0.
	if _, err := runCLI(t, "drain", "--data-dir", dir); err != nil {
		t.Fatal(err)
	}
	if err := <-s.waitErr; err != nil {
		t.Errorf("exit after drain: %v\n%s", err, s.stderr)
	}
}

// checkMetrics fetches /metrics and looks for the CCS and queue metrics.
func checkMetrics(addr string) error {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	for _, name := range []string{"ccsd_ccs_connections", "ccsd_ccs_stanzas_in_total", "ccsd_ccs_acks_total",
		"ccsd_ccs_nacks_total", "ccsd_queue_depth", "ccsd_ccs_auth_failures_total"} {
		if !strings.Contains(string(b), name) {
			return fmt.Errorf("/metrics lacks %s", name)
		}
	}
	return nil
}

// syncBuffer is a concurrency-safe bytes buffer for a child's stderr.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

var _ io.Writer = (*syncBuffer)(nil)
