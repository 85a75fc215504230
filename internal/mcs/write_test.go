package mcs

import (
	"bytes"
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/ccsd/ccsd/internal/mcs/mcspb"
)

// Every message the package builds for the wire passes CheckInitialized:
// protobufjs and Wire clients die on a missing required field (mcs.md §2.3).
func TestBuildersInitialized(t *testing.T) {
	msgs := map[string]proto.Message{
		"LoginResponse":         LoginResponse("android-30", 1634635283698),
		"LoginResponse empty":   LoginResponse("", 0),
		"LoginErrorResponse":    LoginErrorResponse("android-30", 401, "bad token"),
		"LoginErrorResponse 0":  LoginErrorResponse("", 0, ""),
		"SelectiveAckIQ nil":    SelectiveAckIQ(nil),
		"SelectiveAckIQ ids":    SelectiveAckIQ([]string{"a", "b"}),
		"StreamAckIQ":           StreamAckIQ("", 0),
		"HeartbeatAck":          HeartbeatAck(3),
		"HeartbeatPing":         HeartbeatPing(3),
		"Close":                 Close(),
		"LoginRequest":          LoginRequest("chrome-63.0.3234.0", 1, 2, nil),
		"LoginRequest with ids": LoginRequest("android-30", 1<<63-1, 1<<63-1, []string{testPID1}),
		"test DataMessage":      testData(),
	}
	for name, m := range msgs {
		if err := proto.CheckInitialized(m); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		tag, ok := TagOf(m)
		if !ok {
			t.Errorf("%s: no tag", name)
			continue
		}
		if _, err := AppendFrame(nil, tag, m); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if got := HeartbeatPing(3).Status; got != nil {
		t.Errorf("server ping carries status %d", *got)
	}
	if got := LoginErrorResponse("x", 0, "").GetError().GetCode(); got == 0 {
		t.Error("login error with code 0")
	}
}

func TestAppendFrame(t *testing.T) {
	tests := []struct {
		name string
		tag  byte
		m    proto.Message
		want []byte
	}{
		{"empty ping", TagHeartbeatPing, &mcspb.HeartbeatPing{}, []byte{0, 0}},
		{"ack", TagHeartbeatAck, HeartbeatAck(300), []byte{1, 3, 0x10, 0xac, 0x02}},
		{"close", TagClose, Close(), []byte{4, 0}},
		{"two-byte length", TagDataMessageStanza, &mcspb.DataMessageStanza{From: proto.String(""), Category: proto.String(""), RawData: make([]byte, 200)},
			append([]byte{8, 0xd0, 0x01, 0x1a, 0x00, 0x2a, 0x00, 0xaa, 0x01, 0xc8, 0x01}, make([]byte, 200)...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := []byte("prefix")
			got, err := AppendFrame(prefix, tt.tag, tt.m)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got[len(prefix):], tt.want) || !bytes.Equal(got[:len(prefix)], prefix) {
				t.Errorf("got % x, want prefix + % x", got, tt.want)
			}
			if n := FrameSize(tt.m); n != len(tt.want) {
				t.Errorf("FrameSize: got %d, want %d", n, len(tt.want))
			}
			v, err := AppendVersionedFrame(nil, tt.tag, tt.m)
			if err != nil || v[0] != Version || !bytes.Equal(v[1:], tt.want) {
				t.Errorf("versioned: got % x, %v", v, err)
			}
		})
	}
}

func TestAppendFrameRefuses(t *testing.T) {
	tests := []struct {
		name string
		tag  byte
		m    proto.Message
		is   error
	}{
		{"wrong tag", TagHeartbeatAck, &mcspb.HeartbeatPing{}, ErrTagMismatch},
		{"not a frame message", TagIqStanza, &mcspb.Extension{Id: proto.Int32(1), Data: nil}, ErrTagMismatch},
		{"invalid tag", 200, &mcspb.HeartbeatPing{}, ErrTagMismatch},
		{"login response without id", TagLoginResponse, &mcspb.LoginResponse{}, nil},
		{"data without category", TagDataMessageStanza, &mcspb.DataMessageStanza{From: proto.String("1")}, nil},
		{"iq without type", TagIqStanza, &mcspb.IqStanza{Id: proto.String("")}, nil},
		{"error info without code", TagLoginResponse, &mcspb.LoginResponse{Id: proto.String("x"), Error: &mcspb.ErrorInfo{}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := []byte{1, 2, 3}
			got, err := AppendFrame(dst, tt.tag, tt.m)
			if err == nil {
				t.Fatal("no error")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("got %v, want %v", err, tt.is)
			}
			if !bytes.Equal(got, dst) {
				t.Errorf("dst changed to % x", got)
			}
			if got, err := AppendVersionedFrame(dst, tt.tag, tt.m); err == nil || !bytes.Equal(got, dst) {
				t.Errorf("versioned: got % x, %v", got, err)
			}
		})
	}
}

func TestAppendFrameAllocs(t *testing.T) {
	m := testData()
	buf := make([]byte, 0, 4096)
	got := testing.AllocsPerRun(1000, func() {
		var err error
		if buf, err = AppendFrame(buf[:0], TagDataMessageStanza, m); err != nil {
			t.Fatal(err)
		}
	})
	if got != 0 {
		t.Errorf("AppendFrame allocates %v times, want 0", got)
	}
}
