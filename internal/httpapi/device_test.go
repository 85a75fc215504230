package httpapi

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/ccsd/ccsd/internal/certs"
	"github.com/ccsd/ccsd/internal/mcs"
	"github.com/ccsd/ccsd/internal/mcs/mcspb"
	"github.com/ccsd/ccsd/internal/metrics"
	"github.com/ccsd/ccsd/internal/queue"
	"github.com/ccsd/ccsd/internal/router"
	"github.com/ccsd/ccsd/internal/router/routertest"
)

var _ DeviceBackend = (*router.Router)(nil)

// deviceFixture is a real router over a real embedded JetStream, served
// by DeviceHandler over HTTPS on 127.0.0.1.
type deviceFixture struct {
	q       *queue.Queue
	rt      *router.Router
	h       http.Handler
	sender  queue.Sender
	srv     *httptest.Server
	hc      *http.Client // plain client: the transport's own gzip handling off
	aid     uint64       // a checked-in device
	tok     uint64
	revoked queue.Sender
}

func newDeviceFixture(t testing.TB) *deviceFixture {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	met := metrics.New()
	q, rt := routertest.Start(t, "", router.Config{Logger: log, Metrics: met}, queue.Config{})
	var err error

	f := &deviceFixture{q: q, rt: rt, h: DeviceHandler(rt, log, met)}
	if f.sender, _, err = q.CreateSender(ctx, "test"); err != nil {
		t.Fatal(err)
	}
	if f.revoked, _, err = q.CreateSender(ctx, "revoked"); err != nil {
		t.Fatal(err)
	}
	if err := q.RevokeSender(ctx, f.revoked.ID); err != nil {
		t.Fatal(err)
	}
	if f.aid, f.tok, err = rt.Checkin(ctx, 0, 0); err != nil {
		t.Fatal(err)
	}

	bundle, err := certs.Ensure(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewUnstartedServer(f.h)
	f.srv.TLS = bundle.ServerTLS()
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	f.hc = &http.Client{Transport: &http.Transport{TLSClientConfig: bundle.ClientTLS("127.0.0.1"), DisableCompression: true}}
	t.Cleanup(f.hc.CloseIdleConnections)
	return f
}

func (f *deviceFixture) authFor(aid, tok uint64) string {
	return "AidLogin " + strconv.FormatUint(aid, 10) + ":" + strconv.FormatUint(tok, 10)
}

func (f *deviceFixture) auth() string { return f.authFor(f.aid, f.tok) }

// post sends body to path with headers (name, value pairs).
func (f *deviceFixture) post(t *testing.T, path string, body []byte, headers ...string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, f.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := f.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

func checkinBody(t testing.TB, id, tok uint64) []byte {
	t.Helper()
	req := &mcspb.AndroidCheckinRequest{
		Checkin: &mcspb.AndroidCheckinProto{Type: mcspb.DeviceType_DEVICE_CHROME_BROWSER.Enum()},
		Version: proto.Int32(3),
	}
	if id != 0 {
		req.Id = proto.Int64(int64(id))
	}
	if tok != 0 {
		req.SecurityToken = proto.Uint64(tok)
	}
	b, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func gzipped(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return buf.Bytes()
}

func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("reply is not gzip: %v", err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func decodeCheckin(t *testing.T, b []byte) *mcspb.AndroidCheckinResponse {
	t.Helper()
	var resp mcspb.AndroidCheckinResponse
	// Strict decoding: every required field must be on the wire.
	if err := proto.Unmarshal(b, &resp); err != nil {
		t.Fatalf("decoding checkin response: %v", err)
	}
	return &resp
}

func TestCheckin(t *testing.T) {
	f := newDeviceFixture(t)
	tests := []struct {
		name     string
		id, tok  uint64
		wantSame bool // the reply keeps the request's pair
	}{
		{"first checkin", 0, 0, false},
		{"known device", f.aid, f.tok, true},
		{"known id, wrong token", f.aid, f.tok + 1, false},
		{"unknown id", 12345, 678, false},
		{"id without token", f.aid, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, hdr, b := f.post(t, "/checkin", checkinBody(t, tt.id, tt.tok), "Content-Type", "application/x-protobuf")
			if status != http.StatusOK {
				t.Fatalf("status = %d (%s), want 200", status, b)
			}
			if got := hdr.Get("Content-Encoding"); got != "" {
				t.Errorf("Content-Encoding = %q without Accept-Encoding, want none", got)
			}
			resp := decodeCheckin(t, b)
			if !resp.GetStatsOk() || resp.GetTimeMsec() <= 0 {
				t.Errorf("stats_ok = %v, time_msec = %d; want true and > 0", resp.GetStatsOk(), resp.GetTimeMsec())
			}
			gotID, gotTok := resp.GetAndroidId(), resp.GetSecurityToken()
			if gotID == 0 || gotTok == 0 || gotID >= 1<<63 || gotTok >= 1<<63 {
				t.Errorf("pair = %d:%d, want both in 1..2^63-1", gotID, gotTok)
			}
			if same := gotID == tt.id && gotTok == tt.tok; same != tt.wantSame {
				t.Errorf("pair = %d:%d for request %d:%d; same = %v, want %v", gotID, gotTok, tt.id, tt.tok, same, tt.wantSame)
			}
			if err := f.rt.VerifyDevice(context.Background(), gotID, gotTok); err != nil {
				t.Errorf("issued pair does not verify: %v", err)
			}
		})
	}
}

func TestCheckinGzip(t *testing.T) {
	f := newDeviceFixture(t)
	plain := checkinBody(t, f.aid, f.tok)
	tests := []struct {
		name         string
		body         []byte
		headers      []string
		wantGzipResp bool
	}{
		{"gzip request, gzip accepted (microG)", gzipped(plain), []string{"Content-Type", "application/x-protobuffer", "Content-Encoding", "gzip", "Accept-Encoding", "gzip"}, true},
		{"gzip request, no Accept-Encoding", gzipped(plain), []string{"Content-Encoding", "gzip"}, false},
		{"plain request, gzip accepted", plain, []string{"Accept-Encoding", "deflate, gzip;q=0.8"}, true},
		{"gzip refused with q=0", plain, []string{"Accept-Encoding", "gzip;q=0"}, false},
		{"identity only", plain, []string{"Accept-Encoding", "identity"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, hdr, b := f.post(t, "/checkin", tt.body, tt.headers...)
			if status != http.StatusOK {
				t.Fatalf("status = %d (%s), want 200", status, b)
			}
			gotGzip := hdr.Get("Content-Encoding") == "gzip"
			if gotGzip != tt.wantGzipResp {
				t.Fatalf("gzip reply = %v, want %v", gotGzip, tt.wantGzipResp)
			}
			if gotGzip {
				b = gunzip(t, b)
			}
			resp := decodeCheckin(t, b)
			if resp.GetAndroidId() != f.aid || resp.GetSecurityToken() != f.tok {
				t.Errorf("pair = %d:%d, want the known %d:%d", resp.GetAndroidId(), resp.GetSecurityToken(), f.aid, f.tok)
			}
		})
	}
}

func TestCheckinRefusals(t *testing.T) {
	f := newDeviceFixture(t)
	big := make([]byte, MaxDeviceBody+1)
	bomb := gzipped(make([]byte, 4*MaxDeviceBody)) // small on the wire, too big decoded
	tests := []struct {
		name    string
		body    []byte
		headers []string
		want    int
	}{
		{"garbage protobuf", []byte{0xff, 0xff, 0xff, 0xff}, nil, http.StatusBadRequest},
		{"truncated field", []byte{0x22, 0x10, 0x01}, nil, http.StatusBadRequest},
		{"bad gzip", []byte("not gzip at all"), []string{"Content-Encoding", "gzip"}, http.StatusBadRequest},
		{"body too large", big, nil, http.StatusRequestEntityTooLarge},
		{"gzip bomb", bomb, []string{"Content-Encoding", "gzip"}, http.StatusRequestEntityTooLarge},
		{"unknown encoding", checkinBody(t, 0, 0), []string{"Content-Encoding", "br"}, http.StatusUnsupportedMediaType},
		{"form content type", checkinBody(t, 0, 0), []string{"Content-Type", "application/x-www-form-urlencoded"}, http.StatusUnsupportedMediaType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _, b := f.post(t, "/checkin", tt.body, tt.headers...)
			if status != tt.want {
				t.Errorf("status = %d (%q), want %d", status, b, tt.want)
			}
		})
	}
	t.Run("GET", func(t *testing.T) {
		resp, err := f.hc.Get(f.srv.URL + "/checkin")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("status = %d, want 405", resp.StatusCode)
		}
	})
}

// register posts a register3 form and returns status and body.
func (f *deviceFixture) register(t *testing.T, auth string, form url.Values) (int, string) {
	t.Helper()
	h := []string{"Content-Type", "application/x-www-form-urlencoded"}
	if auth != "" {
		h = append(h, "Authorization", auth)
	}
	status, _, b := f.post(t, "/c2dm/register3", []byte(form.Encode()), h...)
	return status, string(b)
}

func (f *deviceFixture) form(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v
}

func TestRegister3(t *testing.T) {
	ctx := context.Background()
	f := newDeviceFixture(t)
	dev := strconv.FormatUint(f.aid, 10)
	status, body := f.register(t, f.auth(), f.form("app", "com.example", "device", dev, "sender", f.sender.ID))
	if status != http.StatusOK || !strings.HasPrefix(body, "token=") {
		t.Fatalf("register = %d %q, want 200 token=…", status, body)
	}
	tok := strings.TrimPrefix(body, "token=")
	if strings.ContainsAny(tok, "=\n\r\t ") || strings.Contains(tok, "Error") || tok == "" {
		t.Fatalf("token %q: want no '=', whitespace or Error (push-receiver splits on '=')", tok)
	}
	reg, err := f.rt.Registration(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	if reg.AndroidID != f.aid || reg.App != "com.example" || reg.SenderID != f.sender.ID || !reg.Active() {
		t.Errorf("registration = %+v; want active, of this device, app and sender", reg)
	}

	t.Run("re-register returns the canonical token", func(t *testing.T) {
		_, again := f.register(t, f.auth(), f.form("app", "com.example", "device", dev, "sender", f.sender.ID))
		if again != body {
			t.Errorf("again = %q, want %q", again, body)
		}
	})
	t.Run("subtype is another app instance", func(t *testing.T) {
		_, sub := f.register(t, f.auth(), f.form("app", "com.example", "X-subtype", "wp:x#1", "device", dev, "sender", f.sender.ID))
		if sub == body || !strings.HasPrefix(sub, "token=") {
			t.Errorf("subtype registration = %q, want a different token than %q", sub, body)
		}
	})
	t.Run("unregister", func(t *testing.T) {
		status, got := f.register(t, f.auth(), f.form("app", "com.example", "device", dev, "delete", "true"))
		if status != http.StatusOK || got != "deleted=com.example" {
			t.Fatalf("unregister = %d %q, want 200 deleted=com.example", status, got)
		}
		reg, err := f.rt.Registration(ctx, tok)
		if err != nil {
			t.Fatal(err)
		}
		if reg.Active() {
			t.Errorf("registration still active after unregister")
		}
		_, fresh := f.register(t, f.auth(), f.form("app", "com.example", "device", dev, "sender", f.sender.ID))
		if fresh == body || !strings.HasPrefix(fresh, "token=") {
			t.Errorf("registering after unregister = %q, want a new token", fresh)
		}
	})
	t.Run("unregister with scope (microG delete=1, InstanceID)", func(t *testing.T) {
		status, got := f.register(t, f.auth(), f.form("app", "com.example", "device", dev, "delete", "1", "X-scope", "GCM"))
		if status != http.StatusOK || got != "token=com.example" {
			t.Errorf("unregister = %d %q, want 200 token=com.example", status, got)
		}
	})
}

func TestRegister3Errors(t *testing.T) {
	f := newDeviceFixture(t)
	dev := strconv.FormatUint(f.aid, 10)
	ok := func(kv ...string) url.Values {
		v := f.form("app", "com.example", "device", dev, "sender", f.sender.ID)
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == "" {
				v.Del(kv[i])
			} else {
				v.Set(kv[i], kv[i+1])
			}
		}
		return v
	}
	tests := []struct {
		name string
		auth string
		form url.Values
		want string
	}{
		{"no Authorization", "", ok(), "Error=AUTHENTICATION_FAILED"},
		{"other scheme", "Bearer x", ok(), "Error=AUTHENTICATION_FAILED"},
		{"no colon", "AidLogin " + dev, ok(), "Error=AUTHENTICATION_FAILED"},
		{"not numbers", "AidLogin a:b", ok(), "Error=AUTHENTICATION_FAILED"},
		{"zero token", f.authFor(f.aid, 0), ok(), "Error=AUTHENTICATION_FAILED"},
		{"unknown device", f.authFor(f.aid+1, f.tok), ok(), "Error=AUTHENTICATION_FAILED"},
		{"wrong token", f.authFor(f.aid, f.tok+1), ok(), "Error=AUTHENTICATION_FAILED"},
		{"device is another id", f.auth(), ok("device", "42"), "Error=AUTHENTICATION_FAILED"},
		{"device not a number", f.auth(), ok("device", "x"), "Error=AUTHENTICATION_FAILED"},
		{"missing app", f.auth(), ok("app", ""), "Error=INVALID_PARAMETERS"},
		{"app too long", f.auth(), ok("app", strings.Repeat("a", maxFieldBytes+1)), "Error=INVALID_PARAMETERS"},
		{"missing sender", f.auth(), ok("sender", ""), "Error=INVALID_SENDER"},
		{"non-numeric sender (web-push key)", f.auth(), ok("sender", "BDOU99-h67HcA6JeFXHbSNMu7e2yNNu3RzoMj8TM4W88jITfq7ZmPvIM1Iv-4_l2LxQcYwhqby2xGpWwzjfAnG4"), "Error=INVALID_SENDER"},
		{"sender list", f.auth(), ok("sender", f.sender.ID+","+f.sender.ID), "Error=INVALID_SENDER"},
		{"unknown sender", f.auth(), ok("sender", "999999999999"), "Error=INVALID_SENDER"},
		{"revoked sender", f.auth(), ok("sender", f.revoked.ID), "Error=INVALID_SENDER"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := f.register(t, tt.auth, tt.form)
			if status != http.StatusOK || body != tt.want {
				t.Errorf("got %d %q, want 200 %q", status, body, tt.want)
			}
		})
	}
	t.Run("bad form encoding", func(t *testing.T) {
		status, _, b := f.post(t, "/c2dm/register3", []byte("app=%zz"), "Authorization", f.auth())
		if status != http.StatusOK || string(b) != "Error=INVALID_PARAMETERS" {
			t.Errorf("got %d %q, want 200 Error=INVALID_PARAMETERS", status, b)
		}
	})
	t.Run("body too large", func(t *testing.T) {
		status, _, b := f.post(t, "/c2dm/register3", []byte("app="+strings.Repeat("a", MaxDeviceBody)), "Authorization", f.auth())
		if status != http.StatusRequestEntityTooLarge {
			t.Errorf("got %d %q, want 413", status, b)
		}
	})
}

func TestParseAidLogin(t *testing.T) {
	tests := []struct {
		in       string
		aid, tok uint64
		ok       bool
	}{
		{"AidLogin 1:2", 1, 2, true},
		{"aidlogin 1:2", 1, 2, true},
		{"  AidLogin   12:34  ", 12, 34, true},
		{"AidLogin 18446744073709551615:1", 18446744073709551615, 1, true},
		{"AidLogin 18446744073709551616:1", 0, 0, false},
		{"AidLogin 1:", 0, 0, false},
		{"AidLogin :1", 0, 0, false},
		{"AidLogin 0:1", 0, 0, false},
		{"AidLogin -1:1", 0, 0, false},
		{"AidLogin 1:2:3", 0, 0, false},
		{"AidLogin", 0, 0, false},
		{"", 0, 0, false},
	}
	for _, tt := range tests {
		aid, tok, ok := parseAidLogin(tt.in)
		if aid != tt.aid || tok != tt.tok || ok != tt.ok {
			t.Errorf("parseAidLogin(%q) = %d, %d, %v; want %d, %d, %v", tt.in, aid, tok, ok, tt.aid, tt.tok, tt.ok)
		}
	}
}

func TestAcceptsGzip(t *testing.T) {
	tests := []struct {
		in   []string
		want bool
	}{
		{nil, false},
		{[]string{"gzip"}, true},
		{[]string{"GZIP"}, true},
		{[]string{"deflate, gzip"}, true},
		{[]string{"gzip;q=0"}, false},
		{[]string{"gzip; q=0.0"}, false},
		{[]string{"gzip;q=0.5"}, true},
		{[]string{"br", "x-gzip"}, true},
		{[]string{"identity"}, false},
		{[]string{"*"}, false},
	}
	for _, tt := range tests {
		if got := acceptsGzip(tt.in); got != tt.want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// sanity: the test helper's request is what mcs decodes.
func TestCheckinBodyDecodes(t *testing.T) {
	var req mcspb.AndroidCheckinRequest
	if err := mcs.Unmarshal(checkinBody(t, 7, 8), &req); err != nil || req.GetId() != 7 || req.GetSecurityToken() != 8 {
		t.Fatalf("decoded %v, %v", &req, err)
	}
}

// FuzzCheckinRequest: any body, plain or gzipped, is answered 200 (with a
// strictly decodable response) or 400 (413 for a body that grows too large
// when gunzipped), never a panic.
func FuzzCheckinRequest(f *testing.F) {
	fx := newDeviceFixture(f)
	f.Add(checkinBody(f, 0, 0), false, false)
	f.Add(checkinBody(f, fx.aid, fx.tok), true, true)
	f.Add([]byte{0x22, 0x00}, false, true)
	f.Add([]byte{0xff}, false, false)
	f.Fuzz(func(t *testing.T, body []byte, gz, acceptGzip bool) {
		if gz {
			body = gzipped(body)
		}
		req := httptest.NewRequest(http.MethodPost, "/checkin", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/x-protobuf")
		if gz {
			req.Header.Set("Content-Encoding", "gzip")
		}
		if acceptGzip {
			req.Header.Set("Accept-Encoding", "gzip")
		}
		rec := httptest.NewRecorder()
		fx.h.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK:
			out := rec.Body.Bytes()
			if rec.Header().Get("Content-Encoding") == "gzip" {
				out = gunzip(t, out)
			}
			resp := decodeCheckin(t, out)
			if !resp.GetStatsOk() || resp.GetAndroidId() == 0 || resp.GetSecurityToken() == 0 {
				t.Fatalf("200 with an unusable response %v", resp)
			}
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("status %d (%q), want 200 or 400", rec.Code, rec.Body.Bytes())
		}
	})
}

// FuzzRegister3Form: random form bodies and Authorization headers never
// get a 5xx or a panic, and every reply is one key=value line clients
// parse. "{device}" and "{sender}" in the inputs become the fixture's
// checked-in device and sender, and useDevice swaps in its real
// credentials, so the fuzzer reaches registration and deletion.
func FuzzRegister3Form(f *testing.F) {
	fx := newDeviceFixture(f)
	f.Add("app=com.example&device={device}&sender={sender}", "", true)
	f.Add("app=com.example&device={device}&sender={sender}&X-subtype=wp%3Ax%231", "", true)
	f.Add("app=com.example&device={device}&delete=true", "", true)
	f.Add("app=com.example&device={device}&delete=1&scope=GCM", "", true)
	f.Add("app=com.example&sender=abc", "AidLogin {device}:1", false)
	f.Add("app=%zz", "AidLogin 1:2", false)
	f.Add("", "", false)
	dev := strconv.FormatUint(fx.aid, 10)
	f.Fuzz(func(t *testing.T, body, auth string, useDevice bool) {
		body = strings.ReplaceAll(strings.ReplaceAll(body, "{device}", dev), "{sender}", fx.sender.ID)
		auth = strings.ReplaceAll(auth, "{device}", dev)
		if useDevice {
			auth = fx.auth()
		}
		req := httptest.NewRequest(http.MethodPost, "/c2dm/register3", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		rec := httptest.NewRecorder()
		fx.h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("status %d (%q) for %q / %q", rec.Code, rec.Body.Bytes(), body, auth)
		}
		out := rec.Body.String()
		if rec.Code == http.StatusRequestEntityTooLarge {
			return
		}
		key, val, ok := strings.Cut(out, "=")
		if !ok || strings.ContainsAny(out, "\r\n") {
			t.Fatalf("reply %q is not one key=value line", out)
		}
		switch key {
		case "token", "deleted":
			if val == "" {
				t.Fatalf("reply %q has an empty value", out)
			}
		case "Error":
		default:
			t.Fatalf("reply %q: unexpected key", out)
		}
	})
}

func TestResultRecorder(t *testing.T) {
	tests := []struct {
		status int
		body   string
		want   string
	}{
		{200, "token=APA91bxyz", "token"},
		{200, "deleted=com.example", "deleted"},
		{200, "Error=INVALID_SENDER", "INVALID_SENDER"},
		{200, "Error=AUTHENTICATION_FAILED\n", "AUTHENTICATION_FAILED"},
		{200, "\x08\x01", "ok"},
		{400, "bad", "400"},
	}
	for _, tt := range tests {
		rr := &resultRecorder{ResponseWriter: httptest.NewRecorder(), status: http.StatusOK}
		if tt.status != http.StatusOK {
			rr.WriteHeader(tt.status)
		}
		_, _ = rr.Write([]byte(tt.body))
		if got := rr.result(); got != tt.want {
			t.Errorf("status %d body %q: result %q, want %q", tt.status, tt.body, got, tt.want)
		}
	}
}
