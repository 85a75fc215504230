package deviceserver

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/ccsd/ccsd/internal/mcs"
	"github.com/ccsd/ccsd/internal/mcs/mcspb"
	"github.com/ccsd/ccsd/internal/router"
)

func upstreamMsg(to, id string, kv ...string) *mcspb.DataMessageStanza {
	m := &mcspb.DataMessageStanza{To: proto.String(to), From: proto.String("gcm@chrome.com"),
		Category: proto.String("com.example.app"), Id: proto.String(id), Ttl: proto.Int32(60), Sent: proto.Int64(1)}
	for i := 0; i+1 < len(kv); i += 2 {
		m.AppData = append(m.AppData, &mcspb.AppData{Key: proto.String(kv[i]), Value: proto.String(kv[i+1])})
	}
	return m
}

// streamAck reads up to the server's StreamAck IQ and returns its stamp.
func (c *client) streamAck() int32 {
	c.t.Helper()
	for {
		tag, m := c.recv()
		if iq, ok := m.(*mcspb.IqStanza); ok && mcs.IsStreamAck(iq) {
			return iq.GetLastStreamIdReceived()
		}
		if tag == mcs.TagClose {
			c.t.Fatal("got Close waiting for StreamAck")
		}
	}
}

func TestUpstreamStored(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	feed, err := f.rt.Attach(context.Background(), f.sender.ID, "ccs-test", 10)
	if err != nil {
		t.Fatal(err)
	}
	defer feed.Close()
	c := f.login()
	c.send(upstreamMsg(f.sender.ID+"@gcm.googleapis.com", "u1", "hello", "world"))
	if got, want := c.streamAck(), c.out; got < want {
		t.Errorf("StreamAck last_stream_id_received %d, want >= %d (the upstream message)", got, want)
	}
	up := <-feed.C()
	js := string(up.JSON)
	if up.ID != "u1" || !strings.Contains(js, `"from":"`+f.reg.ID+`"`) || !strings.Contains(js, `"hello":"world"`) || !strings.Contains(js, `"category":"com.example.app"`) {
		t.Errorf("upstream %s %s, want u1 from the registration with hello=world", up.ID, js)
	}
	if got := counter(f.met.MCSUpstreamIn); got != 1 {
		t.Errorf("upstream in = %v, want 1", got)
	}
}

func TestUpstreamRefused(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	big := strings.Repeat("x", 4097)
	tests := []struct {
		name string
		m    *mcspb.DataMessageStanza
		want string
	}{
		{"sender the device is not registered with", upstreamMsg("999999999999@gcm.googleapis.com", "u2", "a", "b"), "InvalidSender"},
		{"over 4096 bytes of data", upstreamMsg(f.sender.ID+"@fcm.googleapis.com", "u3", "big", big), "MessageTooBig"},
		{"no message id", upstreamMsg(f.sender.ID+"@gcm.googleapis.com", "", "a", "b"), "InvalidParameters"},
	}
	c := f.login()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.send(tt.m)
			d := c.data()
			ad := appData(d)
			if ad["message_type"] != "send_error" || ad["error"] != tt.want || ad["google.message_id"] != tt.m.GetId() || d.GetCategory() != "com.example.app" {
				t.Errorf("got %v, want send_error %s for %q", ad, tt.want, tt.m.GetId())
			}
			if d.PersistentId == nil || d.From == nil {
				t.Errorf("send_error %v lacks persistent_id or from", d)
			}
		})
	}
	c.ping(false, nil) // the connection stays up
	if got := counter(f.met.MCSUpstreamIn); got != 0 {
		t.Errorf("upstream in = %v, want 0", got)
	}
}

// gatedBackend is the real router with Upstream held until released.
type gatedBackend struct {
	*router.Router
	entered chan struct{}
	release chan struct{}
}

func (g *gatedBackend) Upstream(ctx context.Context, aid uint64, up *router.DeviceUpstream) error {
	g.entered <- struct{}{}
	<-g.release
	return g.Router.Upstream(ctx, aid, up)
}

// TestUpstreamNotAckedBeforeStored is DESIGN invariant 1 on the device
// side: while an upstream message is being stored, packets the server
// sends do not acknowledge it.
func TestUpstreamNotAckedBeforeStored(t *testing.T) {
	g := &gatedBackend{entered: make(chan struct{}), release: make(chan struct{})}
	f := newFixture(t, fixtureOpts{backend: func(b Backend) Backend { g.Router = b.(*router.Router); return g }})
	c := f.login()
	c.send(upstreamMsg(f.sender.ID+"@gcm.googleapis.com", "u4", "a", "b"))
	upID := c.out
	<-g.entered
	f.send(msg("during"))
	d := c.data()
	if d.GetLastStreamIdReceived() >= upID {
		t.Errorf("data message sent while the upstream message was being stored carries last_stream_id_received %d, acknowledging it (stream id %d)", d.GetLastStreamIdReceived(), upID)
	}
	close(g.release)
	if got := c.streamAck(); got < upID {
		t.Errorf("StreamAck after storing carries %d, want >= %d", got, upID)
	}
}
