// Package httpapi serves ccsd's HTTP APIs: the GCM HTTP send API,
// notification keys, device check-in and registration routes, and health.
package httpapi

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/ccsd/ccsd/internal/mcs"
	"github.com/ccsd/ccsd/internal/mcs/mcspb"
	"github.com/ccsd/ccsd/internal/metrics"
	"github.com/ccsd/ccsd/internal/queue"
)

// The device routes (mcs.md §5, §6): what android.clients.google.com serves
// to devices, on ccsd's device HTTPS port.
//
//	POST /checkin          AndroidCheckinRequest → AndroidCheckinResponse
//	POST /c2dm/register3   form → "token=…", "deleted=…" or "Error=…"
//
// Status codes are chosen for what clients do with them:
//
//   - check-in answers 400 only for a body that is not a check-in request
//     (Chromium treats 400 as final, and a client sending garbage will not
//     do better by retrying); store failures are 503, which every client
//     retries.
//   - register3 answers every refusal with HTTP 200 and Error=CODE.
//     Chromium reads Error= before the status; push-receiver and
//     @eneris/push-receiver give up after 5 tries on a 200 with Error but
//     retry a non-2xx forever; microG reports a 200 with Error= as
//     SERVICE_NOT_AVAILABLE. So a bad AidLogin is 200
//     Error=AUTHENTICATION_FAILED rather than 401. Only store failures
//     are 503 Error=InternalServerError, with Retry-After.

// Limits of the device routes.
const (
	// MaxDeviceBody is the largest request body accepted by either route,
	// before and (check-in) after gunzip.
	MaxDeviceBody = 64 << 10
	// maxFieldBytes bounds app, X-subtype and sender.
	maxFieldBytes = 512
	// backendTimeout bounds one request's store work.
	backendTimeout = 10 * time.Second
)

// Register3 error codes (mcs.md §6, Chromium's list).
const (
	ErrAuthenticationFailed = "AUTHENTICATION_FAILED"
	ErrInvalidSender        = "INVALID_SENDER"
	ErrInvalidParameters    = "INVALID_PARAMETERS"
	ErrInternalServer       = "InternalServerError"
)

// DeviceBackend is what the device routes need from the router.
type DeviceBackend interface {
	// Checkin confirms a known (android id, token) pair or issues a new one.
	Checkin(ctx context.Context, androidID, token uint64) (uint64, uint64, error)
	// Register returns the canonical registration (queue.ErrUnknownSender
	// for an unknown or revoked sender).
	Register(ctx context.Context, req queue.RegisterRequest) (queue.Registration, error)
	// UnregisterApp unregisters an app instance from every sender.
	UnregisterApp(ctx context.Context, androidID uint64, app, subtype string) ([]queue.Registration, error)
	// VerifyDevice checks credentials: queue.ErrNotFound or
	// queue.ErrBadToken when they are not a device's.
	VerifyDevice(ctx context.Context, androidID, token uint64) error
}

// deviceRoutes serves the device routes. It is immutable and safe for
// concurrent use.
type deviceRoutes struct {
	b   DeviceBackend
	log *slog.Logger
	met *metrics.Metrics
	now func() time.Time
}

// DeviceHandler returns the handler of POST /checkin and POST
// /c2dm/register3. log may be nil (slog.Default); met may be nil.
func DeviceHandler(b DeviceBackend, log *slog.Logger, met *metrics.Metrics) http.Handler {
	if log == nil {
		log = slog.Default()
	}
	d := &deviceRoutes{b: b, log: log, met: met, now: time.Now}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /checkin", counted(met, "checkin", d.checkin))
	mux.HandleFunc("POST /c2dm/register3", counted(met, "register3", d.register3))
	return mux
}

// checkin serves POST /checkin (mcs.md §5).
func (d *deviceRoutes) checkin(w http.ResponseWriter, r *http.Request) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/x-protobuf" && mt != "application/x-protobuffer" && mt != "application/octet-stream") {
			http.Error(w, "want an application/x-protobuf body", http.StatusUnsupportedMediaType)
			return
		}
	}
	body, status := readBody(w, r, true)
	if status != 0 {
		http.Error(w, http.StatusText(status), status)
		return
	}
	var req mcspb.AndroidCheckinRequest
	if err := mcs.Unmarshal(body, &req); err != nil {
		http.Error(w, "not an AndroidCheckinRequest", http.StatusBadRequest)
		return
	}
	var aid uint64
	if id := req.GetId(); id > 0 {
		aid = uint64(id)
	}
	ctx, cancel := context.WithTimeout(r.Context(), backendTimeout)
	defer cancel()
	gotID, gotTok, err := d.b.Checkin(ctx, aid, req.GetSecurityToken())
	if err != nil {
		d.log.Warn("checkin failed", "err", err)
		w.Header().Set("Retry-After", "5")
		http.Error(w, "checkin unavailable", http.StatusServiceUnavailable)
		return
	}
	if gotID != aid {
		d.log.Debug("device checked in", "android_id", gotID, "new", true)
	}
	resp := &mcspb.AndroidCheckinResponse{
		StatsOk:       proto.Bool(true),
		TimeMsec:      proto.Int64(d.now().UnixMilli()),
		AndroidId:     proto.Uint64(gotID),
		SecurityToken: proto.Uint64(gotTok),
	}
	out, err := proto.Marshal(resp)
	if err != nil { // cannot happen: every required field is set
		http.Error(w, "encoding response", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Header().Add("Vary", "Accept-Encoding")
	if acceptsGzip(r.Header.Values("Accept-Encoding")) {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, _ = zw.Write(out)
		_ = zw.Close()
		out = buf.Bytes()
		w.Header().Set("Content-Encoding", "gzip")
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(out)))
	_, _ = w.Write(out)
}

// readBody reads r's body, at most MaxDeviceBody bytes, gunzipped when it
// says Content-Encoding: gzip and gz allows it. A non-zero status is the
// answer to give instead.
func readBody(w http.ResponseWriter, r *http.Request, gz bool) ([]byte, int) {
	var rd io.Reader = http.MaxBytesReader(w, r.Body, MaxDeviceBody)
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip", "x-gzip":
		if !gz {
			return nil, http.StatusUnsupportedMediaType
		}
		zr, err := gzip.NewReader(rd)
		if err != nil {
			return nil, bodyStatus(err)
		}
		defer zr.Close()
		rd = zr
	default:
		return nil, http.StatusUnsupportedMediaType
	}
	b, err := io.ReadAll(io.LimitReader(rd, MaxDeviceBody+1))
	if err != nil {
		return nil, bodyStatus(err)
	}
	if len(b) > MaxDeviceBody {
		return nil, http.StatusRequestEntityTooLarge
	}
	return b, 0
}

func bodyStatus(err error) int {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusBadRequest
}

// acceptsGzip reports whether Accept-Encoding values allow gzip (q > 0).
func acceptsGzip(values []string) bool {
	for _, v := range values {
		for part := range strings.SplitSeq(v, ",") {
			coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
			coding = strings.ToLower(strings.TrimSpace(coding))
			if coding != "gzip" && coding != "x-gzip" {
				continue
			}
			q := strings.TrimSpace(params)
			if qv, ok := strings.CutPrefix(strings.ReplaceAll(q, " ", ""), "q="); ok {
				if f, err := strconv.ParseFloat(qv, 64); err == nil && f <= 0 {
					continue
				}
			}
			return true
		}
	}
	return false
}

// register3 serves POST /c2dm/register3 (mcs.md §6).
func (d *deviceRoutes) register3(w http.ResponseWriter, r *http.Request) {
	body, status := readBody(w, r, true)
	if status != 0 {
		writeLine(w, status, "Error="+ErrInvalidParameters)
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		writeLine(w, http.StatusOK, "Error="+ErrInvalidParameters)
		return
	}
	aid, tok, ok := parseAidLogin(r.Header.Get("Authorization"))
	if !ok {
		writeLine(w, http.StatusOK, "Error="+ErrAuthenticationFailed)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), backendTimeout)
	defer cancel()
	if err := d.b.VerifyDevice(ctx, aid, tok); err != nil {
		if errors.Is(err, queue.ErrNotFound) || errors.Is(err, queue.ErrBadToken) {
			writeLine(w, http.StatusOK, "Error="+ErrAuthenticationFailed)
			return
		}
		d.unavailable(w, "verifying device", err)
		return
	}
	if dev := form.Get("device"); dev != "" {
		if n, err := strconv.ParseUint(dev, 10, 64); err != nil || n != aid {
			writeLine(w, http.StatusOK, "Error="+ErrAuthenticationFailed)
			return
		}
	}
	app, subtype := form.Get("app"), form.Get("X-subtype")
	if app == "" || len(app) > maxFieldBytes || len(subtype) > maxFieldBytes {
		writeLine(w, http.StatusOK, "Error="+ErrInvalidParameters)
		return
	}
	if isTrue(form.Get("delete")) {
		if _, err := d.b.UnregisterApp(ctx, aid, app, subtype); err != nil {
			d.unavailable(w, "unregistering", err)
			return
		}
		key := "deleted="
		if form.Has("scope") || form.Has("X-scope") {
			key = "token="
		}
		writeLine(w, http.StatusOK, key+app)
		return
	}
	sender := form.Get("sender")
	if !validSender(sender) {
		writeLine(w, http.StatusOK, "Error="+ErrInvalidSender)
		return
	}
	reg, err := d.b.Register(ctx, queue.RegisterRequest{AndroidID: aid, App: app, Subtype: subtype, SenderID: sender})
	if errors.Is(err, queue.ErrUnknownSender) {
		writeLine(w, http.StatusOK, "Error="+ErrInvalidSender)
		return
	}
	if err != nil {
		d.unavailable(w, "registering", err)
		return
	}
	writeLine(w, http.StatusOK, "token="+reg.ID)
}

func (d *deviceRoutes) unavailable(w http.ResponseWriter, doing string, err error) {
	d.log.Warn("register3 failed", "doing", doing, "err", err)
	w.Header().Set("Retry-After", "5")
	writeLine(w, http.StatusServiceUnavailable, "Error="+ErrInternalServer)
}

// writeLine writes one key=value line without a trailing newline
// (Chromium keeps everything after token= up to the end of the body).
func writeLine(w http.ResponseWriter, status int, line string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(line)))
	w.WriteHeader(status)
	_, _ = io.WriteString(w, line)
}

// parseAidLogin parses "AidLogin <android id>:<security token>", both
// decimal and non-zero.
func parseAidLogin(h string) (aid, tok uint64, ok bool) {
	scheme, cred, found := strings.Cut(strings.TrimSpace(h), " ")
	if !found || !strings.EqualFold(scheme, "AidLogin") {
		return 0, 0, false
	}
	a, t, found := strings.Cut(strings.TrimSpace(cred), ":")
	if !found {
		return 0, 0, false
	}
	aid, err1 := strconv.ParseUint(a, 10, 64)
	tok, err2 := strconv.ParseUint(t, 10, 64)
	if err1 != nil || err2 != nil || aid == 0 || tok == 0 {
		return 0, 0, false
	}
	return aid, tok, true
}

// validSender accepts a single numeric sender id (ccsd's sender ids are
// project numbers). Comma-separated lists and Chrome's web-push server key
// are refused: one registration belongs to one sender here.
func validSender(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func isTrue(s string) bool {
	switch strings.ToLower(s) {
	case "true", "1":
		return true
	}
	return false
}
