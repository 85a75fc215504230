package ccs

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestParsePayload(t *testing.T) {
	tests := []struct {
		in      string
		typ, id string
		from    string
		errCode string
		data    string
		ttl     int
		ok      bool
	}{
		{in: `{"message_type":"ack","from":"tok","message_id":"m1"}`, typ: "ack", id: "m1", from: "tok", ttl: -1, ok: true},
		{in: ` { "message_type" : "nack" , "message_id":"m\"2", "error":"BAD_ACK","error_description":"x"} `, typ: "nack", id: `m"2`, errCode: "BAD_ACK", ttl: -1, ok: true},
		{in: `{"category":"c","data":{"a":"b","n":{"x":[1,2,{"y":null}]}},"message_id":"u","from":"d","time_to_live":86400}`,
			id: "u", from: "d", data: `{"a":"b","n":{"x":[1,2,{"y":null}]}}`, ttl: 86400, ok: true},
		{in: `{"message_type":"control","control_type":"CONNECTION_DRAINING"}`, typ: "control", ttl: -1, ok: true},
		{in: `{}`, ttl: -1, ok: true},
		{in: `{"message_id":"\u00e9"}`, id: "é", ttl: -1, ok: true},
		{in: `[1]`},
		{in: `{"a":}`},
		{in: `{"a":1,}`},
		{in: `{"a":"b"} x`},
		{in: `{"a":"b`},
		{in: "{\"a\":\"\x01\"}"},
		{in: `{"a":[1,2}`},
		{in: ``},
	}
	for _, tt := range tests {
		var p payload
		err := parsePayload([]byte(tt.in), &p)
		if (err == nil) != tt.ok {
			t.Errorf("parsePayload(%q) error %v, want ok=%v", tt.in, err, tt.ok)
			continue
		}
		if !tt.ok {
			continue
		}
		ttl := -1
		if p.hasTTL {
			ttl = p.ttl
		}
		got := []string{string(p.messageType), p.str(fMessageID, p.messageID), p.str(fFrom, p.from), string(p.errCode), string(p.data)}
		want := []string{tt.typ, tt.id, tt.from, tt.errCode, tt.data}
		if !reflect.DeepEqual(got, want) || ttl != tt.ttl {
			t.Errorf("parsePayload(%q) = %q ttl %d, want %q ttl %d", tt.in, got, ttl, want, tt.ttl)
		}
	}
}

func TestParsePayloadAllocs(t *testing.T) {
	b := []byte(`{"message_type":"ack","from":"cW_KBPUKj7k:APA91bE","message_id":"m-123"}`)
	var p payload
	if n := testing.AllocsPerRun(100, func() { parsePayload(b, &p) }); n != 0 {
		t.Errorf("parsePayload allocates %.0f times", n)
	}
}

// FuzzParsePayload checks the scanner never panics and agrees with
// encoding/json on what is a valid object and on its string fields.
func FuzzParsePayload(f *testing.F) {
	for _, s := range []string{
		`{"message_type":"ack","from":"tok","message_id":"m1"}`,
		`{"category":"c","data":{"a":"b"},"message_id":"u","from":"d","time_to_live":86400}`,
		`{"message_id":"\u00e9\n","x":[true,false,null,-1.5e3]}`,
		`{"message_type":"control","control_type":"CONNECTION_DRAINING"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var p payload
		err := parsePayload(b, &p)
		var m map[string]any
		jerr := json.Unmarshal(b, &m)
		if err == nil && jerr != nil {
			// The scanner is lenient about number syntax and UTF-8; it must
			// never accept something that is not an object at all.
			var v any
			if json.Unmarshal(b, &v) == nil {
				if _, isObj := v.(map[string]any); !isObj {
					t.Fatalf("accepted non-object %q", b)
				}
			}
			return
		}
		if err != nil || jerr != nil {
			return
		}
		if s, ok := m["message_id"].(string); ok && p.messageID != nil && p.str(fMessageID, p.messageID) != s {
			// Duplicate keys: encoding/json keeps the last, so do we.
			t.Fatalf("message_id %q, encoding/json %q (input %q)", p.str(fMessageID, p.messageID), s, b)
		}
	})
}
