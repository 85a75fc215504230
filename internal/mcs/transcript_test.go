package mcs

import (
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/ccsd/ccsd/internal/mcs/mcspb"
)

var update = flag.Bool("update", false, "rewrite the golden transcripts in testdata/")

// A step of a transcript: one frame sent by the client ('c') or the server
// ('s'), with the version byte before it when versioned.
type step struct {
	dir       byte
	versioned bool
	comment   string
	msg       proto.Message
}

const (
	testAndroidID = 5242880123456789
	testToken     = 8179641326349923001
	testPID1      = "0:1454012460499237%869bf29ef9fd7ecd"
)

func testLogin() *mcspb.LoginRequest {
	return LoginRequest("chrome-63.0.3234.0", testAndroidID, testToken, []string{testPID1})
}

func testData() *mcspb.DataMessageStanza {
	return &mcspb.DataMessageStanza{
		Id:           proto.String("861D34EB"),
		From:         proto.String("1234567890"),
		Category:     proto.String("org.chromium.linux"),
		Token:        proto.String(NoCollapseToken),
		PersistentId: proto.String(NewPersistentID(1454012460499237, 0x1f)),
		AppData: []*mcspb.AppData{
			{Key: proto.String("crypto-key"), Value: proto.String("dh=BDOU99-h67HcA6JeFXHbSNMu7e2yNNu3RzoMj8TM4W88jITfq7ZmPvIM1Iv-4_l2LxQcYwhqby2xGpWwzjfAnG4=")},
			{Key: proto.String("encryption"), Value: proto.String("salt=c2FsdHNhbHRzYWx0c2FsdA==")},
			{Key: proto.String("subtype"), Value: proto.String("wp:receiver.push.com#6a9b1f40-1234-4c1e-9d3f-7f3c2b1a0e99")},
		},
		RawData:              []byte("\x8f\x11\x02ciphertext and tag"),
		Ttl:                  proto.Int32(2419200),
		Sent:                 proto.Int64(1454012460496),
		LastStreamIdReceived: proto.Int32(1),
	}
}

// transcripts are the golden exchanges; their bytes are in testdata/<name>.hex.
var transcripts = map[string][]step{
	"login": {
		{'c', true, "LoginRequest (push-receiver style, one received id)", testLogin()},
		{'s', true, "LoginResponse: id echoed, last_stream_id_received 1, server_timestamp", LoginResponse("chrome-63.0.3234.0", 1634635283698)},
		{'s', false, "empty SelectiveAck IQ, as Google sends it", SelectiveAckIQ(nil)},
	},
	"login_error": {
		{'c', true, "LoginRequest with a wrong token", LoginRequest("android-30", testAndroidID, 1, nil)},
		{'s', true, "LoginResponse with error{code, message}; the server closes next", LoginErrorResponse("android-30", 401, "authentication failed")},
	},
	"heartbeat": {
		{'c', true, "LoginRequest", LoginRequest("chrome-94.0.4606.51", testAndroidID, testToken, nil)},
		{'s', true, "LoginResponse", LoginResponse("chrome-94.0.4606.51", 1634635283698)},
		{'c', false, "zero-length HeartbeatPing", &mcspb.HeartbeatPing{}},
		{'s', false, "HeartbeatAck with the server's count", HeartbeatAck(2)},
		{'c', false, "HeartbeatPing with last_stream_id_received (EN)", &mcspb.HeartbeatPing{LastStreamIdReceived: proto.Int32(2)}},
		{'s', false, "HeartbeatAck", HeartbeatAck(3)},
		{'s', false, "server HeartbeatPing, no status", HeartbeatPing(3)},
		{'c', false, "HeartbeatAck from the client", &mcspb.HeartbeatAck{LastStreamIdReceived: proto.Int32(4)}},
		{'s', false, "Close", Close()},
	},
	"data": {
		{'s', true, "LoginResponse", LoginResponse("android-30", 1634635283698)},
		{'s', false, "downstream web-push DataMessageStanza", testData()},
		{'c', true, "upstream DataMessageStanza (microG style)", &mcspb.DataMessageStanza{
			Id:       proto.String("1000001"),
			From:     proto.String("registration-token"),
			To:       proto.String("1234567890@gcm.googleapis.com"),
			Category: proto.String("com.example.app"),
			Ttl:      proto.Int32(86400),
			Sent:     proto.Int64(1454012460),
			AppData:  []*mcspb.AppData{{Key: proto.String("hello"), Value: proto.String("world")}},
		}},
	},
	"selectiveack": {
		{'c', true, "SelectiveAck IQ from the client listing two ids", &mcspb.IqStanza{
			Type: IqSet.Enum(), Id: proto.String(""),
			Extension: &mcspb.Extension{Id: proto.Int32(ExtensionSelectiveAck),
				Data: mustMarshal(&mcspb.SelectiveAck{Id: []string{testPID1, NewPersistentID(1454012460499999, 2)}})},
		}},
		{'c', false, "StreamAck IQ (microG, when an app acks)", StreamAckIQ("", 5)},
		{'s', false, "StreamAck IQ answer with the server's count", StreamAckIQ("398A01BC", 42)},
		{'s', false, "SelectiveAck IQ confirming one upstream id", SelectiveAckIQ([]string{"1000001"})},
	},
}

func mustMarshal(m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

// render writes a transcript: comment lines, then "c"/"s" and the frame's
// bytes in hex, one frame a line.
func render(t *testing.T, steps []step) string {
	t.Helper()
	var sb strings.Builder
	for _, s := range steps {
		tag, _ := TagOf(s.msg)
		var b []byte
		var err error
		if s.versioned {
			b, err = AppendVersionedFrame(nil, tag, s.msg)
		} else {
			b, err = AppendFrame(nil, tag, s.msg)
		}
		if err != nil {
			t.Fatalf("encoding %q: %v", s.comment, err)
		}
		fmt.Fprintf(&sb, "# %s (%s, %d bytes)\n%c %s\n", s.comment, TagName(tag), len(b), s.dir, spaced(b))
	}
	return sb.String()
}

func spaced(b []byte) string {
	h := hex.EncodeToString(b)
	var sb strings.Builder
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(h[i : i+2])
	}
	return sb.String()
}

// parseTranscript returns the concatenated bytes of each direction.
func parseTranscript(t *testing.T, text string) (client, server []byte) {
	t.Helper()
	for n, line := range strings.Split(text, "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		b, err := hex.DecodeString(strings.ReplaceAll(line[2:], " ", ""))
		if err != nil {
			t.Fatalf("line %d: %v", n+1, err)
		}
		switch line[0] {
		case 'c':
			client = append(client, b...)
		case 's':
			server = append(server, b...)
		default:
			t.Fatalf("line %d: direction %q", n+1, line[0])
		}
	}
	return client, server
}

func TestTranscripts(t *testing.T) {
	for name, steps := range transcripts {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join("testdata", name+".hex")
			want := render(t, steps)
			if *update {
				if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != want {
				t.Fatalf("encoding differs from %s (run with -update after checking):\ngot file:\n%s\nwant:\n%s", path, got, want)
			}
			client, server := parseTranscript(t, string(got))
			for _, dir := range []byte{'c', 's'} {
				stream, tags := client, ClientSendTags
				if dir == 's' {
					stream, tags = server, ServerSendTags
				}
				var msgs []proto.Message
				for _, s := range steps {
					if s.dir != dir {
						continue
					}
					if len(msgs) == 0 && !s.versioned {
						stream = append([]byte{Version}, stream...)
					}
					msgs = append(msgs, s.msg)
				}
				checkStream(t, string(dir), stream, tags, msgs)
			}
		})
	}
}

// checkStream reads stream and wants exactly msgs, then io.EOF.
func checkStream(t *testing.T, dir string, stream []byte, tags TagSet, msgs []proto.Message) {
	t.Helper()
	r := NewReader(bytes.NewReader(stream), ReaderConfig{Tags: tags})
	for i, want := range msgs {
		f, err := r.Next()
		if err != nil {
			t.Fatalf("%s frame %d: %v", dir, i, err)
		}
		got, err := Decode(f)
		if err != nil {
			t.Fatalf("%s frame %d: %v", dir, i, err)
		}
		if !proto.Equal(got, want) {
			t.Errorf("%s frame %d:\ngot  %v\nwant %v", dir, i, got, want)
		}
	}
	if _, err := r.Next(); !errors.Is(err, io.EOF) {
		t.Errorf("%s after the last frame: got %v, want io.EOF", dir, err)
	}
}

// The empty SelectiveAck IQ is the exact 10 bytes of Google's captures
// (mcs.md §4.1).
func TestSelectiveAckGolden(t *testing.T) {
	got, err := proto.Marshal(SelectiveAckIQ(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{0x10, 0x01, 0x1a, 0x00, 0x3a, 0x04, 0x08, 0x0c, 0x12, 0x00}
	if !bytes.Equal(got, want) {
		t.Errorf("got % x, want % x", got, want)
	}
	frame, err := AppendFrame(nil, TagIqStanza, SelectiveAckIQ([]string{}))
	if err != nil {
		t.Fatal(err)
	}
	if wantFrame := append([]byte{TagIqStanza, 10}, want...); !bytes.Equal(frame, wantFrame) {
		t.Errorf("frame: got % x, want % x", frame, wantFrame)
	}
}
