package gcm

import (
	"encoding/binary"
	"reflect"
	"testing"
)

func TestRecordRoundTrip(t *testing.T) {
	tests := []struct {
		name     string
		sender   string
		in       Inbound
		accepted int64
		want     Message
	}{
		{"minimal", "123", Inbound{To: []byte("REG"), MessageID: []byte("m-1"), TTL: MaxTTL}, 1700000000000,
			Message{SenderID: "123", To: "REG", MessageID: "m-1", TTL: MaxTTL, Accepted: 1700000000000}},
		{"every field", "123456789", Inbound{
			To: []byte("REG"), MessageID: []byte("m-1"), CollapseKey: []byte("ck"), TTL: 600,
			DelayWhileIdle: true, DryRun: true, DeliveryReceipt: true, ContentAvailable: true, MutableContent: true,
			Priority: PriorityHigh, RestrictedPackageName: []byte("com.example"),
			Data: []byte(`{"a":"b"}`), Notification: []byte(`{"title":"t"}`),
		}, 1, Message{
			SenderID: "123456789", To: "REG", MessageID: "m-1", CollapseKey: "ck", TTL: 600, Accepted: 1,
			DelayWhileIdle: true, DeliveryReceipt: true, ContentAvailable: true, MutableContent: true,
			Priority: PriorityHigh, RestrictedPackageName: "com.example",
			Data: []byte(`{"a":"b"}`), Notification: []byte(`{"title":"t"}`),
		}},
		{"notification only, ttl 0", "1", Inbound{To: []byte("R"), MessageID: []byte("m"), Notification: []byte(`{}`)}, -5,
			Message{SenderID: "1", To: "R", MessageID: "m", Accepted: -5, Notification: []byte(`{}`)}},
		{"empty data kept apart from nil", "1", Inbound{To: []byte("R"), MessageID: []byte("m"), Data: []byte{}}, 0,
			Message{SenderID: "1", To: "R", MessageID: "m", Data: []byte{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := AppendRecord([]byte("prefix"), []byte(tt.sender), &tt.in, tt.accepted)
			var got Message
			if err := DecodeRecord(rec[len("prefix"):], &got); err != nil {
				t.Fatalf("DecodeRecord: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("round trip\n got %+v\nwant %+v", got, tt.want)
			}
			if (got.Data == nil) != (tt.want.Data == nil) || (got.Notification == nil) != (tt.want.Notification == nil) {
				t.Errorf("nil-ness of Data/Notification lost: got %v/%v", got.Data == nil, got.Notification == nil)
			}
		})
	}
}

func TestRecordDecodeCopies(t *testing.T) {
	in := Inbound{To: []byte("REG"), MessageID: []byte("m-1"), Data: []byte(`{"a":"b"}`), Notification: []byte(`{}`)}
	rec := AppendRecord(nil, []byte("1"), &in, 0)
	var m Message
	if err := DecodeRecord(rec, &m); err != nil {
		t.Fatal(err)
	}
	for i := range rec {
		rec[i] = 'X'
	}
	if m.To != "REG" || string(m.Data) != `{"a":"b"}` || string(m.Notification) != `{}` {
		t.Errorf("decoded message changed with its record: %+v", m)
	}
	if m.Data = append(m.Data, '!'); string(m.Notification) != `{}` {
		t.Errorf("appending to Data overwrote Notification: %q", m.Notification)
	}
}

func TestRecordRejects(t *testing.T) {
	good := AppendRecord(nil, []byte("1"), &Inbound{To: []byte("REG"), MessageID: []byte("m-1"), Data: []byte(`{}`)}, 7)
	withTTL := func(ttl uint64) []byte {
		b := []byte{recordVersion, 0}
		b = binary.AppendUvarint(b, ttl)
		b = binary.AppendVarint(b, 0)
		return append(b, 0, 0, 0, 0, 0, 0, 0)
	}
	tests := []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "decode record: truncated"},
		{"version only", []byte{recordVersion}, "decode record: truncated"},
		{"unknown version", []byte{9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, "decode record: unknown version 9"},
		{"unknown flag", []byte{recordVersion, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0}, "decode record: unknown flags 0x80"},
		{"ttl out of range", withTTL(1 << 40), "decode record: time_to_live 1099511627776 out of range"},
		{"overlong varint", []byte{recordVersion, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, "decode record: truncated"},
		{"truncated", good[:len(good)-1], "decode record: truncated"},
		{"length past end", append(good[:len(good)-3:len(good)-3], 0x7f), "decode record: truncated"},
		{"trailing byte", append(good[:len(good):len(good)], 0), "decode record: trailing bytes"},
		{"data without flag", append(withTTL(0)[:9], 2, '{', '}', 0), "decode record: object present without its flag"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m Message
			err := DecodeRecord(tt.b, &m)
			if err == nil {
				t.Fatalf("DecodeRecord(%x) = nil, want %q", tt.b, tt.want)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("DecodeRecord(%x) = %q, want %q", tt.b, got, tt.want)
			}
		})
	}
}

func TestAppendRecordAllocs(t *testing.T) {
	var in Inbound
	js := []byte(everySend)
	if err := DecodeInbound(js, &in); err != nil {
		t.Fatal(err)
	}
	dst := make([]byte, 0, 1024)
	sender := []byte("123456789")
	if allocs := testing.AllocsPerRun(100, func() { dst = AppendRecord(dst[:0], sender, &in, 1700000000000) }); allocs != 0 {
		t.Errorf("AppendRecord allocates %v times with a presized dst, want 0", allocs)
	}
}
