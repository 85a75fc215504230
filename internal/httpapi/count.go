package httpapi

import (
	"bytes"
	"net/http"
	"strconv"

	"github.com/ccsd/ccsd/internal/metrics"
)

// counted wraps a device route so that every answer is counted in
// ccsd_device_http_requests_total by route and result: the HTTP status,
// or for a 200 register3 answer its first word ("token", "deleted", or the
// Error= code), since register3 reports its refusals with status 200.
func counted(met *metrics.Metrics, route string, h http.HandlerFunc) http.HandlerFunc {
	if met == nil {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request) {
		rec := &resultRecorder{ResponseWriter: w, status: http.StatusOK}
		h(rec, r)
		met.DeviceHTTP.WithLabelValues(route, rec.result()).Inc()
	}
}

// resultRecorder keeps the status and the first bytes of an answer.
type resultRecorder struct {
	http.ResponseWriter
	status int
	head   []byte
}

func (rr *resultRecorder) WriteHeader(code int) {
	rr.status = code
	rr.ResponseWriter.WriteHeader(code)
}

func (rr *resultRecorder) Write(p []byte) (int, error) {
	if len(rr.head) < 64 {
		rr.head = append(rr.head, p[:min(len(p), 64-len(rr.head))]...)
	}
	return rr.ResponseWriter.Write(p)
}

func (rr *resultRecorder) result() string {
	if rr.status != http.StatusOK {
		return strconv.Itoa(rr.status)
	}
	switch {
	case bytes.HasPrefix(rr.head, []byte("token=")):
		return "token"
	case bytes.HasPrefix(rr.head, []byte("deleted=")):
		return "deleted"
	case bytes.HasPrefix(rr.head, []byte("Error=")):
		code := rr.head[len("Error="):]
		if i := bytes.IndexAny(code, "\r\n"); i >= 0 {
			code = code[:i]
		}
		return string(code)
	}
	return "ok"
}
