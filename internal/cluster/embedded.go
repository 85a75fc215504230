package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// startEmbedded locks cfg.DataDir and runs nats-server in this process.
func startEmbedded(ctx context.Context, cfg Config) (n *Node, err error) {
	lock, err := lockDir(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			lock.unlock()
		}
	}()
	infoFile := filepath.Join(cfg.DataDir, infoFileName)
	// A nats.json left by a serve that was killed is stale: we hold the lock now.
	if err := os.Remove(infoFile); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("removing stale %s: %w", infoFile, err)
	}
	name, err := nodeName(cfg)
	if err != nil {
		return nil, err
	}
	token, err := randomHex(24)
	if err != nil {
		return nil, err
	}
	opts, err := serverOptions(cfg, name, token)
	if err != nil {
		return nil, err
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("creating nats server: %w", err)
	}
	srv.SetLoggerV2(&natsLogger{log: cfg.Logger.With("component", "nats")}, false, false, false)
	srv.Start()
	defer func() {
		if err != nil {
			srv.Shutdown()
			srv.WaitForShutdown()
		}
	}()
	if !srv.ReadyForConnections(readyTimeout(ctx)) {
		return nil, errors.New("embedded nats server did not become ready")
	}

	n = &Node{Name: name, log: cfg.Logger, srv: srv, lock: lock, closed: make(chan struct{})}
	nc, err := nats.Connect("", n.connOptions(
		nats.InProcessServer(srv),
		nats.Token(token),
		// The in-process pipe breaks only when the server closes this client (a slow
		// consumer, say); reconnect at once, forever, until Close.
		nats.MaxReconnects(-1),
		nats.ReconnectWait(10*time.Millisecond),
		nats.ReconnectJitter(0, 0),
	)...)
	if err != nil {
		return nil, fmt.Errorf("connecting to embedded nats: %w", err)
	}
	if err := n.attach(nc); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			nc.Close()
		}
	}()

	n.Replicas = 1
	if cfg.ClusterListen != "" {
		n.Replicas = min(3, clusterSize(cfg, srv))
		if err := waitMetaLeader(ctx, srv); err != nil {
			return nil, err
		}
	}
	if cfg.Replicas != 0 {
		n.Replicas = cfg.Replicas
	}

	if cfg.ClientListen != ClientListenOff {
		addr, ok := srv.Addr().(*net.TCPAddr)
		if !ok {
			return nil, errors.New("embedded nats server has no client listener")
		}
		host := addr.IP
		if host.IsUnspecified() {
			host = net.IPv4(127, 0, 0, 1)
		}
		n.clientURL = "nats://" + net.JoinHostPort(host.String(), strconv.Itoa(addr.Port))
		info := connInfo{URL: n.clientURL, Token: token, Name: name, Replicas: n.Replicas}
		if err := writeConnInfo(infoFile, info); err != nil {
			return nil, err
		}
		n.infoFile = infoFile
	}
	return n, nil
}

// serverOptions maps cfg onto nats-server options.
func serverOptions(cfg Config, name, token string) (*server.Options, error) {
	opts := &server.Options{
		ServerName:         name,
		JetStream:          true,
		StoreDir:           filepath.Join(cfg.DataDir, "jetstream"),
		JetStreamMaxMemory: cfg.MaxMemoryStore,
		JetStreamMaxStore:  cfg.MaxFileStore,
		SyncInterval:       cfg.SyncInterval,
		SyncAlways:         cfg.SyncAlways,
		NoSigs:             true,
		MaxPayload:         MaxPayload,
		MaxPending:         256 << 20,
		Authorization:      token,
		// No HTTP monitoring, no leaf nodes, no gateways: ccsd exposes its own metrics.
	}
	if opts.JetStreamMaxStore == 0 {
		opts.JetStreamMaxStore = -1 // nats computes it from the free disk space
	}
	if cfg.ClientListen == ClientListenOff {
		opts.DontListen = true
	} else {
		host, port, err := splitHostPort(cfg.ClientListen)
		if err != nil {
			return nil, fmt.Errorf("client listen: %w", err)
		}
		opts.Host, opts.Port = host, port
		if port == 0 {
			opts.Port = server.RANDOM_PORT
		}
	}
	if cfg.ClusterListen != "" {
		host, port, err := splitHostPort(cfg.ClusterListen)
		if err != nil {
			return nil, fmt.Errorf("cluster listen: %w", err)
		}
		opts.Cluster.Name = cfg.ClusterName
		opts.Cluster.Host, opts.Cluster.Port = host, port
		if port == 0 {
			opts.Cluster.Port = server.RANDOM_PORT
		}
		for _, r := range cfg.Routes {
			u, err := url.Parse(r)
			if err != nil {
				return nil, fmt.Errorf("route %q: %w", r, err)
			}
			opts.Routes = append(opts.Routes, u)
		}
	}
	return opts, nil
}

// clusterSize is this node plus the distinct configured routes that do not point at it.
func clusterSize(cfg Config, srv *server.Server) int {
	self := map[string]bool{cfg.ClusterListen: true}
	if a := srv.ClusterAddr(); a != nil {
		self[a.String()] = true
	}
	peers := map[string]bool{}
	for _, r := range cfg.Routes {
		u, err := url.Parse(r)
		if err != nil || self[u.Host] {
			continue
		}
		peers[u.Host] = true
	}
	return 1 + len(peers)
}

// readyTimeout is how long to wait for the server's listeners: until ctx's deadline, or a
// minute (JetStream recovers large stores before it listens).
func readyTimeout(ctx context.Context) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		return max(time.Until(d), time.Millisecond)
	}
	return time.Minute
}

// waitMetaLeader polls the server until its JetStream meta group has a leader. nats-server
// has no notification for this, so a short ticker it is; ctx bounds the wait.
func waitMetaLeader(ctx context.Context, srv *server.Server) error {
	return poll(ctx, func() bool {
		info, err := srv.Jsz(nil)
		return err == nil && info.Meta != nil && info.Meta.Leader != ""
	}, "waiting for the jetstream meta leader")
}

// onlinePeers is the number of JetStream meta-group members (this server included) that the
// server currently sees online; 1 for a standalone server.
func onlinePeers(srv *server.Server) int {
	info, err := srv.Jsz(nil)
	if err != nil || info.Meta == nil {
		if srv.JetStreamEnabled() && !srv.JetStreamIsClustered() {
			return 1
		}
		return 0
	}
	if info.Meta.Leader == "" {
		return 0
	}
	n := 1
	for _, p := range info.Meta.Replicas {
		if !p.Offline {
			n++
		}
	}
	return n
}

// WaitReady waits until JetStream can place a stream with n.Replicas replicas: for a
// clustered embedded server, until the meta leader knows that many online peers. It returns
// at once for a standalone server, an external cluster or a TCP connection to another
// process's server.
func (n *Node) WaitReady(ctx context.Context) error {
	if n.srv == nil || !n.srv.JetStreamIsClustered() {
		return nil
	}
	return poll(ctx, func() bool { return onlinePeers(n.srv) >= n.Replicas },
		fmt.Sprintf("waiting for %d jetstream peers", n.Replicas))
}

// poll calls ok every 20 ms until it returns true or ctx ends.
func poll(ctx context.Context, ok func() bool, what string) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for !ok() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", what, ctx.Err())
		case <-t.C:
		}
	}
	return nil
}

// natsLogger routes nats-server logs to slog: notices at debug, warnings and errors as such.
// Debug and trace logging stay off in the server.
type natsLogger struct{ log *slog.Logger }

func (l *natsLogger) Noticef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *natsLogger) Warnf(format string, v ...any)   { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l *natsLogger) Errorf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l *natsLogger) Fatalf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l *natsLogger) Debugf(format string, v ...any)  {}
func (l *natsLogger) Tracef(format string, v ...any)  {}
