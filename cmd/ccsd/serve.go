package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ccsd/ccsd/internal/certs"
	"github.com/ccsd/ccsd/internal/cluster"
	"github.com/ccsd/ccsd/internal/deviceserver"
	"github.com/ccsd/ccsd/internal/httpapi"
	"github.com/ccsd/ccsd/internal/metrics"
	"github.com/ccsd/ccsd/internal/queue"
	"github.com/ccsd/ccsd/internal/router"
	"github.com/ccsd/ccsd/internal/xmppserver"
)

// serveConfig is everything `ccsd serve` takes from its flags.
type serveConfig struct {
	dataDir       string
	ccsAddr       string
	httpAddr      string
	mcsAddr       string
	deviceAddr    string
	maxPending    int
	maxConns      int
	deviceRate    float64
	deviceBurst   int
	logLevel      string
	natsURL       string
	clusterListen string
	routes        string
	nodeName      string
	drainTimeout  time.Duration
}

func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c serveConfig
	fs := newFlags("serve", stderr)
	fs.StringVar(&c.dataDir, "data-dir", "./ccsd-data", "directory for the JetStream store, certificates and state")
	fs.StringVar(&c.ccsAddr, "ccs-addr", "127.0.0.1:5235", "CCS (XMPP over TLS) listen address for app servers")
	fs.StringVar(&c.httpAddr, "http-addr", "127.0.0.1:8080", "HTTP listen address (metrics, health)")
	fs.StringVar(&c.mcsAddr, "mcs-addr", "127.0.0.1:5228", "MCS (device protocol over TLS) listen address")
	fs.StringVar(&c.deviceAddr, "device-addr", "127.0.0.1:8443", "HTTPS listen address for device check-in and registration")
	fs.IntVar(&c.maxPending, "max-pending", 1000, "per-connection window of unanswered messages, each way")
	fs.IntVar(&c.maxConns, "max-conns-per-sender", 1000, "most CCS connections one sender may hold")
	fs.Float64Var(&c.deviceRate, "device-rate", 100, "sustained messages/s one registration may receive before DEVICE_MESSAGE_RATE_EXCEEDED (negative: no limit)")
	fs.IntVar(&c.deviceBurst, "device-burst", 1000, "messages above --device-rate one registration may take at once")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&c.natsURL, "nats-url", "", "external NATS cluster URL; empty runs an embedded JetStream server")
	fs.StringVar(&c.clusterListen, "cluster-listen", "", "embedded NATS route listener for peer ccsd nodes (HOST:PORT); empty runs standalone")
	fs.StringVar(&c.routes, "routes", "", "comma-separated peer routes, e.g. nats-route://127.0.0.1:6222 (with --cluster-listen)")
	fs.StringVar(&c.nodeName, "node-name", "", "node name in the cluster (default: a stable random id kept in the data dir)")
	fs.DurationVar(&c.drainTimeout, "drain-timeout", 30*time.Second, "how long draining connections may take before they are closed")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if c.maxPending < 1 {
		return usageError("--max-pending must be at least 1")
	}
	log, err := newLogger(stderr, c.logLevel)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return serve(ctx, c, log, stdout)
}

// endpoints is DIR/endpoints.json, written once the server is ready.
type endpoints struct {
	CCS    string `json:"ccs"`
	HTTP   string `json:"http"`
	MCS    string `json:"mcs"`
	Device string `json:"device"`
	CAFile string `json:"ca_file"`
	Node   string `json:"node"`
}

// serve runs the server until ctx ends (SIGTERM) or a drain is requested,
// then drains and shuts down in order.
func serve(ctx context.Context, c serveConfig, log *slog.Logger, stdout io.Writer) error {
	if err := os.MkdirAll(c.dataDir, 0o700); err != nil {
		return fmt.Errorf("creating data dir: %w", err)
	}
	var routes []string
	if c.routes != "" {
		routes = strings.Split(c.routes, ",")
	}
	node, err := cluster.Start(ctx, cluster.Config{DataDir: c.dataDir, URL: c.natsURL, ClusterListen: c.clusterListen,
		Routes: routes, NodeName: c.nodeName, Logger: log})
	if err != nil {
		return fmt.Errorf("starting nats: %w", err)
	}
	defer node.Close()
	// The data dir is ours from here on (the embedded server holds its lock):
	// only now may files a running server relies on be replaced.
	_ = os.Remove(filepath.Join(c.dataDir, "endpoints.json"))
	pidFile := filepath.Join(c.dataDir, "ccsd.pid")
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", pidFile, err)
	}
	defer os.Remove(pidFile)
	bundle, err := certs.Ensure(filepath.Join(c.dataDir, "tls"))
	if err != nil {
		return fmt.Errorf("preparing certificates: %w", err)
	}
	if c.clusterListen != "" {
		// Replicated streams need their peers online.
		wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		err := node.WaitReady(wctx)
		cancel()
		if err != nil {
			return fmt.Errorf("waiting for cluster peers: %w", err)
		}
	}
	met := metrics.New()
	standalone := c.natsURL == "" && c.clusterListen == ""
	q, err := queue.Open(ctx, node, queue.Config{Logger: log, Metrics: met, LocalPresence: standalone})
	if err != nil {
		return err
	}
	rt, err := router.New(router.Config{Queue: q, DeviceRate: c.deviceRate, DeviceBurst: c.deviceBurst, Logger: log, Metrics: met})
	if err != nil {
		return err
	}
	dev, err := ensureDevSender(ctx, q, c.dataDir)
	if err != nil {
		return err
	}

	// Everything below runs until shutdown; each goroutine is waited for.
	runCtx, cancelRun := context.WithCancel(context.Background())
	defer cancelRun()
	routerDone := make(chan error, 1)
	go func() { routerDone <- rt.Run(runCtx) }()

	ccs, err := xmppserver.New(xmppserver.Config{
		TLSConfig:         bundle.ServerTLS(),
		MaxPending:        c.maxPending,
		MaxConnsPerSender: c.maxConns,
		DrainTimeout:      c.drainTimeout,
		Logger:            log.With("component", "ccs"),
		Metrics:           met,
		Backend:           rt,
	})
	if err != nil {
		return err
	}
	rt.OnRevoke(ccs.CloseSender)
	ccsLn, err := net.Listen("tcp", c.ccsAddr)
	if err != nil {
		return fmt.Errorf("listening for CCS: %w", err)
	}
	ccsDone := make(chan error, 1)
	go func() { ccsDone <- ccs.Serve(ccsLn) }()

	// Device side: MCS over TLS, and the HTTPS check-in and registration routes.
	mcs, err := deviceserver.New(deviceserver.Config{
		TLSConfig: bundle.ServerTLS(),
		Backend:   rt,
		Logger:    log.With("component", "mcs"),
		Metrics:   met,
	})
	if err != nil {
		ccs.Close()
		return err
	}
	mcsLn, err := net.Listen("tcp", c.mcsAddr)
	if err != nil {
		ccs.Close()
		return fmt.Errorf("listening for MCS: %w", err)
	}
	mcsDone := make(chan error, 1)
	go func() { mcsDone <- mcs.Serve(mcsLn) }()
	devLn, err := net.Listen("tcp", c.deviceAddr)
	if err != nil {
		ccs.Close()
		mcs.Close()
		return fmt.Errorf("listening for device HTTPS: %w", err)
	}
	devHS := &http.Server{Handler: httpapi.DeviceHandler(rt, log.With("component", "device-http"), met),
		TLSConfig: bundle.ServerTLS(), ReadHeaderTimeout: 10 * time.Second}
	devDone := make(chan error, 1)
	go func() { devDone <- devHS.ServeTLS(devLn, "", "") }()

	httpLn, err := net.Listen("tcp", c.httpAddr)
	if err != nil {
		ccs.Close()
		return fmt.Errorf("listening for HTTP: %w", err)
	}
	hs := &http.Server{Handler: httpMux(q, met), ReadHeaderTimeout: 10 * time.Second}
	httpDone := make(chan error, 1)
	go func() { httpDone <- hs.Serve(httpLn) }()

	drainReq := make(chan struct{}, 1)
	sub, err := node.NC.Subscribe(drainSubject(node.Name), func(m *nats.Msg) {
		select {
		case drainReq <- struct{}{}:
		default:
		}
		_ = m.Respond([]byte("draining"))
	})
	if err != nil {
		return fmt.Errorf("subscribing to drain requests: %w", err)
	}
	defer sub.Unsubscribe()

	ep := endpoints{CCS: ccsLn.Addr().String(), HTTP: httpLn.Addr().String(), MCS: mcsLn.Addr().String(),
		Device: devLn.Addr().String(), CAFile: bundle.CAFile, Node: node.Name}
	if err := writeJSONFile(filepath.Join(c.dataDir, "endpoints.json"), ep); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "ccsd %s ready\n  CCS (XMPP/TLS): %s\n  HTTP:           http://%s (metrics at /metrics)\n  MCS (devices):  %s\n  device HTTPS:   https://%s (/checkin, /c2dm/register3)\n  CA file:        %s\n  data dir:       %s\n  dev sender id:  %s\n  dev API key:    %s\n",
		version, ep.CCS, ep.HTTP, ep.MCS, ep.Device, ep.CAFile, c.dataDir, dev.SenderID, dev.APIKey)
	log.Info("ready", "ccs", ep.CCS, "http", ep.HTTP, "node", node.Name)

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("signal received: draining")
	case <-drainReq:
		log.Info("drain requested: draining")
	case err := <-ccsDone:
		runErr = fmt.Errorf("ccs listener: %w", err)
	case err := <-httpDone:
		runErr = fmt.Errorf("http listener: %w", err)
	case err := <-mcsDone:
		runErr = fmt.Errorf("mcs listener: %w", err)
	case err := <-devDone:
		runErr = fmt.Errorf("device https listener: %w", err)
	case err := <-routerDone:
		runErr = fmt.Errorf("router: %w", err)
	}

	// Shutdown in order: stop taking app-server traffic and answer what is
	// pending, then stop HTTP, flush the store and stop NATS (deferred).
	_ = os.Remove(filepath.Join(c.dataDir, "endpoints.json"))
	dctx, cancel := context.WithTimeout(context.Background(), c.drainTimeout+5*time.Second)
	if err := ccs.Drain(dctx); err != nil {
		log.Warn("drain ended early", "err", err)
	}
	cancel()
	ccs.Close()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	if err := mcs.Shutdown(sctx); err != nil {
		log.Warn("device shutdown ended early", "err", err)
	}
	_ = devHS.Shutdown(sctx)
	_ = hs.Shutdown(sctx)
	_ = q.Flush(sctx)
	cancel()
	q.Close()
	cancelRun()
	<-routerDone
	log.Info("stopped")
	return runErr
}

// httpMux serves metrics and health.
func httpMux(q *queue.Queue, met *metrics.Metrics) *http.ServeMux {
	mux := http.NewServeMux()
	mh := met.Handler()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		if down, up, err := q.Depth(ctx); err == nil {
			met.QueueDepth.WithLabelValues("down").Set(float64(down))
			met.QueueDepth.WithLabelValues("up").Set(float64(up))
		}
		cancel()
		mh.ServeHTTP(w, r)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})
	return mux
}

var _ xmppserver.Backend = (*router.Router)(nil)

// devSender is DIR/dev-sender.json: the development sender created on first
// start, kept so that later starts (and `ccsd send`) can use its key.
type devSender struct {
	SenderID string `json:"sender_id"`
	APIKey   string `json:"api_key"`
}

// ensureDevSender creates the development sender when the store has no
// sender at all, and returns the recorded one.
func ensureDevSender(ctx context.Context, q *queue.Queue, dir string) (devSender, error) {
	path := filepath.Join(dir, "dev-sender.json")
	var d devSender
	if b, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(b, &d); err != nil {
			return d, fmt.Errorf("reading %s: %w", path, err)
		}
		return d, nil
	}
	list, err := q.Senders(ctx)
	if err != nil {
		return d, err
	}
	if len(list) > 0 {
		return devSender{SenderID: "(none: senders exist)", APIKey: "(see ccsd sender create)"}, nil
	}
	s, key, err := q.CreateSender(ctx, "development")
	if err != nil {
		return d, err
	}
	d = devSender{SenderID: s.ID, APIKey: string(key)}
	return d, writeJSONFile(path, d)
}

// writeJSONFile writes v as JSON to path atomically, readable only by us.
func writeJSONFile(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

func drainSubject(node string) string { return "ccsd.admin." + node + ".drain" }
