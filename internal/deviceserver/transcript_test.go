package deviceserver

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/ccsd/ccsd/internal/mcs"
	"github.com/ccsd/ccsd/internal/mcs/mcspb"
)

var update = flag.Bool("update", false, "rewrite golden transcripts in testdata")

// goldenSender replaces the random 12-digit sender id in transcripts.
const goldenSender = "123456789012"

// wireFrame is a frame as it was on the wire.
func wireFrame(tag byte, payload []byte) []byte {
	b := append([]byte{tag}, protowire.AppendVarint(nil, uint64(len(payload)))...)
	return append(b, payload...)
}

// TestGoldenLoginDelivery compares the server's bytes for a login and one
// delivery with testdata/login_delivery.hex, byte for byte (the clock is
// fixed; the sender id, random per run, is replaced).
func TestGoldenLoginDelivery(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	c := f.dial()
	c.send(f.loginReq())
	var lines []string
	next := func(name string) proto.Message {
		fr, err := c.rd.Next()
		if err != nil {
			t.Fatal(err)
		}
		b := bytes.ReplaceAll(wireFrame(fr.Tag, fr.Payload), []byte(f.sender.ID), []byte(goldenSender))
		lines = append(lines, fmt.Sprintf("S %s  # %s", hex.EncodeToString(b), name))
		m, err := mcs.Decode(fr)
		if err != nil {
			t.Fatal(err)
		}
		c.in++
		return m
	}
	next("LoginResponse")
	lines = append([]string{fmt.Sprintf("V %02x  # version byte", c.rd.Version())}, lines...)
	next("SelectiveAck IQ")
	f.send(msg("golden-1"))
	next("DataMessageStanza")
	ack := &mcspb.HeartbeatPing{LastStreamIdReceived: proto.Int32(c.in)}
	b, _ := mcs.AppendFrame(nil, mcs.TagHeartbeatPing, ack)
	lines = append(lines, fmt.Sprintf("C %s  # HeartbeatPing acking the delivery", hex.EncodeToString(b)))
	c.send(ack)
	next("HeartbeatAck")

	got := "# MCS transcript: a login and one delivery (mcs.md §4.1, §8.1).\n" +
		"# V = server version byte, S = one server frame (one Write), C = a client frame.\n" +
		"# The LoginRequest is left out (its credentials are random). Clock 2024-06-01T12:00:00Z;\n" +
		"# sender id " + goldenSender + ".\n" + strings.Join(lines, "\n") + "\n"
	path := filepath.Join("testdata", "login_delivery.hex")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("transcript differs from %s\n got:\n%s\nwant:\n%s", path, got, want)
	}
}

// recordingListener records every Write of every accepted connection.
type recordingListener struct {
	net.Listener
	mu     sync.Mutex
	writes [][]byte
}

func (l *recordingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &recordingConn{Conn: c, l: l}, nil
}

func (l *recordingListener) recorded() [][]byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([][]byte(nil), l.writes...)
}

type recordingConn struct {
	net.Conn
	l *recordingListener
}

func (c *recordingConn) Write(b []byte) (int, error) {
	c.l.mu.Lock()
	c.l.writes = append(c.l.writes, bytes.Clone(b))
	c.l.mu.Unlock()
	return c.Conn.Write(b)
}

// TestOneFramePerWrite: every Write the server makes is exactly one frame
// (the first with the version byte), mcs.md §2.3 rule 1. Plain TCP, so the
// writes are visible.
func TestOneFramePerWrite(t *testing.T) {
	rl := &recordingListener{}
	f := newFixture(t, fixtureOpts{plain: true, ln: func(ln net.Listener) net.Listener { rl.Listener = ln; return rl }})
	for i := range 3 {
		f.send(msg("p" + itoa(i)))
	}
	c := f.login()
	for range 3 {
		c.data()
	}
	c.send(upstreamMsg("999999999999@gcm.googleapis.com", "bad", "a", "b"))
	c.data()
	c.ping(true, nil)
	c.send(mcs.StreamAckIQ("", c.in))
	c.streamAck()
	c.send(&mcspb.IqStanza{Type: mcs.IqGet.Enum(), Id: proto.String("x")})
	c.write([]byte{9, 0})
	c.expectClose()

	writes := rl.recorded()
	if len(writes) < 9 {
		t.Fatalf("%d writes recorded, want at least 9", len(writes))
	}
	for i, w := range writes {
		b := w
		if i == 0 {
			if b[0] != mcs.Version {
				t.Fatalf("first write starts with %d, want the version byte", b[0])
			}
			b = b[1:]
		}
		rd := bufio.NewReader(bytes.NewReader(b[1:]))
		n, err := readUvarint(rd)
		if err != nil || int(n) != rd.Buffered() {
			t.Errorf("write %d (%s, %d bytes) is not exactly one frame: length %d, %d bytes follow", i, mcs.TagName(b[0]), len(w), n, rd.Buffered())
		}
	}
}

func readUvarint(rd *bufio.Reader) (uint64, error) {
	var x uint64
	for s := uint(0); ; s += 7 {
		c, err := rd.ReadByte()
		if err != nil {
			return 0, err
		}
		x |= uint64(c&0x7f) << s
		if c < 0x80 {
			return x, nil
		}
	}
}
