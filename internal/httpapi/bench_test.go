package httpapi

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

func TestHeaderParsersDoNotAllocate(t *testing.T) {
	ae := []string{"deflate, gzip;q=0.8"}
	tests := []struct {
		name string
		fn   func()
	}{
		{"parseAidLogin", func() { _, _, _ = parseAidLogin("AidLogin 4876543210987654321:1234567890123456789") }},
		{"acceptsGzip", func() { _ = acceptsGzip(ae) }},
		{"validSender", func() { _ = validSender("123456789012") }},
	}
	for _, tt := range tests {
		if got := testing.AllocsPerRun(100, tt.fn); got != 0 {
			t.Errorf("%s: %v allocs per run, want 0", tt.name, got)
		}
	}
}

// BenchmarkCheckinKnown is a re-check-in of a known device through the
// handler and the real router (go test -bench . ./internal/httpapi).
func BenchmarkCheckinKnown(b *testing.B) {
	f := newDeviceFixture(b)
	body := checkinBody(b, f.aid, f.tok)
	b.ReportAllocs()
	for range b.N {
		req := httptest.NewRequest(http.MethodPost, "/checkin", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/x-protobuf")
		rec := httptest.NewRecorder()
		f.h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatal(rec.Code)
		}
	}
}

// BenchmarkRegister3Canonical re-registers an app instance, the answer
// being its canonical token.
func BenchmarkRegister3Canonical(b *testing.B) {
	f := newDeviceFixture(b)
	form := "app=com.example&device=" + strconv.FormatUint(f.aid, 10) + "&sender=" + f.sender.ID
	auth := f.auth()
	b.ReportAllocs()
	for range b.N {
		req := httptest.NewRequest(http.MethodPost, "/c2dm/register3", strings.NewReader(form))
		req.Header.Set("Authorization", auth)
		rec := httptest.NewRecorder()
		f.h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Body.String(), "token=") {
			b.Fatal(rec.Code, rec.Body.String())
		}
	}
}
