package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ccsd/ccsd/client/ccs"
	"github.com/ccsd/ccsd/internal/certs"
	"github.com/ccsd/ccsd/internal/cluster"
	"github.com/ccsd/ccsd/internal/queue"
)

// BenchmarkCCSEndToEnd measures one client/ccs connection with a full
// window (1000) sending to existing registrations through the whole server
// (TLS, XMPP, validation, JetStream store, ACK), in one process. It reports
// ACKed messages/s, p50/p99 ACK latency and CPU per message (client and
// server together, from getrusage).
func BenchmarkCCSEndToEnd(b *testing.B) {
	dir := b.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	cfg := serveConfig{dataDir: dir, ccsAddr: "127.0.0.1:0", httpAddr: "127.0.0.1:0", mcsAddr: "127.0.0.1:0",
		deviceAddr: "127.0.0.1:0", maxPending: 1000, maxConns: 1000, drainTimeout: 5 * time.Second,
		deviceRate: 100, deviceBurst: 1000}
	ready := make(chan struct{})
	go func() { done <- serve(ctx, cfg, slog.New(slog.DiscardHandler), &readyWriter{ready: ready}) }()
	select {
	case <-ready:
	case err := <-done:
		b.Fatal(err)
	}
	var ep endpoints
	var dev devSender
	if err := readJSONFile(filepath.Join(dir, "endpoints.json"), &ep); err != nil {
		b.Fatal(err)
	}
	if err := readJSONFile(filepath.Join(dir, "dev-sender.json"), &dev); err != nil {
		b.Fatal(err)
	}
	var regs []string
	withStoreB(b, dir, func(q *queue.Queue) {
		for i := range 2000 {
			r, err := q.Register(ctx, queue.RegisterRequest{AndroidID: uint64(90000 + i), App: "com.example.bench", SenderID: dev.SenderID})
			if err != nil {
				b.Fatal(err)
			}
			regs = append(regs, r.ID)
		}
	})
	pool, err := certs.LoadCA(ep.CAFile)
	if err != nil {
		b.Fatal(err)
	}
	c, err := ccs.Dial(ctx, ccs.Config{Addr: ep.CCS, SenderID: dev.SenderID, APIKey: dev.APIKey,
		TLSConfig: clientTLS(pool, "localhost"), MaxPending: 1000})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	data := map[string]string{"score": "4x8", "time": "15:16.2342", "payload": string(bytes.Repeat([]byte("x"), 200))}
	msgs := make([]ccs.Message, b.N)
	for i := range msgs {
		msgs[i] = ccs.Message{To: regs[i%len(regs)], MessageID: fmt.Sprintf("b-%d", i), Data: data}
	}
	lat := make([]time.Duration, b.N)
	var wg sync.WaitGroup
	var failed sync.Map
	wg.Add(b.N)
	ru0 := rusage()
	b.ResetTimer()
	start := time.Now()
	for i := range msgs {
		t0 := time.Now()
		err := c.SendAsync(ctx, &msgs[i], func(r ccs.Response) {
			lat[i] = time.Since(t0)
			if !r.OK() {
				failed.Store(r.MessageID, r.Error)
			}
			wg.Done()
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	cpu := rusage() - ru0
	failed.Range(func(k, v any) bool { b.Fatalf("message %v NACKed: %v", k, v); return false })
	slices.Sort(lat)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "acked/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/msg")
	cancel()
	<-done
}

// BenchmarkRawTLSBaseline moves the same bytes as BenchmarkCCSEndToEnd over
// a bare TLS loopback connection: the client writes the stanza bytes with
// the same window, the server answers each with the ACK bytes. Nothing is
// parsed or stored: it is the wire's ceiling on this machine.
func BenchmarkRawTLSBaseline(b *testing.B) {
	bundle, err := certs.Ensure(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	stanza := []byte(`<message id=""><gcm xmlns="google:mobile:data">{"to":"APA91b` + string(bytes.Repeat([]byte("r"), 134)) +
		`","message_id":"b-123456","data":{"payload":"` + string(bytes.Repeat([]byte("x"), 200)) + `","score":"4x8","time":"15:16.2342"}}</gcm></message>`)
	ack := []byte(`<message><data:gcm xmlns:data="google:mobile:data">{"message_type":"ack","from":"APA91b` + string(bytes.Repeat([]byte("r"), 134)) +
		`","message_id":"b-123456"}</data:gcm></message>`)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", bundle.ServerTLS())
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		buf := make([]byte, 64<<10)
		out := make([]byte, 0, 64<<10)
		got := 0
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			got += n
			out = out[:0]
			for ; got >= len(stanza); got -= len(stanza) {
				out = append(out, ack...)
			}
			if _, err := conn.Write(out); err != nil {
				return
			}
		}
	}()
	conn, err := tls.Dial("tcp", ln.Addr().String(), bundle.ClientTLS("localhost"))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	const window = 1000
	sem := make(chan struct{}, window)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		buf := make([]byte, 64<<10)
		got, acks := 0, 0
		for acks < b.N {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			for got += n; got >= len(ack); got -= len(ack) {
				acks++
				<-sem
			}
		}
	}()
	ru0 := rusage()
	b.SetBytes(int64(len(stanza) + len(ack)))
	b.ResetTimer()
	start := time.Now()
	w := make([]byte, 0, 64<<10)
	for i := 0; i < b.N; {
		w = w[:0]
		// Write what the window allows in one go, as the SDK does.
		sem <- struct{}{}
		w = append(w, stanza...)
		i++
		for ; i < b.N && len(w)+len(stanza) <= cap(w); i++ {
			select {
			case sem <- struct{}{}:
				w = append(w, stanza...)
				continue
			default:
			}
			break
		}
		if _, err := conn.Write(w); err != nil {
			b.Fatal(err)
		}
	}
	<-readDone
	elapsed := time.Since(start)
	b.StopTimer()
	cpu := rusage() - ru0
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "acked/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/msg")
}

func withStoreB(b *testing.B, dir string, fn func(q *queue.Queue)) {
	b.Helper()
	ctx := context.Background()
	node, err := cluster.Connect(ctx, dir, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer node.Close()
	q, err := queue.Open(ctx, node, queue.Config{BindOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	fn(q)
}

// rusage returns the process's user+system CPU time so far.
func rusage() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// readyWriter closes ready when serve prints its ready line.
type readyWriter struct {
	once  sync.Once
	ready chan struct{}
}

func (w *readyWriter) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte(" ready")) {
		w.once.Do(func() { close(w.ready) })
	}
	return len(p), nil
}

var _ io.Writer = (*readyWriter)(nil)
