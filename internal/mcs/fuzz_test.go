package mcs

import (
	"bytes"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/ccsd/ccsd/internal/mcs/mcspb"
)

// splitsFrom turns fuzz bytes into increasing split offsets of a stream of
// length n.
func splitsFrom(seed []byte, n int) []int {
	var splits []int
	off := 0
	for _, b := range seed {
		off += int(b) + 1
		if off >= n {
			break
		}
		splits = append(splits, off)
	}
	return splits
}

// FuzzReader: any bytes, any split points and any config give the same
// frames and error as reading the whole input at once, and never panic.
func FuzzReader(f *testing.F) {
	f.Add(testStream(f), []byte{0, 1, 2, 3, 200}, uint16(0), false)
	f.Add([]byte{41, 2, 0x80, 0x01}, []byte{1}, uint16(ClientSendTags), true)
	f.Add([]byte{41, 8, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00}, []byte{2, 0}, uint16(0), false)
	f.Add([]byte{38, 0, 0, 1, 0, 7, 10, 0x10, 0x01, 0x1a, 0x00, 0x3a, 0x04, 0x08, 0x0c, 0x12, 0x00}, []byte{}, uint16(ServerSendTags), false)
	f.Fuzz(func(t *testing.T, data, seed []byte, tags uint16, release bool) {
		cfg := ReaderConfig{Tags: TagSet(tags), ReleaseWhenIdle: release, MaxFrameBytes: 8 << 10}
		want := readAll(NewReader(bytes.NewReader(data), cfg))
		got := readAll(NewReader(&chunkReader{data: data, splits: splitsFrom(seed, len(data))}, cfg))
		if !sameResult(got, want) {
			t.Fatalf("split reads: %d frames, err %v; whole: %d frames, err %v", len(got.frames), got.err, len(want.frames), want.err)
		}
		accept := cfg.Tags
		if accept == 0 {
			accept = DecodableTags
		}
		for _, fr := range want.frames {
			if !accept.Has(fr.Tag) || len(fr.Payload) > cfg.MaxFrameBytes {
				t.Fatalf("frame tag %d, %d bytes passed the reader", fr.Tag, len(fr.Payload))
			}
		}
	})
}

// FuzzDecode: Decode never panics, and what it accepts survives a round
// trip through the encoder.
func FuzzDecode(f *testing.F) {
	add := func(m proto.Message) {
		tag, _ := TagOf(m)
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(tag, b)
	}
	add(testLogin())
	add(LoginResponse("x", 1))
	add(LoginErrorResponse("x", 401, "no"))
	add(SelectiveAckIQ([]string{"a"}))
	add(StreamAckIQ("", 3))
	add(testData())
	add(HeartbeatPing(1))
	add(HeartbeatAck(2))
	add(&mcspb.StreamErrorStanza{Type: proto.String("t"), Text: proto.String("x")})
	f.Add(byte(TagClose), []byte{})
	f.Add(byte(TagDataMessageStanza), []byte{0x0a, 0x05, 'a'})
	f.Fuzz(func(t *testing.T, tag byte, payload []byte) {
		m, err := Decode(Frame{Tag: tag, Payload: payload})
		if err != nil {
			return
		}
		b, err := proto.MarshalOptions{AllowPartial: true}.Marshal(m)
		if err != nil {
			t.Fatalf("re-encoding %s: %v", TagName(tag), err)
		}
		m2, err := Decode(Frame{Tag: tag, Payload: b})
		if err != nil {
			t.Fatalf("decoding re-encoded %s: %v", TagName(tag), err)
		}
		if !proto.Equal(m, m2) {
			t.Fatalf("%s round trip:\n%v\n%v", TagName(tag), m, m2)
		}
		// The session accepts whatever decodes.
		s := NewSession(4)
		s.SentData("p")
		_, _ = s.Receive(nil, m)
	})
}

// FuzzCheckinRequest: decoding an AndroidCheckinRequest (the protobuf
// only; gzip is the HTTP handler's job) never panics and round-trips.
func FuzzCheckinRequest(f *testing.F) {
	pr := &mcspb.AndroidCheckinRequest{
		UserSerialNumber: proto.Int32(0),
		Checkin: &mcspb.AndroidCheckinProto{
			Type: mcspb.DeviceType_DEVICE_CHROME_BROWSER.Enum(),
			ChromeBuild: &mcspb.ChromeBuildProto{
				Platform:      mcspb.ChromeBuildProto_PLATFORM_MAC.Enum(),
				ChromeVersion: proto.String("63.0.3234.0"),
				Channel:       mcspb.ChromeBuildProto_CHANNEL_STABLE.Enum(),
			},
		},
		Version: proto.Int32(3),
	}
	b, _ := proto.Marshal(pr)
	f.Add(b)
	pr.Id = proto.Int64(5242880123456789)
	pr.SecurityToken = proto.Uint64(8179641326349923001)
	pr.TimeZone = proto.String("Europe/Prague")
	pr.Fragment = proto.Int32(0)
	b, _ = proto.Marshal(pr)
	f.Add(b)
	f.Add([]byte{})
	f.Add([]byte{0x22, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		var req mcspb.AndroidCheckinRequest
		if err := Unmarshal(data, &req); err != nil {
			return
		}
		b, err := proto.MarshalOptions{AllowPartial: true}.Marshal(&req)
		if err != nil {
			t.Fatalf("re-encoding: %v", err)
		}
		var req2 mcspb.AndroidCheckinRequest
		if err := Unmarshal(b, &req2); err != nil {
			t.Fatalf("decoding re-encoded: %v", err)
		}
		if !proto.Equal(&req, &req2) {
			t.Fatalf("round trip:\n%v\n%v", &req, &req2)
		}
	})
}
