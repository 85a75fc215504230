// Package cluster provides ccsd's NATS connection: an embedded, in-process nats-server with
// JetStream (standalone or routed to peer ccsd nodes) or a connection to an external NATS
// cluster, together with the node's identity and the stream replica count to use.
//
// Durability of the embedded server's file store: with the default SyncInterval (nats' two
// minutes) a message acknowledged by JetStream has been written to the page cache, so it
// survives a crash of the ccsd process (kill -9) but not a power loss or kernel crash within
// the interval. SyncAlways fsyncs every write (about 5k msg/s on the measured disk, see
// /work/shared/measured/jetstream.md); a short SyncInterval bounds the loss window instead.
// Surviving power loss without SyncAlways needs R3 streams on a three-node cluster.
package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"
)

// Defaults applied by Start when the corresponding Config field is zero.
const (
	DefaultClientListen = "127.0.0.1:0"
	DefaultClusterName  = "ccsd"
	// DefaultMaxMemoryStore is the JetStream memory-storage limit of the embedded server. ccsd
	// keeps its streams on file storage; memory storage is only for small, rebuildable state.
	DefaultMaxMemoryStore = 256 << 20
	// MaxPayload is the largest NATS message the embedded server accepts (the nats-server
	// warning threshold; GCM payloads are at most 4 KiB, batches of them are larger).
	MaxPayload = 8 << 20
	// ClientListenOff disables the embedded server's TCP client listener.
	ClientListenOff = "off"
)

// Config says how a node reaches NATS. The zero value with only DataDir set starts a
// standalone embedded server with a loopback client listener on a random port.
type Config struct {
	// DataDir holds the node identity (node-id), the lock (LOCK), the client credentials of a
	// running embedded server (nats.json) and the JetStream store (jetstream/). Required.
	DataDir string
	// URL is a comma-separated list of external NATS server URLs. Empty starts an embedded
	// server. When set, ClientListen, ClusterListen, Routes and the sync options are unused.
	URL string
	// ClientListen is the embedded server's TCP client listener (host:port) for local tools
	// such as the CLI; "" means DefaultClientListen and "off" (ClientListenOff) disables it.
	// Port 0 picks a free port. Clients authenticate with the token in DataDir/nats.json.
	ClientListen string
	// ClusterListen is the embedded server's route listener (host:port) for peer ccsd nodes.
	// Empty runs a standalone server. Routes are not authenticated: bind it to a private
	// network.
	ClusterListen string
	// Routes are the peer route URLs (nats-route://host:port). They may include this node's
	// own address; nats-server ignores routes to itself, and giving every node the same list
	// is the usual setup.
	Routes []string
	// ClusterName is the NATS cluster name; "" means DefaultClusterName.
	ClusterName string
	// NodeName is the node identity (the nats server_name). "" means a stable random id
	// created on first start and kept in DataDir/node-id. It must not change while the
	// JetStream store is in use by a cluster.
	NodeName string
	// SyncInterval is how often JetStream fsyncs its files; 0 means the nats default (two
	// minutes). See the package documentation for what survives kill -9 and power loss.
	SyncInterval time.Duration
	// SyncAlways fsyncs every JetStream write (slow: one fsync per message).
	SyncAlways bool
	// MaxMemoryStore limits JetStream memory storage in bytes; 0 means DefaultMaxMemoryStore.
	MaxMemoryStore int64
	// MaxFileStore limits JetStream file storage in bytes; 0 means the nats default (75% of
	// the free disk space at start).
	MaxFileStore int64
	// Replicas overrides the stream replica count Node.Replicas reports; 0 derives it (1
	// standalone, min(3, cluster size) clustered).
	Replicas int
	// Logger receives the node's and nats-server's warnings and errors; nil discards them.
	Logger *slog.Logger
}

// Validate reports the first problem with c.
func (c Config) Validate() error {
	if c.DataDir == "" {
		return errors.New("cluster: data dir is required")
	}
	if c.SyncInterval < 0 {
		return fmt.Errorf("cluster: negative sync interval %v", c.SyncInterval)
	}
	if c.MaxMemoryStore < 0 || c.MaxFileStore < 0 {
		return errors.New("cluster: negative jetstream storage limit")
	}
	if c.Replicas < 0 || c.Replicas > 5 {
		return fmt.Errorf("cluster: replicas %d out of range 0..5", c.Replicas)
	}
	if strings.ContainsAny(c.NodeName, " \t\r\n.*>") {
		return fmt.Errorf("cluster: node name %q contains a space or one of . * >", c.NodeName)
	}
	if strings.ContainsAny(c.ClusterName, " \t\r\n.*>") {
		return fmt.Errorf("cluster: cluster name %q contains a space or one of . * >", c.ClusterName)
	}
	if c.URL != "" {
		if c.ClusterListen != "" || len(c.Routes) > 0 {
			return errors.New("cluster: cluster listen and routes apply only to the embedded server, not with an external url")
		}
		for _, u := range strings.Split(c.URL, ",") {
			if _, err := url.Parse(strings.TrimSpace(u)); err != nil || strings.TrimSpace(u) == "" {
				return fmt.Errorf("cluster: bad nats url %q", u)
			}
		}
		return nil
	}
	if c.ClientListen != "" && c.ClientListen != ClientListenOff {
		if _, _, err := splitHostPort(c.ClientListen); err != nil {
			return fmt.Errorf("cluster: client listen: %w", err)
		}
	}
	if c.ClusterListen == "" {
		if len(c.Routes) > 0 {
			return errors.New("cluster: routes need a cluster listen address")
		}
		return nil
	}
	if _, _, err := splitHostPort(c.ClusterListen); err != nil {
		return fmt.Errorf("cluster: cluster listen: %w", err)
	}
	for _, r := range c.Routes {
		u, err := url.Parse(r)
		if err != nil {
			return fmt.Errorf("cluster: route %q: %w", r, err)
		}
		if u.Scheme != "nats-route" && u.Scheme != "nats" {
			return fmt.Errorf("cluster: route %q: scheme must be nats-route", r)
		}
		if _, _, err := splitHostPort(u.Host); err != nil {
			return fmt.Errorf("cluster: route %q: %w", r, err)
		}
	}
	return nil
}

// withDefaults returns c with the documented defaults filled in.
func (c Config) withDefaults() Config {
	if c.ClientListen == "" {
		c.ClientListen = DefaultClientListen
	}
	if c.ClusterName == "" {
		c.ClusterName = DefaultClusterName
	}
	if c.MaxMemoryStore == 0 {
		c.MaxMemoryStore = DefaultMaxMemoryStore
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// splitHostPort parses host:port with a numeric port in 0..65535.
func splitHostPort(hp string) (string, int, error) {
	host, ps, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, err
	}
	p, err := net.LookupPort("tcp", ps)
	if err != nil {
		return "", 0, fmt.Errorf("bad port in %q", hp)
	}
	return host, p, nil
}
