package deviceserver

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ccsd/ccsd/internal/mcs"
	"github.com/ccsd/ccsd/internal/mcs/mcspb"
	"github.com/ccsd/ccsd/internal/queue"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"no backend", Config{}, false},
		{"zero values", Config{Backend: &gatedBackend{}}, true},
		{"negative window", Config{Backend: &gatedBackend{}, MaxInFlight: -1}, false},
		{"negative timeout", Config{Backend: &gatedBackend{}, WriteTimeout: -time.Second}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.cfg.Validate(); (err == nil) != tt.ok {
				t.Errorf("Validate() = %v, want ok %v", err, tt.ok)
			}
		})
	}
}

func TestShutdownSendsClose(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	a := f.login()
	// A second device.
	d, tok, err := f.q.Checkin(context.Background(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := f.dial()
	b.loginWith(mcs.LoginRequest("android-30", d.AndroidID, tok, nil))
	if n := f.srv.Conns(); n != 2 {
		t.Errorf("Conns() = %d, want 2", n)
	}
	if err := f.srv.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	a.expectClose()
	b.expectClose()
	if err := <-f.serveCh; !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve returned %v, want ErrServerClosed", err)
	}
	if n := f.srv.running.Load(); n != 0 {
		t.Errorf("%d goroutines running after Shutdown", n)
	}
	if n := f.srv.Conns(); n != 0 {
		t.Errorf("Conns() = %d after Shutdown", n)
	}
}

// TestShutdownDeadline: a device that does not read cannot hold Shutdown
// past its context.
func TestShutdownDeadline(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	f.login()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := f.srv.Shutdown(ctx); err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("Shutdown: %v", err)
	}
	if n := f.srv.running.Load(); n != 0 {
		t.Errorf("%d goroutines running after Shutdown", n)
	}
}

func TestServerPing(t *testing.T) {
	f := newFixture(t, fixtureOpts{cfg: Config{HeartbeatInterval: 20 * time.Millisecond}})
	c := f.login()
	for pings := 0; pings < 2; {
		tag, m := c.recv()
		if p, ok := m.(*mcspb.HeartbeatPing); ok {
			if p.Status != nil || p.GetLastStreamIdReceived() != 1 {
				t.Errorf("server ping %v: want no status, last_stream_id_received 1", p)
			}
			pings++ // never answered: the connection stays up
		} else if tag == mcs.TagClose {
			t.Fatal("closed for an unanswered ping")
		}
	}
}

func TestIdleTimeout(t *testing.T) {
	f := newFixture(t, fixtureOpts{cfg: Config{IdleTimeout: 50 * time.Millisecond}})
	c := f.login()
	c.expectClose()
	if got := counter(f.met.MCSClosed.WithLabelValues(reasonIdle)); got != 1 {
		t.Errorf("closed idle = %v, want 1", got)
	}
}

// TestNoGoroutinesWhenIdle: a logged-in idle device has its reader and no
// writer (parked writer goroutines belong to no connection and are at most
// maxParkedWriters).
func TestNoGoroutinesWhenIdle(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	c := f.login()
	c.ping(false, nil)
	own := func() int64 { return f.srv.running.Load() - int64(f.srv.parked.Load()) }
	deadline := time.Now().Add(10 * time.Second)
	// The writer run ends right after its last write; wait for that.
	for own() != 1 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := own(); n != 1 {
		t.Errorf("%d server goroutines for one idle device besides parked writers, want 1 (its reader)", n)
	}
	if n := f.srv.parked.Load(); n > maxParkedWriters {
		t.Errorf("%d parked writers, want <= %d", n, maxParkedWriters)
	}
	var cn *conn
	f.srv.mu.Lock()
	for k := range f.srv.conns {
		cn = k
	}
	f.srv.mu.Unlock()
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if cn.writing || cn.ctl != nil || cn.liveQ != nil || cn.flights != nil || cn.held != nil || cn.p.batch != nil || cn.wait != nil {
		t.Errorf("idle connection holds state: writing %v ctl %v liveQ %v flights %v held %v batch %v", cn.writing, cn.ctl, cn.liveQ, cn.flights, cn.held, cn.p.batch)
	}
	if cn.rd.Buffered() != 0 {
		t.Errorf("reader holds %d bytes", cn.rd.Buffered())
	}
}

var _ queue.DeviceSink = (*conn)(nil)
