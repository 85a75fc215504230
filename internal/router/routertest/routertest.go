// Package routertest starts a real router over a real embedded JetStream
// in a test's temp dir, for the tests of the packages built on the router
// (device endpoints, SDKs, the CLI). Nothing in it is faked.
package routertest

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/ccsd/ccsd/internal/cluster"
	"github.com/ccsd/ccsd/internal/metrics"
	"github.com/ccsd/ccsd/internal/queue"
	"github.com/ccsd/ccsd/internal/router"
)

// Start runs an embedded JetStream under dir (t.TempDir() when empty), opens
// the queue with qcfg and a router with cfg (their Queue, Logger and Metrics
// are filled in when unset), and runs the router until the test ends.
func Start(t testing.TB, dir string, cfg router.Config, qcfg queue.Config) (*queue.Queue, *router.Router) {
	t.Helper()
	ctx := context.Background()
	if dir == "" {
		dir = t.TempDir()
	}
	node, err := cluster.Start(ctx, cluster.Config{DataDir: dir, ClientListen: cluster.ClientListenOff})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { node.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if qcfg.Metrics == nil {
		qcfg.Metrics = cfg.Metrics
	}
	if qcfg.Metrics == nil {
		qcfg.Metrics = metrics.New()
	}
	if qcfg.Logger == nil {
		qcfg.Logger = log
	}
	q, err := queue.Open(ctx, node, qcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(q.Close)
	cfg.Queue = q
	if cfg.Metrics == nil {
		cfg.Metrics = qcfg.Metrics
	}
	if cfg.Logger == nil {
		cfg.Logger = log
	}
	rt, err := router.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = rt.Run(runCtx) }()
	t.Cleanup(func() { cancel(); <-done })
	return q, rt
}
