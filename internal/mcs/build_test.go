package mcs

import (
	"math"
	"testing"

	"github.com/ccsd/ccsd/internal/mcs/mcspb"
)

func TestPersistentID(t *testing.T) {
	tests := []struct {
		micros int64
		seq    uint64
		want   string
	}{
		{1454012460499237, 0x869bf29ef9fd7ecd, "0:1454012460499237%869bf29ef9fd7ecd"},
		{0, 0, "0:0000000000000000%0000000000000000"},
		{1, 1, "0:0000000000000001%0000000000000001"},
		{-5, math.MaxUint64, "0:0000000000000000%ffffffffffffffff"},
		{99999999999999999, 16, "0:9999999999999999%0000000000000010"},
	}
	for _, tt := range tests {
		got := NewPersistentID(tt.micros, tt.seq)
		if got != tt.want {
			t.Errorf("NewPersistentID(%d, %x) = %q, want %q", tt.micros, tt.seq, got, tt.want)
		}
		seq, ok := ParsePersistentID(got)
		if !ok || seq != tt.seq {
			t.Errorf("ParsePersistentID(%q) = %x, %v; want %x, true", got, seq, ok, tt.seq)
		}
	}
	for _, bad := range []string{
		"",
		"0:1454012460499237%869bf29ef9fd7ec",   // short
		"0:1454012460499237%869bf29ef9fd7ecdd", // long
		"1:1454012460499237%869bf29ef9fd7ecd",
		"0;1454012460499237%869bf29ef9fd7ecd",
		"0:1454012460499237#869bf29ef9fd7ecd",
		"0:145401246049923a%869bf29ef9fd7ecd",
		"0:1454012460499237%869BF29EF9FD7ECD", // upper case is not ours
		"0:1454012460499237%869bf29ef9fd7ecg",
	} {
		if seq, ok := ParsePersistentID(bad); ok {
			t.Errorf("ParsePersistentID(%q) = %x, true; want false", bad, seq)
		}
	}
	if got := testing.AllocsPerRun(100, func() { _ = NewPersistentID(1454012460499237, 7) }); got > 1 {
		t.Errorf("NewPersistentID allocates %v times, want at most 1", got)
	}
}

func TestDeviceID(t *testing.T) {
	if got, want := DeviceID(5242880123456789), "android-12a05f275bcd15"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestSelectiveAckIDs(t *testing.T) {
	ids, ok, err := SelectiveAckIDs(SelectiveAckIQ([]string{"a", "b"}))
	if !ok || err != nil || len(ids) != 2 || ids[0] != "a" || ids[1] != "b" {
		t.Errorf("round trip: got %q, %v, %v", ids, ok, err)
	}
	if ids, ok, err := SelectiveAckIDs(SelectiveAckIQ(nil)); !ok || err != nil || len(ids) != 0 {
		t.Errorf("empty: got %q, %v, %v", ids, ok, err)
	}
	if _, ok, err := SelectiveAckIDs(StreamAckIQ("", 1)); ok || err != nil {
		t.Errorf("stream ack: got %v, %v; want false, nil", ok, err)
	}
	if _, ok, _ := SelectiveAckIDs(&mcspb.IqStanza{}); ok {
		t.Error("iq without extension reported as selective ack")
	}
	if !IsStreamAck(StreamAckIQ("x", 1)) || IsStreamAck(SelectiveAckIQ(nil)) || IsStreamAck(&mcspb.IqStanza{}) {
		t.Error("IsStreamAck")
	}
}

func TestTagNames(t *testing.T) {
	tests := []struct {
		tag  byte
		want string
	}{
		{0, "HeartbeatPing"}, {3, "LoginResponse"}, {8, "DataMessageStanza"}, {15, "TalkMetadata"}, {16, "tag(16)"}, {255, "tag(255)"},
	}
	for _, tt := range tests {
		if got := TagName(tt.tag); got != tt.want {
			t.Errorf("TagName(%d) = %q, want %q", tt.tag, got, tt.want)
		}
	}
	for tag := 0; tag < 256; tag++ {
		want := tag == 0 || tag == 1 || tag == 3 || tag == 4 || tag == 7 || tag == 8
		if got := ServerSendTags.Has(byte(tag)); got != want {
			t.Errorf("ServerSendTags.Has(%d) = %v", tag, got)
		}
	}
}
