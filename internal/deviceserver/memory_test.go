package deviceserver

import (
	"context"
	"runtime"
	"testing"
	"unsafe"

	"github.com/ccsd/ccsd/internal/mcs"
)

// BenchmarkIdleConnMemory logs in 1000 idle devices over TLS and reports
// the heap and stack growth per device. Client and server share the
// process, so the figure includes the test client's TLS connection and
// reader: it is an upper bound of the server's cost.
func BenchmarkIdleConnMemory(b *testing.B) {
	const n = 1000
	f := newFixture(b, fixtureOpts{})
	ctx := context.Background()
	type cred struct{ aid, tok uint64 }
	creds := make([]cred, n)
	for i := range creds {
		d, tok, err := f.q.Checkin(ctx, 0, 0)
		if err != nil {
			b.Fatal(err)
		}
		creds[i] = cred{d.AndroidID, tok}
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	clients := make([]*client, n)
	for i, cr := range creds {
		clients[i] = f.dial()
		clients[i].loginWith(mcs.LoginRequest("chrome-63.0.3234.0", cr.aid, cr.tok, nil))
	}
	for range 3 {
		runtime.GC()
	}
	runtime.ReadMemStats(&after)
	if f.srv.Conns() != n {
		b.Fatalf("Conns() = %d, want %d", f.srv.Conns(), n)
	}
	heap := float64(after.HeapAlloc-before.HeapAlloc) / n
	stack := float64(after.StackInuse-before.StackInuse) / n
	b.ReportMetric(heap, "heapB/conn")
	b.ReportMetric(stack, "stackB/conn")
	b.ReportMetric(float64(f.srv.running.Load())/n, "goroutines/conn")
	b.ReportMetric(float64(unsafe.Sizeof(conn{})), "B/struct")
	runtime.KeepAlive(clients)
}
