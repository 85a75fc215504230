package xmppserver_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ccsd/ccsd/client/ccs"
	"github.com/ccsd/ccsd/internal/gcm"
	"github.com/ccsd/ccsd/internal/metrics"
	"github.com/ccsd/ccsd/internal/xmpp"
	"github.com/ccsd/ccsd/internal/xmppserver"
	"github.com/ccsd/ccsd/internal/xmppserver/ccstest"
)

// The CCS benchmark: one client/ccs connection keeps a full window (1000)
// of downstream messages in flight against the server with the
// immediate-ACK backend, over real TLS on loopback. The baseline moves the
// same bytes (the same stanza one way, the same ACK back) over a raw TLS
// connection, so the ratio is the cost of XMPP, GCM and window handling.
//
//	go test -run '^$' -bench 'CCS|RawTLS' -benchtime 300000x ./internal/xmppserver/

const benchWindow = 1000

var benchToken = "cW_KBPUKj7k:APA91bE" + strings.Repeat("x", 133) // a 152-byte registration token

func benchMessage(id string) ccs.Message {
	return ccs.Message{To: benchToken, MessageID: id, TimeToLive: ccs.TTL(600),
		Data: map[string]string{"score": "5x1", "time": "15:10"}}
}

// latencies collects per-message ACK latencies and reports them.
type latencies struct {
	start []time.Time // by ring slot
	lat   []time.Duration
}

func (l *latencies) report(b *testing.B, elapsed time.Duration) {
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	if len(l.lat) == 0 {
		return
	}
	slices.Sort(l.lat)
	b.ReportMetric(float64(l.lat[len(l.lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(l.lat[len(l.lat)*99/100].Microseconds()), "p99-µs")
}

func BenchmarkCCS(b *testing.B) {
	backend := ccstest.NewBackend(sender, apiKey)
	backend.NoFeed = true
	_, addr, clientTLS := ccstest.Start(b, xmppserver.Config{Backend: backend, Metrics: metrics.New(), Logger: quiet, MaxPending: benchWindow})
	cl, err := ccs.Dial(context.Background(), ccs.Config{Addr: addr, SenderID: sender, APIKey: apiKey,
		TLSConfig: clientTLS, MaxPending: benchWindow, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()

	// A ring of 2×window messages: slot i%ring is reused only after message
	// i was answered (answers come in order and at most a window is out).
	const ring = 2 * benchWindow
	type slot struct {
		msg  ccs.Message
		done func(ccs.Response)
	}
	l := &latencies{start: make([]time.Time, ring), lat: make([]time.Duration, 0, b.N)}
	var answered atomic.Int64
	var failed atomic.Int64
	all := make(chan struct{})
	slots := make([]slot, ring)
	for i := range slots {
		s := &slots[i]
		s.msg = benchMessage(fmt.Sprintf("m-%06d", i))
		s.done = func(r ccs.Response) {
			l.lat = append(l.lat, time.Since(l.start[i])) // only the reader goroutine appends
			if !r.OK() {
				failed.Add(1)
			}
			if answered.Add(1) == int64(b.N) {
				close(all)
			}
		}
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	t0 := time.Now()
	for i := range b.N {
		k := i % ring
		l.start[k] = time.Now()
		if err := cl.SendAsync(ctx, &slots[k].msg, slots[k].done); err != nil {
			b.Fatal(err)
		}
	}
	<-all
	elapsed := time.Since(t0)
	b.StopTimer()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d messages not ACKed", n)
	}
	if got := backend.Sent(); got < int64(b.N) {
		b.Fatalf("backend saw %d of %d", got, b.N)
	}
	l.report(b, elapsed)
}

// BenchmarkRawTLS moves the bytes of BenchmarkCCS with no protocol work: the
// client writes whole stanzas (at most a window unanswered), the server
// counts full stanzas per read and writes that many ACKs in one write.
func BenchmarkRawTLS(b *testing.B) {
	m := benchMessage("m-000000")
	// The exact bytes client/ccs and the server put on the wire.
	stanza := xmpp.AppendClientGCM(nil, m.AppendJSON(nil))
	ack := xmpp.AppendGCM(nil, xmpp.EnvelopeAnswer, "", gcm.AppendAck(nil, []byte(m.To), []byte(m.MessageID), nil))
	serverTLS, clientTLS := ccstest.TLSConfigs(b)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", serverTLS)
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 64<<10)
		var out []byte
		carry := 0
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			carry += n
			k := carry / len(stanza)
			carry -= k * len(stanza)
			out = out[:0]
			for range k {
				out = append(out, ack...)
			}
			if _, err := c.Write(out); err != nil {
				return
			}
		}
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), clientTLS)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	window := make(chan struct{}, benchWindow)
	const ring = 2 * benchWindow
	l := &latencies{start: make([]time.Time, ring), lat: make([]time.Duration, 0, b.N)}
	done := make(chan error, 1)
	go func() { // reader: counts whole ACKs
		buf := make([]byte, 64<<10)
		got, carry := 0, 0
		for got < b.N {
			n, err := c.Read(buf)
			if err != nil {
				done <- err
				return
			}
			carry += n
			for carry >= len(ack) {
				carry -= len(ack)
				l.lat = append(l.lat, time.Since(l.start[got%ring]))
				got++
				<-window
			}
		}
		done <- nil
	}()
	b.ReportAllocs()
	b.ResetTimer()
	t0 := time.Now()
	// Writer: like client/ccs, batch whatever the window allows into one write.
	var batch []byte
	for i := 0; i < b.N; {
		window <- struct{}{}
		l.start[i%ring] = time.Now()
		batch = append(batch[:0], stanza...)
		i++
		for i < b.N && len(batch) < 32<<10 {
			select {
			case window <- struct{}{}:
				l.start[i%ring] = time.Now()
				batch = append(batch, stanza...)
				i++
				continue
			default:
			}
			break
		}
		if _, err := c.Write(batch); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil && err != io.EOF {
		b.Fatal(err)
	}
	elapsed := time.Since(t0)
	b.StopTimer()
	l.report(b, elapsed)
}
