package gcm

import (
	"encoding/json"
	"testing"
)

func TestAppendAck(t *testing.T) {
	tests := []struct {
		name                     string
		from, id, canonical, pre string
		want                     string
	}{
		{"plain", "REG", "m-1", "", "", `{"message_type":"ack","from":"REG","message_id":"m-1"}`},
		{"canonical", "OLD", "m-1", "NEW", "", `{"message_type":"ack","from":"OLD","message_id":"m-1","registration_id":"NEW"}`},
		{"appends", "REG", "m-1", "", "<x>", `<x>{"message_type":"ack","from":"REG","message_id":"m-1"}`},
		{"escaped", "a\"b\\c", "<&>\n\x01é", "", "",
			`{"message_type":"ack","from":"a\"b\\c","message_id":"\u003c\u0026\u003e\n\u0001é"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(AppendAck([]byte(tt.pre), []byte(tt.from), []byte(tt.id), []byte(tt.canonical)))
			if got != tt.want {
				t.Errorf("AppendAck\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestAppendNack(t *testing.T) {
	tests := []struct {
		name     string
		from, id string
		code     ErrorCode
		desc     string
		want     string
	}{
		{"full", "REG", "m-1", BadRegistration, "Invalid token on 'to' field: REG",
			`{"message_type":"nack","from":"REG","message_id":"m-1","error":"BAD_REGISTRATION","error_description":"Invalid token on 'to' field: REG"}`},
		{"quoted description", "REG", "m-1", InvalidJSON, `InvalidJson: JSON_TYPE_ERROR : Field "time_to_live" must be a JSON java.lang.Number: abc`,
			`{"message_type":"nack","from":"REG","message_id":"m-1","error":"INVALID_JSON","error_description":"InvalidJson: JSON_TYPE_ERROR : Field \"time_to_live\" must be a JSON java.lang.Number: abc"}`},
		{"no from", "", "m-1", InvalidJSON, "Missing Required Field: to",
			`{"message_type":"nack","message_id":"m-1","error":"INVALID_JSON","error_description":"Missing Required Field: to"}`},
		{"bad ack without id", "", "", BadAck, "Missing Required Field: message_id",
			`{"message_type":"nack","error":"BAD_ACK","error_description":"Missing Required Field: message_id"}`},
		{"no description", "REG", "m-1", ConnectionDraining, "",
			`{"message_type":"nack","from":"REG","message_id":"m-1","error":"CONNECTION_DRAINING"}`},
		{"invalid UTF-8", "R\xffG", "m-1", ServiceUnavailable, "x\xc3",
			`{"message_type":"nack","from":"R\ufffdG","message_id":"m-1","error":"SERVICE_UNAVAILABLE","error_description":"x\ufffd"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(AppendNack(nil, []byte(tt.from), []byte(tt.id), tt.code, tt.desc))
			if got != tt.want {
				t.Errorf("AppendNack\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestAppendControlDraining(t *testing.T) {
	got := string(AppendControlDraining(nil))
	if want := `{"message_type":"control","control_type":"CONNECTION_DRAINING"}`; got != want {
		t.Errorf("AppendControlDraining\n got %s\nwant %s", got, want)
	}
}

func TestAppendUpstream(t *testing.T) {
	tests := []struct {
		name string
		u    Upstream
		want string
	}{
		{"spec example", Upstream{From: "REG", Category: "pkg", MessageID: "m-1", TTL: 86400, Data: []KV{{"k", "v"}}},
			`{"category":"pkg","data":{"k":"v"},"message_id":"m-1","from":"REG","time_to_live":86400}`},
		{"no ttl, no data", Upstream{From: "REG", Category: "pkg", MessageID: "m-1", TTL: -1},
			`{"category":"pkg","data":{},"message_id":"m-1","from":"REG"}`},
		{"ttl 0, pairs escaped", Upstream{From: "REG", Category: "com.example", MessageID: "m\"2",
			Data: []KV{{"a", "1"}, {"b\n", "<x>"}, {"", ""}}},
			`{"category":"com.example","data":{"a":"1","b\n":"\u003cx\u003e","":""},"message_id":"m\"2","from":"REG","time_to_live":0}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(AppendUpstream(nil, &tt.u))
			if got != tt.want {
				t.Errorf("AppendUpstream\n got %s\nwant %s", got, tt.want)
			}
			if !json.Valid([]byte(got)) {
				t.Errorf("AppendUpstream wrote invalid JSON %s", got)
			}
		})
	}
}

func TestAppendReceipt(t *testing.T) {
	r := Receipt{OriginalMessageID: "ORIG", DeviceRegistrationID: "REG", Category: "pkg", SentTimestamp: 1445893436126}
	got := string(AppendReceipt(nil, &r))
	want := `{"message_type":"receipt","from":"gcm.googleapis.com","message_id":"dr2:ORIG","category":"pkg",` +
		`"data":{"message_status":"MESSAGE_SENT_TO_DEVICE","original_message_id":"ORIG","device_registration_id":"REG",` +
		`"message_sent_timestamp":"1445893436126"},"time_to_live":0}`
	if got != want {
		t.Errorf("AppendReceipt\n got %s\nwant %s", got, want)
	}
	r.OriginalMessageID = `a"b`
	got = string(AppendReceipt(nil, &r))
	var v struct {
		MessageID string `json:"message_id"`
		Data      struct {
			Original string `json:"original_message_id"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(got), &v); err != nil {
		t.Fatalf("receipt %s is not JSON: %v", got, err)
	}
	if v.MessageID != `dr2:a"b` || v.Data.Original != `a"b` {
		t.Errorf("receipt ids = %q, %q; want %q, %q", v.MessageID, v.Data.Original, `dr2:a"b`, `a"b`)
	}
}

// TestAppendQuotedMatchesJSON checks that every string round-trips through
// encoding/json (invalid UTF-8 as U+FFFD, as encoding/json also does).
func TestAppendQuotedMatchesJSON(t *testing.T) {
	for _, s := range []string{"", "plain", "\x00\x1f\x7f", "\"\\/", "<&>", "é😀", "\u2028", "a\xffb", "\xed\xa0\x80", "\xf0\x9f\x98"} {
		got := appendQuoted(nil, s)
		var back string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Errorf("appendQuoted(%q) = %s, not JSON: %v", s, got, err)
			continue
		}
		want, _ := json.Marshal(s)
		var wantBack string
		json.Unmarshal(want, &wantBack)
		if back != wantBack {
			t.Errorf("appendQuoted(%q) decodes to %q, want %q", s, back, wantBack)
		}
		if b := appendQuoted(nil, []byte(s)); string(b) != string(got) {
			t.Errorf("appendQuoted([]byte(%q)) = %s, want %s", s, b, got)
		}
	}
}

func TestEncodersAllocs(t *testing.T) {
	dst := make([]byte, 0, 1024)
	from, id, canon := []byte("cW_KBPUKj7k:APA91bE-registration"), []byte("m-1234567"), []byte("canonical")
	u := Upstream{From: "REG", Category: "com.example", MessageID: "m-1", TTL: 86400, Data: []KV{{"k", "v"}, {"x", "<y>"}}}
	r := Receipt{OriginalMessageID: "ORIG", DeviceRegistrationID: "REG", Category: "pkg", SentTimestamp: 1445893436126}
	for name, fn := range map[string]func(){
		"AppendAck":      func() { dst = AppendAck(dst[:0], from, id, canon) },
		"AppendNack":     func() { dst = AppendNack(dst[:0], from, id, InvalidJSON, "Missing \"x\"") },
		"AppendUpstream": func() { dst = AppendUpstream(dst[:0], &u) },
		"AppendReceipt":  func() { dst = AppendReceipt(dst[:0], &r) },
	} {
		if allocs := testing.AllocsPerRun(100, fn); allocs != 0 {
			t.Errorf("%s allocates %v times with a presized dst, want 0", name, allocs)
		}
	}
}
