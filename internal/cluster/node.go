package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Node is this process's handle on NATS. NC, JS, Name and Replicas are immutable after Start
// or Connect and safe for concurrent use; Close ends them.
type Node struct {
	NC       *nats.Conn          // in-process connection when embedded (nats.InProcessServer)
	JS       jetstream.JetStream // JetStream context on NC
	Name     string              // node identity (the nats server_name when embedded)
	Replicas int                 // stream replicas to use: 1 standalone; min(3, cluster size) clustered

	// Immutable after Start.
	log       *slog.Logger
	srv       *server.Server // nil unless this node runs the embedded server
	lock      *dirLock       // nil unless srv != nil
	infoFile  string         // DataDir/nats.json written by this node; "" when none
	clientURL string         // TCP client URL of the embedded server; "" when none
	closed    chan struct{}  // closed by NC's ClosedHandler

	closeOnce sync.Once
	closeErr  error
}

// Start connects to NATS as cfg says: an embedded server on cfg.DataDir (locked for the life
// of the Node) or, when cfg.URL is set, an external cluster over TCP (credentials go in the
// URL, as in nats://TOKEN@host:4222; JetStream must answer). Clustered embedded
// servers return once the JetStream meta leader is elected; use WaitReady to wait until
// Replicas peers are online. ctx bounds the start only.
func Start(ctx context.Context, cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating data dir: %w", err)
	}
	if cfg.URL != "" {
		return startExternal(ctx, cfg)
	}
	return startEmbedded(ctx, cfg)
}

// startExternal connects over TCP to an external NATS cluster.
func startExternal(ctx context.Context, cfg Config) (*Node, error) {
	name, err := nodeName(cfg)
	if err != nil {
		return nil, err
	}
	n := &Node{Name: name, log: cfg.Logger, closed: make(chan struct{})}
	nc, err := nats.Connect(cfg.URL, n.connOptions(
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.RetryOnFailedConnect(false),
	)...)
	if err != nil {
		return nil, fmt.Errorf("connecting to nats %s: %w", cfg.URL, err)
	}
	if err := n.attach(nc); err != nil {
		return nil, err
	}
	if _, err := n.JS.AccountInfo(ctx); err != nil {
		nc.Close()
		return nil, fmt.Errorf("checking jetstream at %s: %w", cfg.URL, err)
	}
	n.Replicas = cfg.Replicas
	if n.Replicas == 0 {
		// The servers the connection knows of (configured plus gossiped) approximate the size
		// of the cluster; set Config.Replicas when they do not.
		n.Replicas = min(3, max(1, len(nc.Servers())))
	}
	return n, nil
}

// attach sets NC and JS.
func (n *Node) attach(nc *nats.Conn) error {
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return fmt.Errorf("creating jetstream context: %w", err)
	}
	n.NC, n.JS = nc, js
	return nil
}

// connOptions are the options every connection of a Node uses, followed by extra.
func (n *Node) connOptions(extra ...nats.Option) []nats.Option {
	log := n.log
	opts := []nats.Option{
		nats.Name("ccsd " + n.Name),
		nats.ClosedHandler(func(*nats.Conn) { close(n.closed) }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Warn("nats reconnected", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			if sub != nil {
				log.Error("nats async error", "subject", sub.Subject, "err", err)
				return
			}
			log.Error("nats async error", "err", err)
		}),
	}
	return append(opts, extra...)
}

// ClientURL is the TCP URL local tools use to reach the embedded server (with the token in
// DataDir/nats.json); "" when there is no client listener or the server is external.
func (n *Node) ClientURL() string { return n.clientURL }

// Close drains the connection, shuts the embedded server down and waits for it, removes
// nats.json and releases the data dir lock. It is safe to call more than once.
func (n *Node) Close() error {
	n.closeOnce.Do(func() { n.closeErr = n.close() })
	return n.closeErr
}

func (n *Node) close() error {
	var errs []error
	if n.NC != nil {
		if err := n.NC.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			errs = append(errs, fmt.Errorf("draining nats connection: %w", err))
			n.NC.Close()
		}
		// Drain is bounded by the connection's DrainTimeout (30 s by default); the closed
		// handler runs when it completes or times out.
		<-n.closed
	}
	if n.srv != nil {
		n.srv.Shutdown()
		n.srv.WaitForShutdown()
	}
	if n.infoFile != "" {
		if err := os.Remove(n.infoFile); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("removing %s: %w", n.infoFile, err))
		}
	}
	if n.lock != nil {
		if err := n.lock.unlock(); err != nil {
			errs = append(errs, fmt.Errorf("releasing data dir lock: %w", err))
		}
	}
	return errors.Join(errs...)
}
