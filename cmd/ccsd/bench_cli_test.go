package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseSourceIPs(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{"", "", false},
		{"127.0.0.2", "127.0.0.2", false},
		{"127.0.0.2-127.0.0.4", "127.0.0.2 127.0.0.3 127.0.0.4", false},
		{"127.0.0.9, 127.0.1.2-127.0.1.3", "127.0.0.9 127.0.1.2 127.0.1.3", false},
		{"127.0.0.4-127.0.0.2", "", true},
		{"127.0.0.2-127.0.1.2", "", true},
		{"localhost", "", true},
		{"::1", "", true},
	}
	for _, tt := range tests {
		ips, err := parseSourceIPs(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("parseSourceIPs(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		var got []string
		for _, ip := range ips {
			got = append(got, ip.String())
		}
		if s := strings.Join(got, " "); s != tt.want {
			t.Errorf("parseSourceIPs(%q) = %q, want %q", tt.in, s, tt.want)
		}
	}
}

// TestDownPayloadStamp: the payload is the JSON the server parses, and its
// data round-trips through stamp.
func TestDownPayloadStamp(t *testing.T) {
	sent := time.Unix(1700000000, 123456789)
	b := downPayload("REG", "e1a2b", 42, "xx", sent)
	var m struct {
		To        string            `json:"to"`
		MessageID string            `json:"message_id"`
		Data      map[string]string `json:"data"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("payload %s: %v", b, err)
	}
	if m.To != "REG" || m.MessageID != "e1a2b-42" || m.Data["p"] != "xx" {
		t.Errorf("payload = %+v", m)
	}
	tests := []struct {
		name    string
		run     string
		wantI   int
		wantLat time.Duration
		wantOK  bool
	}{
		{"this run", "e1a2b", 42, 5 * time.Millisecond, true},
		{"other run", "e0000", 0, 0, false},
	}
	for _, tt := range tests {
		i, lat, ok := stamp(m.Data, tt.run, sent.Add(5*time.Millisecond))
		if i != tt.wantI || lat != tt.wantLat || ok != tt.wantOK {
			t.Errorf("%s: stamp = %d, %v, %v; want %d, %v, %v", tt.name, i, lat, ok, tt.wantI, tt.wantLat, tt.wantOK)
		}
	}
}

func TestReadProcSelf(t *testing.T) {
	s, err := readProc(os.Getpid())
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	if s.rss <= 0 || s.cpu < 0 {
		t.Errorf("readProc(self) = %+v, want rss > 0", s)
	}
}

// TestBenchCommands runs every bench command, small, against the real
// binary and checks what it reports.
func TestBenchCommands(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir)
	pid := strconv.Itoa(s.cmd.Process.Pid)
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"ccs", []string{"ccs", "--conns", "2", "--messages", "300", "--regs", "7", "--window", "50"},
			[]string{"acked 300 in", "ack latency: p50", "nacks: none", "µs/msg (pid " + pid}},
		{"e2e down", []string{"e2e", "--devices", "3", "--messages", "200", "--window", "50"},
			[]string{"ccs acked 200", "delivered 200 (dups 0, stale 0)", "send->device latency", "nacks: none"}},
		{"e2e up", []string{"e2e", "--upstream", "--devices", "3", "--messages", "60", "--inflight", "2"},
			[]string{"stored (device acked by server) 60", "app server got 60 (dups 0", "device send->app server latency"}},
		{"idle", []string{"idle", "--devices", "5", "--hold", "1ms", "--source-ips", "127.0.0.2-127.0.0.3"},
			[]string{"ready 5\n", "alive 5\n"}},
		{"idle again from the cache", []string{"idle", "--devices", "5", "--hold", "1ms"},
			[]string{"ready 5\n", "alive 5\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			args := append(tt.args, "--data-dir", dir, "--server-pid", pid)
			if err := cmdBench(context.Background(), args, &out, &errb); err != nil {
				t.Fatalf("ccsd bench %v: %v\n%s\n%s\nserver:\n%s", args, err, out.String(), errb.String(), s.stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("ccsd bench %v output lacks %q:\n%s", args, w, out.String())
				}
			}
		})
	}
}

// TestIdleHeapProfile is a measurement, not a test: with
// CCSD_IDLE_PROFILE=FILE (and CCSD_IDLE_N, default 5000) it runs the
// server in-process, logs in that many idle devices over loopback, and
// writes a heap profile (sampled every 4 KiB) to FILE; `go tool pprof
// -sample_index=inuse_space -focus=deviceserver FILE` shows the server's
// share. See docs/bench.md "Idle device connections".
func TestIdleHeapProfile(t *testing.T) {
	path := os.Getenv("CCSD_IDLE_PROFILE")
	if path == "" {
		t.Skip("set CCSD_IDLE_PROFILE=FILE to write the idle-connection heap profile")
	}
	n := 5000
	if v := os.Getenv("CCSD_IDLE_N"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	runtime.MemProfileRate = 4096
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	cfg := serveConfig{dataDir: dir, ccsAddr: "127.0.0.1:0", httpAddr: "127.0.0.1:0", mcsAddr: "127.0.0.1:0",
		deviceAddr: "127.0.0.1:0", maxPending: 1000, maxConns: 1000, drainTimeout: 5 * time.Second}
	ready := make(chan struct{})
	go func() { done <- serve(ctx, cfg, slog.New(slog.DiscardHandler), &readyWriter{ready: ready}) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatal(err)
	}
	tf := targetFlags{dataDir: dir}
	tg, err := tf.load()
	if err != nil {
		t.Fatal(err)
	}
	devs, err := provision(ctx, tg, filepath.Join(dir, "devs.json"), n, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	g0 := runtime.NumGoroutine()
	conns := make([]*idleConn, 0, n)
	tc := tg.tlsFor(tg.ep.MCS)
	for i, d := range devs {
		c, err := dialIdle(ctx, tg.ep.MCS, net.IPv4(127, 0, 0, byte(2+i%8)), tc, d.Cred)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&after)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	per := func(a, b uint64) string { return fmt.Sprintf("%.2f KB", (float64(b)-float64(a))/1024/float64(n)) }
	t.Logf("%d idle conns (client and server in one process): heap in use %s, stacks %s, goroutines +%.2f per conn",
		n, per(before.HeapInuse, after.HeapInuse), per(before.StackInuse, after.StackInuse),
		float64(runtime.NumGoroutine()-g0)/float64(n))
	for _, c := range conns {
		c.tc.NetConn().Close()
	}
	cancel()
	<-done
}
