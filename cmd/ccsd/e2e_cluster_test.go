package main

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ccsd/ccsd/client/ccs"
)

// freePorts reserves n loopback ports by listening and closing (routes
// must be known to every node before any of them starts).
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}

// TestClusterThreeNodes: three ccsd processes form one NATS cluster (R3
// streams). A device registered through node 1 and connected to node 3
// gets what an app server sends through node 2, live and from the store,
// and its upstream message reaches the app server on node 2.
func TestClusterThreeNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ports := freePorts(t, 3)
	var routes []string
	for _, p := range ports {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
	}
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	nodes := make([]*server, 3)
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Add(1)
		go func() { // nodes must start together: JetStream needs a quorum
			defer wg.Done()
			nodes[i] = startServer(t, dirs[i], "--cluster-listen", fmt.Sprintf("127.0.0.1:%d", ports[i]),
				"--routes", strings.Join(routes, ","), "--node-name", fmt.Sprint("n", i+1))
		}()
	}
	wg.Wait()
	for _, n := range nodes {
		if n == nil {
			t.FailNow()
		}
	}
	// All nodes share one store: the development sender whichever node
	// created it works everywhere.
	var sender devSender
	for _, n := range nodes {
		if n.dev.APIKey != "" {
			sender = n.dev
		}
	}
	if sender.APIKey == "" {
		t.Fatal("no node created a development sender")
	}
	state := filepath.Join(dirs[0], "phone.json")
	reg := e2eRegister(t, dirs[0], state, sender.SenderID)

	upstream := make(chan *ccs.Upstream, 1)
	app := nodes[1].dial(ctx, ccs.Config{SenderID: sender.SenderID, APIKey: sender.APIKey,
		OnUpstream: func(u *ccs.Upstream) error { upstream <- u; return nil }})
	// Stored while the device is offline.
	if r, err := app.Send(ctx, &ccs.Message{To: reg, MessageID: "c-1", Data: map[string]string{"n": "1"}}); err != nil || !r.OK() {
		t.Fatalf("send through node 2: %+v, %v", r, err)
	}
	// The device logs in on node 3 (its state file names node 1's endpoints:
	// point it at node 3's MCS address by listening with node 3's data dir).
	got := e2eListen(t, dirs[2], state, 1)
	if len(got) != 1 || got[0].Data["n"] != "1" {
		t.Fatalf("device on node 3 got %+v, want message 1", got)
	}
	out, err := runCLI(t, "device", "send", "--data-dir", dirs[2], "--state", state, "--to", sender.SenderID,
		"--json", `{"data":{"from":"node3"}}`, "--message-id", "c-up")
	if err != nil || !strings.Contains(out, "stored") {
		t.Fatalf("upstream through node 3: %q, %v", out, err)
	}
	select {
	case u := <-upstream:
		if u.MessageID != "c-up" || u.From != reg {
			t.Errorf("upstream = %+v", u)
		}
	case <-ctx.Done():
		t.Fatal("upstream from node 3 never reached the app server on node 2")
	}
	for _, n := range nodes {
		_ = n.term()
	}
}
