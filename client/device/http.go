// Package device is a Go device client for ccsd's device endpoints (and for
// GCM's own, whose protocol it speaks): check-in and registration over
// HTTPS, and the MCS connection that receives downstream messages, sends
// upstream ones and acknowledges what it got. The CLI simulator, the load
// generator and the end-to-end tests use it.
//
// Check-in and registration are plain functions over an *http.Client
// (Checkin, Register, Unregister). Dial opens an MCS connection (a *Conn);
// see Conn for who owns which goroutine.
package device

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/ccsd/ccsd/internal/mcs"
	"github.com/ccsd/ccsd/internal/mcs/mcspb"
)

// Credentials are what a check-in issues: the android id and its security
// token. The zero value asks for new ones.
type Credentials struct {
	AndroidID     uint64 `json:"android_id,string"`
	SecurityToken uint64 `json:"security_token,string"`
}

// IsZero reports whether c holds no credentials.
func (c Credentials) IsZero() bool { return c.AndroidID == 0 && c.SecurityToken == 0 }

// Paths of the device HTTP routes under a base URL.
const (
	CheckinPath  = "/checkin"
	RegisterPath = "/c2dm/register3"
)

// maxReplyBytes bounds every HTTP reply read (decoded).
const maxReplyBytes = 64 << 10

// chromeVersion is what Checkin claims to be, as the Node clients do.
const chromeVersion = "63.0.3234.0"

// Checkin checks the device in at baseURL (for example
// "https://127.0.0.1:8443") and returns its credentials: prev when the
// server knows them, new ones when prev is zero or unknown. The request is
// what the Node push clients send (a Chrome browser on Linux, version 3).
func Checkin(ctx context.Context, hc *http.Client, baseURL string, prev Credentials) (Credentials, error) {
	req := &mcspb.AndroidCheckinRequest{
		Checkin: &mcspb.AndroidCheckinProto{
			Type: mcspb.DeviceType_DEVICE_CHROME_BROWSER.Enum(),
			ChromeBuild: &mcspb.ChromeBuildProto{
				Platform:      mcspb.ChromeBuildProto_PLATFORM_LINUX.Enum(),
				ChromeVersion: proto.String(chromeVersion),
				Channel:       mcspb.ChromeBuildProto_CHANNEL_STABLE.Enum(),
			},
		},
		Version:          proto.Int32(3),
		UserSerialNumber: proto.Int32(0),
	}
	if !prev.IsZero() {
		req.Id = proto.Int64(int64(prev.AndroidID))
		req.SecurityToken = proto.Uint64(prev.SecurityToken)
	}
	body, err := proto.Marshal(req)
	if err != nil {
		return Credentials{}, fmt.Errorf("encoding checkin request: %w", err)
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(baseURL, "/")+CheckinPath, bytes.NewReader(body))
	if err != nil {
		return Credentials{}, fmt.Errorf("checkin: %w", err)
	}
	hr.Header.Set("Content-Type", "application/x-protobuf")
	b, status, err := do(hc, hr)
	if err != nil {
		return Credentials{}, fmt.Errorf("checkin: %w", err)
	}
	if status != http.StatusOK {
		return Credentials{}, &HTTPError{Op: "checkin", Status: status, Body: snippet(b)}
	}
	var resp mcspb.AndroidCheckinResponse
	if err := mcs.Unmarshal(b, &resp); err != nil {
		return Credentials{}, fmt.Errorf("checkin: decoding response: %w", err)
	}
	if !resp.GetStatsOk() {
		return Credentials{}, errors.New("checkin: response without stats_ok")
	}
	c := Credentials{AndroidID: resp.GetAndroidId(), SecurityToken: resp.GetSecurityToken()}
	if c.AndroidID == 0 || c.SecurityToken == 0 {
		return Credentials{}, errors.New("checkin: response without android id or security token")
	}
	return c, nil
}

// RegisterRequest names an app instance and the sender it registers with.
type RegisterRequest struct {
	App     string // package name or category (form field app)
	Sender  string // sender id (form field sender)
	Subtype string // X-subtype, when the app shares a category
}

// RegisterError is a registration refused with Error=CODE in the body.
type RegisterError struct {
	Code   string // for example AUTHENTICATION_FAILED, INVALID_SENDER
	Status int    // HTTP status of the reply
}

func (e *RegisterError) Error() string {
	return "registration refused: " + e.Code
}

// HTTPError is a reply that is neither success nor an Error= line.
type HTTPError struct {
	Op     string
	Status int
	Body   string // the start of the body
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("%s: http status %d: %q", e.Op, e.Status, e.Body)
}

// Register registers the app instance req for req.Sender and returns its
// registration id (token). Registering again returns the same token.
func Register(ctx context.Context, hc *http.Client, baseURL string, cred Credentials, req RegisterRequest) (string, error) {
	form := url.Values{}
	form.Set("app", req.App)
	form.Set("device", strconv.FormatUint(cred.AndroidID, 10))
	form.Set("sender", req.Sender)
	if req.Subtype != "" {
		form.Set("X-subtype", req.Subtype)
	}
	kv, err := postRegister3(ctx, hc, baseURL, cred, form, "register")
	if err != nil {
		return "", err
	}
	tok, ok := kv["token"]
	if !ok || tok == "" {
		return "", errors.New("register: reply without token")
	}
	return tok, nil
}

// Unregister removes the app instance (req.App, req.Subtype) from every
// sender; req.Sender is sent along but not needed.
func Unregister(ctx context.Context, hc *http.Client, baseURL string, cred Credentials, req RegisterRequest) error {
	form := url.Values{}
	form.Set("app", req.App)
	form.Set("device", strconv.FormatUint(cred.AndroidID, 10))
	form.Set("delete", "true")
	if req.Sender != "" {
		form.Set("sender", req.Sender)
	}
	if req.Subtype != "" {
		form.Set("X-subtype", req.Subtype)
	}
	kv, err := postRegister3(ctx, hc, baseURL, cred, form, "unregister")
	if err != nil {
		return err
	}
	if _, ok := kv["deleted"]; !ok {
		if _, ok := kv["token"]; !ok {
			return errors.New("unregister: reply without deleted=")
		}
	}
	return nil
}

// postRegister3 posts form to register3 and returns the key=value lines of
// a successful reply; Error= comes back as a *RegisterError.
func postRegister3(ctx context.Context, hc *http.Client, baseURL string, cred Credentials, form url.Values, op string) (map[string]string, error) {
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(baseURL, "/")+RegisterPath, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	hr.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	hr.Header.Set("Authorization", "AidLogin "+strconv.FormatUint(cred.AndroidID, 10)+":"+strconv.FormatUint(cred.SecurityToken, 10))
	b, status, err := do(hc, hr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	kv := parseLines(b)
	// Like Chromium: Error= first, whatever the status.
	if code, ok := kv["Error"]; ok {
		return nil, &RegisterError{Code: code, Status: status}
	}
	if status != http.StatusOK {
		return nil, &HTTPError{Op: op, Status: status, Body: snippet(b)}
	}
	return kv, nil
}

// parseLines splits a register3 body into key=value lines (split at the
// first '=', trimmed, as microG does); lines without '=' are skipped.
func parseLines(b []byte) map[string]string {
	kv := make(map[string]string)
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		kv[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return kv
}

// do runs hr and returns the (decoded, bounded) body and status.
func do(hc *http.Client, hr *http.Request) ([]byte, int, error) {
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := hc.Do(hr)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	var r io.Reader = resp.Body
	// The transport decodes gzip itself unless the caller asked for it;
	// decode what it left encoded.
	if strings.EqualFold(resp.Header.Get("Content-Encoding"), "gzip") {
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			return nil, resp.StatusCode, fmt.Errorf("decoding gzip reply: %w", err)
		}
		defer zr.Close()
		r = zr
	}
	b, err := io.ReadAll(io.LimitReader(r, maxReplyBytes+1))
	if err != nil {
		return nil, resp.StatusCode, fmt.Errorf("reading reply: %w", err)
	}
	if len(b) > maxReplyBytes {
		return nil, resp.StatusCode, fmt.Errorf("reply over %d bytes", maxReplyBytes)
	}
	return b, resp.StatusCode, nil
}

func snippet(b []byte) string {
	if len(b) > 200 {
		b = b[:200]
	}
	return string(b)
}
