package cluster

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
)

// freePorts reserves n loopback ports by listening on 127.0.0.1:0, then releases them for
// the servers to bind. Routes must be known before the servers start, so the ports are
// chosen up front; another process could take one in between, which would fail the test
// loudly (bind error), not silently.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ls []net.Listener
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

func TestThreeNodeCluster(t *testing.T) {
	// A budget, not an assertion: three JetStream servers electing a meta
	// leader on two shared cores under -race have taken more than a minute.
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	ports := freePorts(t, 3)
	var routes []string
	for _, p := range ports {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
	}
	nodes := make([]*Node, 3)
	var g errgroup.Group
	for i := range nodes {
		cfg := Config{
			DataDir:       t.TempDir(),
			ClusterListen: fmt.Sprintf("127.0.0.1:%d", ports[i]),
			Routes:        routes, // the same list on every node, this node's own route included
			NodeName:      fmt.Sprintf("n%d", i),
			Logger:        testLogger(t),
		}
		// Start returns only when the meta leader is elected, which needs a quorum, so the
		// nodes must start together.
		g.Go(func() error {
			n, err := Start(ctx, cfg)
			nodes[i] = n
			return err
		})
	}
	err := g.Wait()
	for _, n := range nodes {
		if n != nil {
			t.Cleanup(func() { n.Close() })
		}
	}
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	for i, n := range nodes {
		if n.Replicas != 3 {
			t.Errorf("node %d Replicas = %d, want 3", i, n.Replicas)
		}
		if err := n.WaitReady(ctx); err != nil {
			t.Fatalf("node %d WaitReady: %v", i, err)
		}
	}

	s := createStream(t, ctx, nodes[0].JS, nodes[0].Replicas)
	if got := len(s.CachedInfo().Cluster.Replicas) + 1; got != 3 {
		t.Errorf("stream has %d replicas, want 3", got)
	}
	if _, err := nodes[0].JS.Publish(ctx, "t.x", []byte("replicated")); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	for i, n := range nodes[1:] {
		s, err := n.JS.Stream(ctx, "T")
		if err != nil {
			t.Fatalf("node %d Stream: %v", i+1, err)
		}
		m, err := s.GetMsg(ctx, 1)
		if err != nil {
			t.Fatalf("node %d GetMsg: %v", i+1, err)
		}
		if got, want := string(m.Data), "replicated"; got != want {
			t.Errorf("node %d read %q, want %q", i+1, got, want)
		}
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string // substring of the error; "" for valid
	}{
		{"minimal", Config{DataDir: "d"}, ""},
		{"no data dir", Config{}, "data dir is required"},
		{"client off", Config{DataDir: "d", ClientListen: "off"}, ""},
		{"bad client listen", Config{DataDir: "d", ClientListen: "localhost"}, "client listen"},
		{"clustered", Config{DataDir: "d", ClusterListen: "127.0.0.1:6222", Routes: []string{"nats-route://127.0.0.1:6223"}}, ""},
		{"routes without listen", Config{DataDir: "d", Routes: []string{"nats-route://127.0.0.1:6223"}}, "need a cluster listen"},
		{"bad route scheme", Config{DataDir: "d", ClusterListen: "127.0.0.1:6222", Routes: []string{"http://127.0.0.1:6223"}}, "scheme"},
		{"route without port", Config{DataDir: "d", ClusterListen: "127.0.0.1:6222", Routes: []string{"nats-route://host"}}, "route"},
		{"external", Config{DataDir: "d", URL: "nats://a:4222,nats://b:4222"}, ""},
		{"external with routes", Config{DataDir: "d", URL: "nats://a:4222", ClusterListen: "127.0.0.1:6222"}, "external url"},
		{"negative sync", Config{DataDir: "d", SyncInterval: -time.Second}, "negative sync"},
		{"node name with dot", Config{DataDir: "d", NodeName: "a.b"}, "node name"},
		{"cluster name with space", Config{DataDir: "d", ClusterName: "a b"}, "cluster name"},
		{"replicas", Config{DataDir: "d", Replicas: 7}, "replicas"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Validate() = %v, want error containing %q", err, tt.want)
			}
		})
	}
}
