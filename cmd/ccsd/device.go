package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/ccsd/ccsd/client/device"
	"github.com/ccsd/ccsd/internal/certs"
)

// The device simulator: `ccsd device register|listen|send|unregister`
// plays one device against a running server, over the same HTTPS
// check-in/registration routes and MCS socket that real devices use. Its
// state (credentials, registrations, endpoints, ids to acknowledge) lives in
// a JSON file, DIR/device.json unless --state says otherwise.

const deviceUsage = `ccsd device: simulate a device

Commands:
  register    check in and register an app for a sender; prints the registration id
  listen      log in over MCS and print each downstream message as one JSON line
  send        send one upstream message to a sender and wait until it is stored
  unregister  unregister the device's apps

Run "ccsd device COMMAND -h" for a command's flags.
`

// defaultDeviceApp is the package a simulated device registers by default.
const defaultDeviceApp = "com.example.ccsd"

// deviceState is the simulator's state file.
type deviceState struct {
	device.Credentials
	DataDir       string           `json:"data_dir,omitempty"`
	Endpoints     deviceEndpoints  `json:"endpoints"`
	Registrations []deviceRegEntry `json:"registrations"`
	// ReceivedIDs are persistent ids printed by listen and not yet
	// acknowledged at a login; the next login sends them.
	ReceivedIDs []string `json:"received_ids,omitempty"`
}

// deviceEndpoints are the fields of DIR/endpoints.json the simulator uses.
type deviceEndpoints struct {
	Device string `json:"device"` // HTTPS host:port of check-in and register3
	MCS    string `json:"mcs"`    // TLS host:port of the MCS endpoint
	CAFile string `json:"ca_file"`
}

type deviceRegEntry struct {
	App            string `json:"app"`
	Subtype        string `json:"subtype,omitempty"`
	Sender         string `json:"sender"`
	RegistrationID string `json:"registration_id"`
}

func cmdDevice(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, deviceUsage)
		return usageError("device: a command is required")
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "register":
		return deviceRegister(ctx, rest, stdout, stderr)
	case "listen":
		return deviceListen(ctx, rest, stdout, stderr)
	case "send":
		return deviceSend(ctx, rest, stdout, stderr)
	case "unregister":
		return deviceUnregister(ctx, rest, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, deviceUsage)
		return nil
	default:
		fmt.Fprint(stderr, deviceUsage)
		return usageError(fmt.Sprintf("device: unknown command %q", cmd))
	}
}

// stateFlags are the flags every device command has.
type stateFlags struct {
	dataDir string
	state   string
	timeout time.Duration
}

func (s *stateFlags) add(fs interface {
	StringVar(*string, string, string, string)
	DurationVar(*time.Duration, string, time.Duration, string)
}, timeout time.Duration) {
	fs.StringVar(&s.dataDir, "data-dir", "./ccsd-data", "data directory of the running server (endpoints.json)")
	fs.StringVar(&s.state, "state", "", "device state file (default DATA_DIR/device.json)")
	fs.DurationVar(&s.timeout, "timeout", timeout, "give up after this long (0: never)")
}

func (s *stateFlags) path() string {
	if s.state != "" {
		return s.state
	}
	return filepath.Join(s.dataDir, "device.json")
}

func (s *stateFlags) context(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	if s.timeout <= 0 {
		return ctx, stop
	}
	tctx, cancel := context.WithTimeout(ctx, s.timeout)
	return tctx, func() { cancel(); stop() }
}

// load reads the state file, refreshing its endpoints from the server's
// endpoints.json when that is readable.
func (s *stateFlags) load() (*deviceState, error) {
	var st deviceState
	if err := readJSONFile(s.path(), &st); err != nil {
		return nil, fmt.Errorf("reading device state (run ccsd device register first): %w", err)
	}
	dir := st.DataDir
	if s.dataDir != "./ccsd-data" || dir == "" {
		dir = s.dataDir
	}
	var ep deviceEndpoints
	if err := readJSONFile(filepath.Join(dir, "endpoints.json"), &ep); err == nil {
		st.Endpoints.merge(ep)
	}
	return &st, nil
}

func (e *deviceEndpoints) merge(fresh deviceEndpoints) {
	if fresh.Device != "" {
		e.Device = fresh.Device
	}
	if fresh.MCS != "" {
		e.MCS = fresh.MCS
	}
	if fresh.CAFile != "" {
		e.CAFile = fresh.CAFile
	}
}

// httpClient trusts the state's CA for the device HTTPS endpoint.
func (st *deviceState) httpClient() (*http.Client, error) {
	tc, err := st.tlsConfig(st.Endpoints.Device)
	if err != nil {
		return nil, err
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true}}, nil
}

func (st *deviceState) tlsConfig(addr string) (*tls.Config, error) {
	if st.Endpoints.CAFile == "" {
		return nil, errors.New("no CA file known: is ccsd serve running, with its endpoints.json?")
	}
	pool, err := certs.LoadCA(st.Endpoints.CAFile)
	if err != nil {
		return nil, err
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("bad address %q: %w", addr, err)
	}
	return clientTLS(pool, host), nil
}

func (st *deviceState) baseURL() string { return "https://" + st.Endpoints.Device }

func (st *deviceState) registration(sender string) (deviceRegEntry, bool) {
	for _, r := range st.Registrations {
		if sender == "" || r.Sender == sender {
			return r, true
		}
	}
	return deviceRegEntry{}, false
}

func (st *deviceState) save(path string) error {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("creating %s: %w", dir, err)
		}
	}
	return writeJSONFile(path, st)
}

func deviceRegister(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("device register", stderr)
	var sf stateFlags
	sf.add(fs, 30*time.Second)
	sender := fs.String("sender", "", "sender id to register with (required)")
	app := fs.String("app", defaultDeviceApp, "app package to register")
	subtype := fs.String("subtype", "", "X-subtype, when the app shares a category")
	asJSON := fs.Bool("json", false, `print {"registration_id":"…"} instead of the bare id`)
	if pos, err := parseFlags(fs, args); err != nil {
		return err
	} else if len(pos) != 0 {
		return usageError("device register takes no positional arguments")
	}
	if *sender == "" {
		return usageError("device register: --sender is required")
	}
	st := &deviceState{}
	path := sf.path()
	if err := readJSONFile(path, st); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	var ep deviceEndpoints
	if err := readJSONFile(filepath.Join(sf.dataDir, "endpoints.json"), &ep); err != nil {
		if st.Endpoints.Device == "" {
			return fmt.Errorf("is ccsd serve running on %s? %w", sf.dataDir, err)
		}
	}
	st.Endpoints.merge(ep)
	if st.Endpoints.Device == "" {
		return fmt.Errorf("%s has no device endpoint: this server does not serve devices", filepath.Join(sf.dataDir, "endpoints.json"))
	}
	if abs, err := filepath.Abs(sf.dataDir); err == nil {
		st.DataDir = abs
	}
	ctx, cancel := sf.context(ctx)
	defer cancel()
	hc, err := st.httpClient()
	if err != nil {
		return err
	}
	defer hc.CloseIdleConnections()
	cred, err := device.Checkin(ctx, hc, st.baseURL(), st.Credentials)
	if err != nil {
		return err
	}
	if cred != st.Credentials {
		// A new device (or the server forgot the old one): old
		// registrations and pending acks belonged to the old id.
		st.Registrations, st.ReceivedIDs = nil, nil
	}
	st.Credentials = cred
	tok, err := device.Register(ctx, hc, st.baseURL(), cred, device.RegisterRequest{App: *app, Sender: *sender, Subtype: *subtype})
	if err != nil {
		if serr := st.save(path); serr != nil {
			return errors.Join(err, serr)
		}
		return err
	}
	entry := deviceRegEntry{App: *app, Subtype: *subtype, Sender: *sender, RegistrationID: tok}
	replaced := false
	for i, r := range st.Registrations {
		if r.App == entry.App && r.Subtype == entry.Subtype && r.Sender == entry.Sender {
			st.Registrations[i], replaced = entry, true
		}
	}
	if !replaced {
		st.Registrations = append(st.Registrations, entry)
	}
	if err := st.save(path); err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(map[string]string{"registration_id": tok})
	}
	_, err = fmt.Fprintln(stdout, tok)
	return err
}

// listenLine is one message as listen prints it.
type listenLine struct {
	PersistentID string            `json:"persistent_id"`
	From         string            `json:"from"`
	Category     string            `json:"category"`
	CollapseKey  string            `json:"collapse_key,omitempty"`
	MessageType  string            `json:"message_type,omitempty"`
	Data         map[string]string `json:"data"`
}

func deviceListen(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("device listen", stderr)
	var sf stateFlags
	sf.add(fs, 0)
	count := fs.Int("count", 0, "exit after this many messages (0: keep listening)")
	idle := fs.Bool("idle", false, "log in as an idle device")
	_ = fs.Bool("json", true, "print messages as JSON lines (always on; accepted for symmetry)")
	if pos, err := parseFlags(fs, args); err != nil {
		return err
	} else if len(pos) != 0 {
		return usageError("device listen takes no positional arguments")
	}
	if *count < 0 {
		return usageError("device listen: --count must be >= 0")
	}
	path := sf.path()
	st, err := sf.load()
	if err != nil {
		return err
	}
	if st.Endpoints.MCS == "" {
		return errors.New("no MCS endpoint known: is ccsd serve running, with its endpoints.json?")
	}
	tc, err := st.tlsConfig(st.Endpoints.MCS)
	if err != nil {
		return err
	}
	ctx, cancel := sf.context(ctx)
	defer cancel()
	c, err := device.Dial(ctx, st.Endpoints.MCS, tc, st.Credentials, device.Options{ReceivedIDs: st.ReceivedIDs, Idle: *idle})
	if err != nil {
		return err
	}
	defer c.Close()
	// The login acknowledged the ids we held.
	st.ReceivedIDs = nil
	if err := st.save(path); err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	for n := 0; *count == 0 || n < *count; n++ {
		m, err := c.Next(ctx)
		if err != nil {
			if *count == 0 && errors.Is(err, context.DeadlineExceeded) {
				return nil // listened for the whole --timeout
			}
			if errors.Is(err, context.DeadlineExceeded) {
				return fmt.Errorf("got %d of %d messages before the timeout", n, *count)
			}
			if ctx.Err() != nil && *count == 0 {
				return nil // interrupted
			}
			return err
		}
		line := listenLine{PersistentID: m.PersistentID, From: m.From, Category: m.Category,
			CollapseKey: m.CollapseKey, MessageType: m.MessageType, Data: m.Data}
		if err := enc.Encode(line); err != nil {
			return err
		}
		if m.PersistentID == "" {
			continue
		}
		// Remember it first, so a crash before the ack reaches the
		// server still acknowledges it at the next login.
		st.ReceivedIDs = append(st.ReceivedIDs, m.PersistentID)
		if err := st.save(path); err != nil {
			return err
		}
		if err := c.Ack(m.PersistentID); err != nil {
			return err
		}
	}
	// Make sure the server has read the acks before we hang up: a ping
	// is answered only after everything sent before it was read. The ids
	// stay in the state anyway: the next login acknowledges them again,
	// which makes the server skip them even if retiring them has not
	// finished by then.
	_ = c.Ping(ctx)
	return nil
}

func deviceSend(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("device send", stderr)
	var sf stateFlags
	sf.add(fs, 30*time.Second)
	to := fs.String("to", "", "sender id to send to (required); @gcm.googleapis.com is added")
	payload := fs.String("json", "{}", `message JSON: {"data":{...}} and optionally "time_to_live", "category"`)
	msgID := fs.String("message-id", "", "message id (default: random)")
	if pos, err := parseFlags(fs, args); err != nil {
		return err
	} else if len(pos) != 0 {
		return usageError("device send takes no positional arguments")
	}
	if *to == "" {
		return usageError("device send: --to is required")
	}
	var msg struct {
		Data       map[string]any `json:"data"`
		TimeToLive *int32         `json:"time_to_live"`
		Category   string         `json:"category"`
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(*payload)))
	dec.UseNumber()
	if err := dec.Decode(&msg); err != nil {
		return usageError(fmt.Sprintf("device send: --json is not a message object: %v", err))
	}
	sender, _, _ := strings.Cut(*to, "@")
	up := device.Upstream{To: sender + "@gcm.googleapis.com", MessageID: *msgID, Category: msg.Category,
		Data: make(map[string]string, len(msg.Data))}
	if strings.Contains(*to, "@") {
		up.To = *to
	}
	if up.MessageID == "" {
		up.MessageID = "ccsd-up-" + randomHex(8)
	}
	if msg.TimeToLive != nil {
		up.TTL = *msg.TimeToLive
	}
	for k, v := range msg.Data {
		if s, ok := v.(string); ok {
			up.Data[k] = s
			continue
		}
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		up.Data[k] = string(b)
	}
	st, err := sf.load()
	if err != nil {
		return err
	}
	if reg, ok := st.registration(sender); ok {
		up.RegID = reg.RegistrationID
		if up.Category == "" {
			up.Category = reg.App
		}
	}
	if up.Category == "" {
		up.Category = defaultDeviceApp
	}
	if st.Endpoints.MCS == "" {
		return errors.New("no MCS endpoint known: is ccsd serve running, with its endpoints.json?")
	}
	tc, err := st.tlsConfig(st.Endpoints.MCS)
	if err != nil {
		return err
	}
	ctx, cancel := sf.context(ctx)
	defer cancel()
	c, err := device.Dial(ctx, st.Endpoints.MCS, tc, st.Credentials, device.Options{ReceivedIDs: st.ReceivedIDs})
	if err != nil {
		return err
	}
	defer c.Close()
	if len(st.ReceivedIDs) > 0 {
		st.ReceivedIDs = nil
		if err := st.save(sf.path()); err != nil {
			return err
		}
	}
	enc := json.NewEncoder(stdout)
	if err := c.Send(ctx, up); err != nil {
		var se *device.SendError
		if errors.As(err, &se) {
			_ = enc.Encode(map[string]string{"message_id": up.MessageID, "status": "error", "error": se.Code})
		}
		return err
	}
	return enc.Encode(map[string]string{"message_id": up.MessageID, "status": "stored"})
}

func deviceUnregister(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("device unregister", stderr)
	var sf stateFlags
	sf.add(fs, 30*time.Second)
	app := fs.String("app", "", "app package to unregister (default: every registered app)")
	subtype := fs.String("subtype", "", "X-subtype of the app, with --app")
	if pos, err := parseFlags(fs, args); err != nil {
		return err
	} else if len(pos) != 0 {
		return usageError("device unregister takes no positional arguments")
	}
	path := sf.path()
	st, err := sf.load()
	if err != nil {
		return err
	}
	type appKey struct{ app, subtype string }
	var apps []appKey
	if *app != "" {
		apps = append(apps, appKey{*app, *subtype})
	} else {
		seen := map[appKey]bool{}
		for _, r := range st.Registrations {
			k := appKey{r.App, r.Subtype}
			if !seen[k] {
				seen[k] = true
				apps = append(apps, k)
			}
		}
	}
	if len(apps) == 0 {
		return errors.New("nothing to unregister: the state has no registrations (use --app)")
	}
	ctx, cancel := sf.context(ctx)
	defer cancel()
	hc, err := st.httpClient()
	if err != nil {
		return err
	}
	defer hc.CloseIdleConnections()
	enc := json.NewEncoder(stdout)
	for _, a := range apps {
		if err := device.Unregister(ctx, hc, st.baseURL(), st.Credentials, device.RegisterRequest{App: a.app, Subtype: a.subtype}); err != nil {
			return err
		}
		kept := st.Registrations[:0]
		for _, r := range st.Registrations {
			if r.App != a.app || r.Subtype != a.subtype {
				kept = append(kept, r)
			}
		}
		st.Registrations = kept
		if err := st.save(path); err != nil {
			return err
		}
		if err := enc.Encode(map[string]string{"deleted": a.app}); err != nil {
			return err
		}
	}
	return nil
}
