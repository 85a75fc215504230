package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/ccsd/ccsd/client/ccs"
	"github.com/ccsd/ccsd/client/device"
	"github.com/ccsd/ccsd/internal/certs"
)

// The load generator: `ccsd bench ccs|e2e|idle` drives a running `ccsd
// serve` over real sockets, with the public SDKs (client/ccs,
// client/device) and, for the idle connections, a lean MCS client that
// keeps no goroutine per connection. Devices are checked in and registered
// through the device HTTPS endpoint and cached in a file, so reruns against
// the same server skip that. docs/bench.md has the figures.

const benchUsage = `ccsd bench: load generator against a running ccsd serve

Commands:
  ccs    N app-server connections with full windows send M messages; ACK rate and latency
  e2e    app server -> ccsd -> D connected devices (acking), or --upstream the other way
  idle   D logged-in, idle MCS connections held open; prints "ready N"

Run "ccsd bench COMMAND -h" for a command's flags.
`

// benchApp is the package the generator's devices register.
const benchApp = "com.example.bench"

func cmdBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, benchUsage)
		return usageError("bench: a command is required")
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	switch cmd, rest := args[0], args[1:]; cmd {
	case "ccs":
		return benchCCS(ctx, rest, stdout, stderr)
	case "e2e":
		return benchE2E(ctx, rest, stdout, stderr)
	case "idle":
		return benchIdle(ctx, rest, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, benchUsage)
		return nil
	default:
		fmt.Fprint(stderr, benchUsage)
		return usageError(fmt.Sprintf("bench: unknown command %q", cmd))
	}
}

// benchTarget is the running server a bench command drives.
type benchTarget struct {
	dir    string
	ep     endpoints
	pool   *x509.CertPool
	sender string
	apiKey string
	pid    int // server process, 0 when unknown
}

// targetFlags are the flags every bench command has.
type targetFlags struct {
	dataDir, sender, apiKey, devFile string
	pid                              int
	timeout                          time.Duration
}

func (f *targetFlags) add(fs *flag.FlagSet, kind string, timeout time.Duration) {
	fs.StringVar(&f.dataDir, "data-dir", "./ccsd-data", "data directory of the running server (endpoints.json, dev-sender.json)")
	fs.StringVar(&f.sender, "sender", "", "sender id (default: the development sender of the data dir)")
	fs.StringVar(&f.apiKey, "api-key", "", "API key of --sender")
	fs.StringVar(&f.devFile, "devices-file", "", "cache of checked-in, registered devices (default DATA_DIR/bench-devices-"+kind+".json)")
	fs.IntVar(&f.pid, "server-pid", 0, "server process id, for CPU and RSS (default: DATA_DIR/ccsd.pid when present)")
	if timeout > 0 {
		fs.DurationVar(&f.timeout, "timeout", timeout, "give up after this long")
	}
}

func (f *targetFlags) load() (*benchTarget, error) {
	t := &benchTarget{dir: f.dataDir, sender: f.sender, apiKey: f.apiKey, pid: f.pid}
	if err := readJSONFile(filepath.Join(f.dataDir, "endpoints.json"), &t.ep); err != nil {
		return nil, fmt.Errorf("is ccsd serve running on %s? %w", f.dataDir, err)
	}
	if t.sender == "" {
		var d devSender
		if err := readJSONFile(filepath.Join(f.dataDir, "dev-sender.json"), &d); err != nil {
			return nil, fmt.Errorf("no --sender and no development sender: %w", err)
		}
		t.sender, t.apiKey = d.SenderID, d.APIKey
	}
	pool, err := certs.LoadCA(t.ep.CAFile)
	if err != nil {
		return nil, err
	}
	t.pool = pool
	if t.pid == 0 {
		if b, err := os.ReadFile(filepath.Join(f.dataDir, "ccsd.pid")); err == nil {
			t.pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		}
	}
	return t, nil
}

func (t *benchTarget) tlsFor(addr string) *tls.Config {
	host, _, _ := net.SplitHostPort(addr)
	return clientTLS(t.pool, host)
}

func (t *benchTarget) dialCCS(ctx context.Context, cfg ccs.Config) (*ccs.Client, error) {
	cfg.Addr, cfg.SenderID, cfg.APIKey, cfg.TLSConfig = t.ep.CCS, t.sender, t.apiKey, t.tlsFor(t.ep.CCS)
	return ccs.Dial(ctx, cfg)
}

// benchDevice is one checked-in device with its registration.
type benchDevice struct {
	Cred  device.Credentials `json:"cred"`
	RegID string             `json:"reg"`
}

// benchDeviceFile is the cache of provisioned devices. It is valid for the
// sender it names (a fresh data dir has a fresh development sender).
type benchDeviceFile struct {
	Sender  string        `json:"sender"`
	Devices []benchDevice `json:"devices"`
}

// provision returns n devices registered for t's sender, from the cache
// file when it holds them, checking in and registering the missing ones
// through the device HTTPS endpoint (16 at a time).
func provision(ctx context.Context, t *benchTarget, path string, n int, stderr io.Writer) ([]benchDevice, error) {
	var f benchDeviceFile
	if err := readJSONFile(path, &f); err != nil || f.Sender != t.sender {
		f = benchDeviceFile{Sender: t.sender}
	}
	if len(f.Devices) >= n {
		return f.Devices[:n], nil
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: t.tlsFor(t.ep.Device), ForceAttemptHTTP2: true,
		MaxIdleConnsPerHost: 16}}
	defer hc.CloseIdleConnections()
	base := "https://" + t.ep.Device
	have := len(f.Devices)
	f.Devices = slices.Grow(f.Devices, n-have)[:n]
	start := time.Now()
	var retries atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i := have; i < n; i++ {
		g.Go(func() error {
			cred, err := device.Checkin(gctx, hc, base, device.Credentials{})
			if err != nil {
				return err
			}
			// In a cluster the device record may not be readable on this
			// node yet right after the check-in: retry a refusal a few times.
			var reg string
			for try := 0; ; try++ {
				reg, err = device.Register(gctx, hc, base, cred, device.RegisterRequest{App: benchApp, Sender: t.sender})
				var re *device.RegisterError
				if err == nil || !errors.As(err, &re) || re.Code != "AUTHENTICATION_FAILED" || try == 5 {
					break
				}
				retries.Add(1)
				select {
				case <-time.After(time.Duration(20<<try) * time.Millisecond):
				case <-gctx.Done():
					return gctx.Err()
				}
			}
			if err != nil {
				return err
			}
			f.Devices[i] = benchDevice{Cred: cred, RegID: reg}
			return nil
		})
	}
	err := g.Wait()
	if err != nil {
		// Keep the ones that are complete (a prefix is all the cache holds).
		k := have
		for k < n && f.Devices[k].RegID != "" {
			k++
		}
		f.Devices = f.Devices[:k]
	}
	if serr := writeJSONFile(path, &f); serr != nil {
		return nil, errors.Join(err, serr)
	}
	if err != nil {
		return nil, fmt.Errorf("provisioning devices: %w", err)
	}
	fmt.Fprintf(stderr, "provisioned %d devices in %.1fs, %d registrations retried (cached in %s)\n", n-have,
		time.Since(start).Seconds(), retries.Load(), path)
	return f.Devices, nil
}

// procSample is a process's CPU time and resident memory.
type procSample struct {
	cpu time.Duration
	rss int64 // bytes
}

// readProc reads /proc/PID/stat (utime, stime) and /proc/PID/status (VmRSS).
func readProc(pid int) (procSample, error) {
	var s procSample
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	i := strings.LastIndexByte(string(b), ')')
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) < 13 {
		return s, fmt.Errorf("short /proc/%d/stat", pid)
	}
	ut, _ := strconv.ParseInt(fields[11], 10, 64)
	st, _ := strconv.ParseInt(fields[12], 10, 64)
	s.cpu = time.Duration(ut+st) * (time.Second / 100) // USER_HZ is 100 on Linux
	b, err = os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			s.rss = kb << 10
		}
	}
	return s, nil
}

// serverMeter reports the server's CPU per message over a run.
type serverMeter struct {
	pid  int
	s0   procSample
	ok   bool
	self time.Duration // the generator's own CPU at the start
}

func startMeter(pid int) *serverMeter {
	m := &serverMeter{pid: pid, self: selfCPU()}
	if pid > 0 {
		s, err := readProc(pid)
		m.s0, m.ok = s, err == nil
	}
	return m
}

// selfCPU is this process's user+system CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func (m *serverMeter) report(w io.Writer, msgs int) {
	if msgs > 0 {
		fmt.Fprintf(w, "generator cpu: %.1f µs/msg (same machine)\n", float64((selfCPU()-m.self).Microseconds())/float64(msgs))
	}
	if !m.ok || msgs == 0 {
		fmt.Fprintln(w, "server cpu: unknown (pass --server-pid)")
		return
	}
	s, err := readProc(m.pid)
	if err != nil {
		fmt.Fprintln(w, "server cpu:", err)
		return
	}
	d := s.cpu - m.s0.cpu
	fmt.Fprintf(w, "server cpu: %.2fs total, %.1f µs/msg (pid %d, rss %d MB)\n", d.Seconds(),
		float64(d.Microseconds())/float64(msgs), m.pid, s.rss>>20)
}

// latencies prints p50/p99/p99.9 of what was recorded (zero entries are
// messages that were not measured).
func printLatency(w io.Writer, name string, lat []time.Duration) {
	l := slices.DeleteFunc(slices.Clone(lat), func(d time.Duration) bool { return d <= 0 })
	if len(l) == 0 {
		fmt.Fprintf(w, "%s latency: no samples\n", name)
		return
	}
	slices.Sort(l)
	q := func(p float64) string {
		return l[min(len(l)-1, int(float64(len(l))*p))].Round(10 * time.Microsecond).String()
	}
	fmt.Fprintf(w, "%s latency: p50 %s p99 %s p99.9 %s max %s (%d samples)\n", name, q(0.5), q(0.99), q(0.999),
		l[len(l)-1].Round(10*time.Microsecond), len(l))
}

// nackCounts counts NACKs and lost answers by code.
type nackCounts struct {
	mu sync.Mutex
	m  map[string]int // guarded by mu
}

func (n *nackCounts) add(code string) {
	n.mu.Lock()
	if n.m == nil {
		n.m = map[string]int{}
	}
	n.m[code]++
	n.mu.Unlock()
}

func (n *nackCounts) print(w io.Writer) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.m) == 0 {
		fmt.Fprintln(w, "nacks: none")
		return
	}
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range n.m {
			if !yield(k) {
				return
			}
		}
	})
	fmt.Fprint(w, "nacks:")
	for _, k := range keys {
		fmt.Fprintf(w, " %s=%d", k, n.m[k])
	}
	fmt.Fprintln(w)
}

// downPayload builds the CCS JSON of message i of run: the send time in ns
// ("t"), the index ("i"), the run id ("r") and a padding payload ("p").
func downPayload(reg, run string, i int, pad string, now time.Time) []byte {
	b := make([]byte, 0, 96+len(reg)+len(pad))
	b = append(b, `{"to":"`...)
	b = append(b, reg...)
	b = append(b, `","message_id":"`...)
	b = append(b, run...)
	b = append(b, '-')
	b = strconv.AppendInt(b, int64(i), 10)
	b = append(b, `","data":{"r":"`...)
	b = append(b, run...)
	b = append(b, `","i":"`...)
	b = strconv.AppendInt(b, int64(i), 10)
	b = append(b, `","t":"`...)
	b = strconv.AppendInt(b, now.UnixNano(), 10)
	b = append(b, `","p":"`...)
	b = append(b, pad...)
	return append(b, `"}}`...)
}

// stamp is what a received message says about its sending: index and
// latency, ok false when it is not from this run.
func stamp(data map[string]string, run string, now time.Time) (int, time.Duration, bool) {
	if data["r"] != run {
		return 0, 0, false
	}
	i, err1 := strconv.Atoi(data["i"])
	t, err2 := strconv.ParseInt(data["t"], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return i, now.Sub(time.Unix(0, t)), true
}

// sendDown sends n messages over clients (message i on client i%len,
// registration i%len(regs)) with their full windows and waits for every
// answer. ackLat[i] is the ACK latency of message i; acked counts ACKs.
func sendDown(ctx context.Context, clients []*ccs.Client, regs []string, run string, n int, pad string,
	nacks *nackCounts) (ackLat []time.Duration, acked int, err error) {
	ackLat = make([]time.Duration, n)
	msgs := make([]ccs.Message, n)
	var wg sync.WaitGroup
	var nAcked atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	for c, cl := range clients {
		g.Go(func() error {
			for i := c; i < n; i += len(clients) {
				t0 := time.Now()
				m := &msgs[i]
				m.To, m.MessageID = regs[i%len(regs)], run+"-"+strconv.Itoa(i)
				m.RawJSON = downPayload(m.To, run, i, pad, t0)
				wg.Add(1)
				err := cl.SendAsync(gctx, m, func(r ccs.Response) {
					defer wg.Done()
					switch {
					case r.Err != nil:
						nacks.add("no-answer")
					case !r.OK():
						nacks.add(r.Error)
					default:
						ackLat[i] = time.Since(t0)
						nAcked.Add(1)
					}
				})
				if err != nil {
					wg.Done()
					return fmt.Errorf("sending: %w", err)
				}
			}
			return nil
		})
	}
	err = g.Wait()
	waited := make(chan struct{})
	go func() { wg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-ctx.Done():
		err = errors.Join(err, fmt.Errorf("waiting for answers: %w", ctx.Err()))
	}
	return ackLat, int(nAcked.Load()), err
}

func benchCCS(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench ccs", stderr)
	var tf targetFlags
	tf.add(fs, "ccs", 10*time.Minute)
	conns := fs.Int("conns", 1, "app-server connections")
	window := fs.Int("window", 1000, "window per connection (at most the server's --max-pending)")
	n := fs.Int("messages", 100000, "messages in total, round-robin over the registrations")
	regs := fs.Int("regs", 2000, "registrations to send to (devices checked in and registered over HTTPS)")
	payload := fs.Int("payload", 200, "bytes of padding data per message")
	if pos, err := parseFlags(fs, args); err != nil {
		return err
	} else if len(pos) != 0 || *conns < 1 || *window < 1 || *n < 1 || *regs < 1 {
		return usageError("bench ccs: --conns, --window, --messages and --regs must be at least 1; no positional arguments")
	}
	ctx, cancel := context.WithTimeout(ctx, tf.timeout)
	defer cancel()
	t, err := tf.load()
	if err != nil {
		return err
	}
	devs, err := provision(ctx, t, tf.devicesPath("ccs"), *regs, stderr)
	if err != nil {
		return err
	}
	ids := make([]string, len(devs))
	for i, d := range devs {
		ids[i] = d.RegID
	}
	clients := make([]*ccs.Client, *conns)
	for i := range clients {
		if clients[i], err = t.dialCCS(ctx, ccs.Config{MaxPending: *window}); err != nil {
			return err
		}
		defer clients[i].Close()
	}
	var nacks nackCounts
	meter := startMeter(t.pid)
	start := time.Now()
	lat, acked, err := sendDown(ctx, clients, ids, "c"+randomHex(4), *n, strings.Repeat("x", *payload), &nacks)
	elapsed := time.Since(start)
	fmt.Fprintf(stdout, "ccs: %d messages, %d conns, window %d, %d registrations, %d B padding\n", *n, *conns, *window, *regs, *payload)
	fmt.Fprintf(stdout, "acked %d in %.2fs: %.0f msgs/s\n", acked, elapsed.Seconds(), float64(acked)/elapsed.Seconds())
	printLatency(stdout, "ack", lat)
	nacks.print(stdout)
	meter.report(stdout, acked)
	return err
}

func (f *targetFlags) devicesPath(kind string) string {
	if f.devFile != "" {
		return f.devFile
	}
	return filepath.Join(f.dataDir, "bench-devices-"+kind+".json")
}

// dialDevices logs every device in over MCS with client/device.
func dialDevices(ctx context.Context, t *benchTarget, devs []benchDevice) ([]*device.Conn, error) {
	conns := make([]*device.Conn, len(devs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(32)
	tc := t.tlsFor(t.ep.MCS)
	for i, d := range devs {
		g.Go(func() error {
			c, err := device.Dial(gctx, t.ep.MCS, tc, d.Cred, device.Options{ClientID: "ccsd-bench"})
			conns[i] = c
			return err
		})
	}
	err := g.Wait()
	if err != nil {
		closeDevices(conns)
		return nil, fmt.Errorf("logging devices in: %w", err)
	}
	return conns, nil
}

func closeDevices(conns []*device.Conn) {
	var wg sync.WaitGroup
	for _, c := range conns {
		if c != nil {
			wg.Go(func() { c.Close() })
		}
	}
	wg.Wait()
}

// tally records receipts of a run's messages: latency, first-time count,
// duplicates, and the time of the last one.
type tally struct {
	lat   []time.Duration // written once per index, by the first receiver
	seen  []atomic.Bool
	count atomic.Int64 // distinct messages received
	dups  atomic.Int64
	stale atomic.Int64 // messages of other runs (an earlier backlog)
	last  atomic.Int64 // unix ns of the latest first receipt
	all   chan struct{}
	want  atomic.Int64 // close all when count reaches it
	once  sync.Once
}

func newTally(n int) *tally {
	t := &tally{lat: make([]time.Duration, n), seen: make([]atomic.Bool, n), all: make(chan struct{})}
	t.want.Store(int64(n))
	return t
}

func (t *tally) record(data map[string]string, run string) {
	now := time.Now()
	i, d, ok := stamp(data, run, now)
	if !ok || i < 0 || i >= len(t.seen) {
		t.stale.Add(1)
		return
	}
	if t.seen[i].Swap(true) {
		t.dups.Add(1)
		return
	}
	t.lat[i] = d
	t.last.Store(now.UnixNano())
	t.check(t.count.Add(1))
}

// expect lowers the target to n (messages that were NACKed never arrive).
func (t *tally) expect(n int) {
	t.want.Store(int64(n))
	t.check(t.count.Load())
}

func (t *tally) check(got int64) {
	if got >= t.want.Load() {
		t.once.Do(func() { close(t.all) })
	}
}

func (t *tally) wait(ctx context.Context) error {
	select {
	case <-t.all:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("received %d of %d: %w", t.count.Load(), t.want.Load(), ctx.Err())
	}
}

func benchE2E(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench e2e", stderr)
	var tf targetFlags
	tf.add(fs, "e2e", 10*time.Minute)
	nDev := fs.Int("devices", 100, "connected devices")
	n := fs.Int("messages", 200000, "messages in total")
	window := fs.Int("window", 1000, "app-server window (at most the server's --max-pending)")
	payload := fs.Int("payload", 200, "bytes of padding data per message")
	upstream := fs.Bool("upstream", false, "measure device -> app server instead")
	inflight := fs.Int("inflight", 8, "with --upstream: concurrent unacknowledged sends per device")
	if pos, err := parseFlags(fs, args); err != nil {
		return err
	} else if len(pos) != 0 || *nDev < 1 || *n < 1 || *window < 1 || *inflight < 1 {
		return usageError("bench e2e: --devices, --messages, --window and --inflight must be at least 1; no positional arguments")
	}
	ctx, cancel := context.WithTimeout(ctx, tf.timeout)
	defer cancel()
	t, err := tf.load()
	if err != nil {
		return err
	}
	devs, err := provision(ctx, t, tf.devicesPath("e2e"), *nDev, stderr)
	if err != nil {
		return err
	}
	run := "e" + randomHex(4)
	pad := strings.Repeat("x", *payload)
	tl := newTally(*n)
	cfg := ccs.Config{MaxPending: *window}
	if *upstream {
		cfg.OnUpstream = func(u *ccs.Upstream) error { tl.record(u.Data, run); return nil }
	}
	app, err := t.dialCCS(ctx, cfg)
	if err != nil {
		return err
	}
	defer app.Close()
	conns, err := dialDevices(ctx, t, devs)
	if err != nil {
		return err
	}
	defer closeDevices(conns)
	// Every device reads (and acks) what it gets, in both modes: a Conn
	// whose Next is not called stops reading its socket.
	var readers sync.WaitGroup
	rctx, stopReaders := context.WithCancel(ctx)
	defer func() { stopReaders(); readers.Wait() }()
	for _, c := range conns {
		readers.Go(func() {
			for {
				m, err := c.Next(rctx)
				if err != nil {
					return
				}
				if !*upstream {
					tl.record(m.Data, run)
				}
				if m.PersistentID != "" && c.Ack(m.PersistentID) != nil {
					return
				}
			}
		})
	}
	meter := startMeter(t.pid)
	if *upstream {
		return e2eUp(ctx, stdout, t, devs, conns, tl, run, pad, *n, *inflight, meter)
	}
	regs := make([]string, len(devs))
	for i, d := range devs {
		regs[i] = d.RegID
	}
	var nacks nackCounts
	start := time.Now()
	ackLat, acked, err := sendDown(ctx, []*ccs.Client{app}, regs, run, *n, pad, &nacks)
	sent := time.Since(start)
	tl.expect(acked)
	if werr := tl.wait(ctx); werr != nil {
		err = errors.Join(err, werr)
	}
	got := tl.count.Load()
	recv := time.Duration(tl.last.Load() - start.UnixNano())
	// A ping is answered only after everything sent before it was read:
	// once every device's ping is back, the server has all their acks.
	g, gctx := errgroup.WithContext(ctx)
	for _, c := range conns {
		g.Go(func() error { return c.Ping(gctx) })
	}
	if perr := g.Wait(); perr != nil {
		err = errors.Join(err, fmt.Errorf("final ping: %w", perr))
	}
	ackedAll := time.Since(start)
	fmt.Fprintf(stdout, "e2e downstream: %d messages, %d devices, window %d, %d B padding\n", *n, *nDev, *window, *payload)
	fmt.Fprintf(stdout, "ccs acked %d in %.2fs: %.0f msgs/s\n", acked, sent.Seconds(), float64(acked)/sent.Seconds())
	fmt.Fprintf(stdout, "delivered %d (dups %d, stale %d) in %.2fs: %.0f msgs/s; all device-acked after %.2fs: %.0f msgs/s\n",
		got, tl.dups.Load(), tl.stale.Load(), recv.Seconds(), float64(got)/recv.Seconds(), ackedAll.Seconds(), float64(got)/ackedAll.Seconds())
	printLatency(stdout, "ccs ack", ackLat)
	printLatency(stdout, "send->device", tl.lat)
	nacks.print(stdout)
	meter.report(stdout, int(got))
	return err
}

// e2eUp has the devices send n upstream messages (inflight at a time each)
// and measures device send -> app-server OnUpstream.
func e2eUp(ctx context.Context, stdout io.Writer, t *benchTarget, devs []benchDevice, conns []*device.Conn,
	tl *tally, run, pad string, n, inflight int, meter *serverMeter) error {
	storeLat := make([]time.Duration, n)
	var refused atomic.Int64
	to := t.sender + "@gcm.googleapis.com"
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	stride := len(conns) * inflight
	for d, c := range conns {
		for k := range inflight {
			g.Go(func() error {
				for i := d + k*len(conns); i < n; i += stride {
					t0 := time.Now()
					up := device.Upstream{To: to, MessageID: run + "-" + strconv.Itoa(i), Category: benchApp, RegID: devs[d].RegID,
						Data: map[string]string{"r": run, "i": strconv.Itoa(i), "t": strconv.FormatInt(t0.UnixNano(), 10), "p": pad}}
					if err := c.Send(gctx, up); err != nil {
						var se *device.SendError
						if !errors.As(err, &se) {
							return fmt.Errorf("upstream send: %w", err)
						}
						refused.Add(1)
						continue
					}
					storeLat[i] = time.Since(t0)
				}
				return nil
			})
		}
	}
	err := g.Wait()
	sent := time.Since(start)
	tl.expect(n - int(refused.Load()))
	if werr := tl.wait(ctx); werr != nil {
		err = errors.Join(err, werr)
	}
	got := tl.count.Load()
	recv := time.Duration(tl.last.Load() - start.UnixNano())
	fmt.Fprintf(stdout, "e2e upstream: %d messages, %d devices x %d in flight, %d B padding\n", n, len(conns), inflight, len(pad))
	fmt.Fprintf(stdout, "stored (device acked by server) %d in %.2fs: %.0f msgs/s; refused %d\n", n-int(refused.Load()),
		sent.Seconds(), float64(n)/sent.Seconds(), refused.Load())
	fmt.Fprintf(stdout, "app server got %d (dups %d, stale %d) in %.2fs: %.0f msgs/s\n", got, tl.dups.Load(), tl.stale.Load(),
		recv.Seconds(), float64(got)/recv.Seconds())
	printLatency(stdout, "device send->stored", storeLat)
	printLatency(stdout, "device send->app server", tl.lat)
	meter.report(stdout, int(got))
	return err
}
