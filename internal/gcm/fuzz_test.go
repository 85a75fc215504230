package gcm

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// plainJSON reports whether b is JSON that DecodeInbound and DataPairs must
// accept as syntax: valid for encoding/json, valid UTF-8 (encoding/json
// tolerates invalid UTF-8, ccsd refuses it) and nested at most maxDepth
// deep.
func plainJSON(b []byte) bool {
	if !json.Valid(b) || !utf8.Valid(b) {
		return false
	}
	d := json.NewDecoder(bytes.NewReader(b))
	depth := 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return true
		}
		if err != nil {
			return false
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			if depth++; depth > maxDepth {
				return false
			}
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
	}
}

func FuzzDecodeInbound(f *testing.F) {
	f.Add([]byte(typicalSend))
	f.Add([]byte(everySend))
	f.Fuzz(func(t *testing.T, js []byte) {
		orig := bytes.Clone(js)
		var in Inbound
		err := DecodeInbound(js, &in)
		if err != nil {
			var e *DecodeError
			if !errors.As(err, &e) {
				t.Fatalf("error %v (%T) is not a *DecodeError", err, err)
			}
			if e.Description == "" {
				t.Fatalf("DecodeError without a description: %+v", e)
			}
			if !e.StanzaError && e.Code == InvalidJSON && len(e.MessageID) == 0 {
				t.Fatalf("INVALID_JSON NACK without message_id: %+v", e)
			}
			if e.StanzaError && strings.Contains(e.Description, " at offset ") &&
				plainJSON(orig) && bytes.HasPrefix(bytes.TrimLeft(orig, " \t\r\n"), []byte("{")) {
				t.Fatalf("valid JSON object %q refused as unparseable: %s", orig, e.Description)
			}
			return
		}
		if !json.Valid(orig) {
			t.Fatalf("DecodeInbound accepted invalid JSON %q", orig)
		}
		var m map[string]any
		d := json.NewDecoder(bytes.NewReader(orig))
		d.UseNumber()
		if err := d.Decode(&m); err != nil {
			t.Fatalf("encoding/json cannot decode accepted %q: %v", orig, err)
		}
		if got, want := string(in.MessageID), m["message_id"]; got != want {
			t.Fatalf("message_id = %q, encoding/json says %q", got, want)
		}
		if to, ok := m["to"].(string); ok || in.Kind == InboundSend {
			if got := string(in.To); got != to {
				t.Fatalf("to = %q, encoding/json says %q", got, to)
			}
		}
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(orig, &raw); err != nil {
			t.Fatalf("encoding/json cannot decode accepted %q: %v", orig, err)
		}
		if in.Kind == InboundSend {
			for name, got := range map[string][]byte{"data": in.Data, "notification": in.Notification} {
				if got != nil && !bytes.Equal(got, raw[name]) {
					t.Fatalf("%s = %s, not the verbatim %s", name, got, raw[name])
				}
			}
			if n, ok := m["time_to_live"].(json.Number); ok {
				if got, want := string(n), strconv.Itoa(int(in.TTL)); got != want {
					t.Fatalf("time_to_live = %d, encoding/json says %s", in.TTL, n)
				}
			}
		}
	})
}

func FuzzRecord(f *testing.F) {
	f.Add([]byte{}, "123", "REG", "m-1", "ck", "com.example", []byte(`{"a":"b"}`), []byte(`{}`), int32(600), int64(1700000000000), uint8(0xff))
	f.Fuzz(func(t *testing.T, garbage []byte, sender, to, id, ck, rpn string, data, notif []byte, ttl int32, accepted int64, flags uint8) {
		// Garbage never panics, and what decodes re-encodes to the same message.
		var g Message
		if DecodeRecord(garbage, &g) == nil {
			again := AppendRecord(nil, []byte(g.SenderID), inboundOf(&g), g.Accepted)
			var g2 Message
			if err := DecodeRecord(again, &g2); err != nil || !reflect.DeepEqual(g, g2) {
				t.Fatalf("re-encoding %+v gave %+v, %v", g, g2, err)
			}
		}

		// A record of anything round-trips.
		if ttl < 0 {
			ttl = -(ttl + 1)
		}
		in := Inbound{
			To: []byte(to), MessageID: []byte(id), CollapseKey: []byte(ck), TTL: ttl,
			DelayWhileIdle: flags&1 != 0, DeliveryReceipt: flags&2 != 0,
			ContentAvailable: flags&4 != 0, MutableContent: flags&8 != 0,
			RestrictedPackageName: []byte(rpn),
		}
		if flags&16 != 0 {
			in.Priority = PriorityHigh
		}
		if flags&32 != 0 {
			in.Data = append([]byte{}, data...)
		}
		if flags&64 != 0 {
			in.Notification = append([]byte{}, notif...)
		}
		rec := AppendRecord(nil, []byte(sender), &in, accepted)
		var m Message
		if err := DecodeRecord(rec, &m); err != nil {
			t.Fatalf("DecodeRecord(AppendRecord(...)) = %v", err)
		}
		want := Message{
			SenderID: sender, To: to, MessageID: id, CollapseKey: ck, TTL: ttl, Accepted: accepted,
			DelayWhileIdle: in.DelayWhileIdle, DeliveryReceipt: in.DeliveryReceipt,
			ContentAvailable: in.ContentAvailable, MutableContent: in.MutableContent,
			Priority: in.Priority, RestrictedPackageName: rpn, Data: in.Data, Notification: in.Notification,
		}
		if !reflect.DeepEqual(m, want) {
			t.Fatalf("round trip\n got %+v\nwant %+v", m, want)
		}
		for i := range rec { // a truncated record is refused
			if DecodeRecord(rec[:i], &m) == nil {
				t.Fatalf("DecodeRecord accepted a record truncated to %d of %d bytes", i, len(rec))
			}
		}
	})
}

// inboundOf is the Inbound that AppendRecord would store as m.
func inboundOf(m *Message) *Inbound {
	return &Inbound{
		To: []byte(m.To), MessageID: []byte(m.MessageID), CollapseKey: []byte(m.CollapseKey), TTL: m.TTL,
		DelayWhileIdle: m.DelayWhileIdle, DeliveryReceipt: m.DeliveryReceipt,
		ContentAvailable: m.ContentAvailable, MutableContent: m.MutableContent,
		Priority: m.Priority, RestrictedPackageName: []byte(m.RestrictedPackageName),
		Data: m.Data, Notification: m.Notification,
	}
}

func FuzzDataPairs(f *testing.F) {
	f.Add([]byte(`{"a":"b","n":1,"o":{"x":[1,"\u00e9"]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		orig := bytes.Clone(data)
		var got []KV
		err := DataPairs(data, func(k, v string) { got = append(got, KV{k, v}) })
		if !bytes.Equal(data, orig) {
			t.Fatalf("DataPairs rewrote %q to %q", orig, data)
		}
		if err != nil {
			if got != nil {
				t.Fatalf("DataPairs failed (%v) after calling fn %d times", err, len(got))
			}
			if plainJSON(orig) && bytes.HasPrefix(bytes.TrimLeft(orig, " \t\r\n"), []byte("{")) {
				t.Fatalf("DataPairs refused the valid object %q: %v", orig, err)
			}
			return
		}
		if !json.Valid(orig) {
			t.Fatalf("DataPairs accepted invalid JSON %q", orig)
		}
		// The pairs are what encoding/json streams, in order.
		d := json.NewDecoder(bytes.NewReader(orig))
		if tok, err := d.Token(); err != nil || tok != json.Delim('{') {
			t.Fatalf("DataPairs accepted %q, which is not an object (%v, %v)", orig, tok, err)
		}
		var want []KV
		for d.More() {
			tok, err := d.Token()
			if err != nil {
				t.Fatal(err)
			}
			var v json.RawMessage
			if err := d.Decode(&v); err != nil {
				t.Fatal(err)
			}
			value := string(v)
			if len(v) > 0 && v[0] == '"' {
				if err := json.Unmarshal(v, &value); err != nil {
					t.Fatal(err)
				}
			}
			want = append(want, KV{tok.(string), value})
		}
		if !equalKV(got, want) {
			t.Fatalf("DataPairs(%q)\n got %q\nwant %q", orig, got, want)
		}
	})
}
