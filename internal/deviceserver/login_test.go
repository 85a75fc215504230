package deviceserver

import (
	"crypto/tls"
	"net"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/ccsd/ccsd/internal/mcs"
	"github.com/ccsd/ccsd/internal/mcs/mcspb"
)

func TestLoginOK(t *testing.T) {
	f := newFixture(t, fixtureOpts{cfg: Config{ClientHeartbeatInterval: 0}})
	c := f.dial()
	c.send(f.loginReq())
	tag, m := c.recv()
	resp, ok := m.(*mcspb.LoginResponse)
	if tag != mcs.TagLoginResponse || !ok {
		t.Fatalf("got %s, want LoginResponse", mcs.TagName(tag))
	}
	if got, want := c.rd.Version(), byte(mcs.Version); got != want {
		t.Errorf("server version byte %d, want %d", got, want)
	}
	if resp.GetId() != "chrome-63.0.3234.0" || resp.GetLastStreamIdReceived() != 1 || resp.GetServerTimestamp() != epoch.UnixMilli() || resp.Error != nil {
		t.Errorf("LoginResponse = %v, want id echoed, last_stream_id_received 1, server_timestamp %d, no error", resp, epoch.UnixMilli())
	}
	tag, m = c.recv()
	iq, _ := m.(*mcspb.IqStanza)
	ids, isSel, err := mcs.SelectiveAckIDs(iq)
	if tag != mcs.TagIqStanza || !isSel || err != nil || len(ids) != 0 {
		t.Errorf("second frame %s %v, want an empty SelectiveAck", mcs.TagName(tag), m)
	}
	if got := counter(f.met.MCSLogins); got != 1 {
		t.Errorf("logins = %v, want 1", got)
	}
	if f.srv.Conns() != 1 {
		t.Errorf("Conns() = %d, want 1", f.srv.Conns())
	}
}

func TestLoginHeartbeatConfig(t *testing.T) {
	f := newFixture(t, fixtureOpts{cfg: Config{ClientHeartbeatInterval: 5 * 60e9}})
	c := f.dial()
	c.send(f.loginReq())
	_, m := c.recv()
	if got := m.(*mcspb.LoginResponse).GetHeartbeatConfig().GetIntervalMs(); got != 300000 {
		t.Errorf("heartbeat_config.interval_ms = %d, want 300000", got)
	}
}

// TestLoginWithoutSNI is push-receiver's handshake: no SNI, no name check.
func TestLoginWithoutSNI(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	c := f.dialTLS(&tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12})
	c.loginWith(f.loginReq())
	if st := c.nc.(*tls.Conn).ConnectionState(); len(st.PeerCertificates) == 0 {
		t.Errorf("no server certificate without SNI")
	}
}

func TestLoginRefused(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	req := func(edit func(r *mcspb.LoginRequest)) []byte {
		r := f.loginReq()
		edit(r)
		b, err := mcs.AppendVersionedFrame(nil, mcs.TagLoginRequest, r)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	ping, _ := mcs.AppendVersionedFrame(nil, mcs.TagHeartbeatPing, &mcspb.HeartbeatPing{})
	tests := []struct {
		name     string
		bytes    []byte
		reason   string
		wantCode int32 // 0: no LoginResponse, the stream just ends
	}{
		{"wrong token", req(func(r *mcspb.LoginRequest) { r.AuthToken = proto.String(itoa(int(f.token%1e9) + 1)) }), loginBadToken, 401},
		{"unknown android id", req(func(r *mcspb.LoginRequest) { r.User = proto.String("4242"); r.Resource = r.User }), loginUnknown, 401},
		{"user not a number", req(func(r *mcspb.LoginRequest) { r.User = proto.String("me") }), loginBadUser, 401},
		{"auth service", req(func(r *mcspb.LoginRequest) { r.AuthService = mcspb.LoginRequest_AuthService(7).Enum() }), loginAuthService, 400},
		{"wrong version byte", append([]byte{37}, req(func(*mcspb.LoginRequest) {})[1:]...), loginVersion, 0},
		{"garbage protobuf", []byte{41, 2, 4, 0xff, 0xff, 0xff, 0xff}, loginBadRequest, 400},
		{"not a login first", ping, loginNotLogin, 400},
		{"length varint over 5 bytes", []byte{41, 2, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}, loginFraming, 400},
		{"unknown tag first", []byte{41, 5, 0}, loginFraming, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := counter(f.met.MCSLoginFails.WithLabelValues(tt.reason))
			c := f.dial()
			c.write(tt.bytes)
			if tt.wantCode == 0 {
				c.expectEOF()
			} else {
				tag, m := c.recv()
				resp, ok := m.(*mcspb.LoginResponse)
				if tag != mcs.TagLoginResponse || !ok || resp.GetError().GetCode() != tt.wantCode || resp.Id == nil {
					t.Fatalf("got %s %v, want LoginResponse with id and error code %d", mcs.TagName(tag), m, tt.wantCode)
				}
				c.expectClose()
			}
			if got := counter(f.met.MCSLoginFails.WithLabelValues(tt.reason)) - before; got != 1 {
				t.Errorf("login failures %q += %v, want 1", tt.reason, got)
			}
		})
	}
	if got := counter(f.met.MCSLogins); got != 0 {
		t.Errorf("logins = %v, want 0", got)
	}
}

// TestProtocolErrors: after login, anything a client must not send gets
// Close and the end of the connection, with a counted reason.
func TestProtocolErrors(t *testing.T) {
	f := newFixture(t, fixtureOpts{cfg: Config{MaxFrameBytes: 1024}})
	tests := []struct {
		name   string
		bytes  []byte
		reason string
	}{
		{"closed-source tag", []byte{5, 0}, reasonBadTag},
		{"server-only tag", []byte{3, 0}, reasonBadTag},
		{"tag past the table", []byte{16, 0}, reasonBadTag},
		{"length varint over 5 bytes", []byte{0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}, reasonProtocol},
		{"over-size frame", []byte{8, 0x81, 0x08}, reasonFrameSize},
		{"garbage protobuf", []byte{7, 3, 0xff, 0xff, 0xff}, reasonBadPayload},
		{"second login", append([]byte{2}, mustFrame(t, f.loginReq())[1:]...), reasonProtocol},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := counter(f.met.MCSClosed.WithLabelValues(tt.reason))
			c := f.login()
			c.write(tt.bytes)
			c.expectClose()
			if got := counter(f.met.MCSClosed.WithLabelValues(tt.reason)) - before; got != 1 {
				t.Errorf("closed %q += %v, want 1", tt.reason, got)
			}
		})
	}
}

func mustFrame(t *testing.T, m *mcspb.LoginRequest) []byte {
	b, err := mcs.AppendFrame(nil, mcs.TagLoginRequest, m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestHeartbeat(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	c := f.login()
	ack, _ := c.ping(false, nil)
	// Received so far: the login and the ping.
	if ack.GetLastStreamIdReceived() != 2 || ack.Status != nil {
		t.Errorf("HeartbeatAck = %v, want last_stream_id_received 2 and no status", ack)
	}
	ack, _ = c.ping(false, nil)
	if ack.GetLastStreamIdReceived() != 3 {
		t.Errorf("second HeartbeatAck = %v, want last_stream_id_received 3", ack)
	}
}

// TestHeartbeatFlood: the clock stands still, so every ping beyond the
// burst is over the rate.
func TestHeartbeatFlood(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	c := f.login()
	for range pingBurst {
		c.ping(false, nil)
	}
	c.send(&mcspb.HeartbeatPing{})
	c.expectClose()
	if got := counter(f.met.MCSClosed.WithLabelValues(reasonFlood)); got != 1 {
		t.Errorf("closed for heartbeat flood = %v, want 1", got)
	}
}

// TestHeartbeatSustainable: ten pings a second forever are fine.
func TestHeartbeatSustainable(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	c := f.login()
	for range 3 * pingBurst {
		c.ping(false, nil)
		f.clk.Advance(pingEvery)
	}
}

func TestKickOnSecondLogin(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	first := f.login()
	second := f.login()
	first.expectClose()
	if got := counter(f.met.MCSClosed.WithLabelValues(reasonKicked)); got != 1 {
		t.Errorf("closed as kicked = %v, want 1", got)
	}
	second.ping(false, nil) // still up
}

func TestClientClose(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	c := f.login()
	c.send(mcs.Close())
	c.expectEOF()
}

// TestLoginTimeout: the handshake and the LoginRequest share LoginTimeout.
func TestLoginTimeout(t *testing.T) {
	f := newFixture(t, fixtureOpts{cfg: Config{LoginTimeout: 50 * time.Millisecond}})
	tests := []struct {
		name string
		wait func(t *testing.T)
	}{
		{"silent after TCP connect", func(t *testing.T) {
			raw, err := net.Dial("tcp", f.addrCh.String())
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			_ = raw.SetDeadline(time.Now().Add(20 * time.Second))
			if n, err := raw.Read(make([]byte, 1)); err == nil {
				t.Errorf("read %d bytes, want the end of the stream", n)
			}
		}},
		{"silent after the handshake", func(t *testing.T) {
			c := f.dial()
			if err := c.nc.(*tls.Conn).Handshake(); err != nil {
				t.Fatal(err)
			}
			c.expectEOF()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := counter(f.met.MCSLoginFails.WithLabelValues(loginTimeout))
			tt.wait(t)
			if got := counter(f.met.MCSLoginFails.WithLabelValues(loginTimeout)) - before; got != 1 {
				t.Errorf("login timeouts += %v, want 1", got)
			}
		})
	}
}
