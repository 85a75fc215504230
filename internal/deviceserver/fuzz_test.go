package deviceserver

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/ccsd/ccsd/internal/mcs"
	"github.com/ccsd/ccsd/internal/mcs/mcspb"
)

// FuzzClientStream feeds arbitrary bytes after a login to a real server
// (plain TCP, for speed), then a ping and the end of the stream. Whatever
// the bytes, the server answers the ping or closes the connection; it
// never panics or hangs. Seeds
// are in testdata/fuzz/FuzzClientStream.
func FuzzClientStream(f *testing.F) {
	seed := func(ms ...proto.Message) []byte {
		var b []byte
		for _, m := range ms {
			tag, _ := mcs.TagOf(m)
			b, _ = mcs.AppendFrame(b, tag, m)
		}
		return b
	}
	f.Add(seed(&mcspb.HeartbeatPing{LastStreamIdReceived: proto.Int32(2)}))
	f.Add(seed(mcs.StreamAckIQ("", 9), upstreamMsg("1@gcm.googleapis.com", "x", "k", "v")))
	f.Add([]byte{7, 0, 8, 0, 1, 0})
	f.Add([]byte{0, 0xff, 0xff, 0xff, 0xff, 0x0f})

	fx := newFixture(f, fixtureOpts{plain: true})
	f.Fuzz(func(t *testing.T, b []byte) {
		ft := *fx
		ft.t = t
		c := ft.login()
		if len(b) > 0 {
			if _, err := c.nc.Write(b); err != nil {
				return
			}
		}
		ping, _ := mcs.AppendFrame(nil, mcs.TagHeartbeatPing, &mcspb.HeartbeatPing{})
		_, _ = c.nc.Write(ping)
		// An unfinished frame swallows the ping: end the stream so that the
		// server sees EOF then.
		_ = c.nc.(*net.TCPConn).CloseWrite()
		_ = c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			tag, _, err := c.recvErr()
			if err != nil {
				var fe *mcs.FrameError
				if errors.As(err, &fe) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || isReset(err) && !isTimeout(err) {
					c.nc.Close()
					return
				}
				t.Fatalf("server neither answered nor closed: %v", err)
			}
			if tag == mcs.TagHeartbeatAck || tag == mcs.TagClose {
				c.nc.Close()
				return
			}
		}
	})
}

func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}
