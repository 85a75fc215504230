package gcm

import (
	"errors"
	"strings"
	"testing"
)

// inboundView is an Inbound with strings, comparable with ==.
type inboundView struct {
	Kind                   InboundKind
	MessageID, To          string
	CollapseKey            string
	TTL                    int32
	DelayWhileIdle, DryRun bool
	DeliveryReceipt        bool
	ContentAvailable       bool
	MutableContent         bool
	Priority               Priority
	RestrictedPackageName  string
	Data, Notification     string
}

func viewInbound(in *Inbound) inboundView {
	return inboundView{
		Kind: in.Kind, MessageID: string(in.MessageID), To: string(in.To),
		CollapseKey: string(in.CollapseKey), TTL: in.TTL,
		DelayWhileIdle: in.DelayWhileIdle, DryRun: in.DryRun, DeliveryReceipt: in.DeliveryReceipt,
		ContentAvailable: in.ContentAvailable, MutableContent: in.MutableContent,
		Priority: in.Priority, RestrictedPackageName: string(in.RestrictedPackageName),
		Data: string(in.Data), Notification: string(in.Notification),
	}
}

// errorView is a DecodeError with strings, comparable with ==.
type errorView struct {
	Code        ErrorCode
	Description string
	StanzaError bool
	MessageID   string
	To          string
}

func viewError(t *testing.T, err error) errorView {
	t.Helper()
	var e *DecodeError
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a *DecodeError", err, err)
	}
	return errorView{e.Code, e.Description, e.StanzaError, string(e.MessageID), string(e.To)}
}

// send is the Inbound of a send to REG with id m-1 and defaults.
func send(mod func(v *inboundView)) inboundView {
	v := inboundView{Kind: InboundSend, MessageID: "m-1", To: "REG", TTL: MaxTTL}
	if mod != nil {
		mod(&v)
	}
	return v
}

func TestDecodeInboundAccepts(t *testing.T) {
	every := `{"to":"REG","message_id":"m-1","collapse_key":"ck","time_to_live":600,` +
		`"delay_while_idle":true,"dry_run":true,"delivery_receipt_requested":true,` +
		`"content_available":true,"mutable_content":true,"priority":"high",` +
		`"restricted_package_name":"com.example","data":{"a":"b","n":1},` +
		`"notification":{"title":"t","body":"b","badge":3}}`
	tests := []struct {
		name string
		js   string
		want inboundView
	}{
		{"typical", `{"to":"REG","message_id":"m-1","data":{"hello":"world"}}`,
			send(func(v *inboundView) { v.Data = `{"hello":"world"}` })},
		{"every field", every, send(func(v *inboundView) {
			v.CollapseKey, v.TTL = "ck", 600
			v.DelayWhileIdle, v.DryRun, v.DeliveryReceipt, v.ContentAvailable, v.MutableContent = true, true, true, true, true
			v.Priority, v.RestrictedPackageName = PriorityHigh, "com.example"
			v.Data, v.Notification = `{"a":"b","n":1}`, `{"title":"t","body":"b","badge":3}`
		})},
		{"surrounding whitespace", "\n  \t{ \"to\" : \"REG\" ,\r\n \"message_id\":\"m-1\" }\n ", send(nil)},
		{"escapes unescaped in place", `{"to":"R\u0045G","message_id":"m\/1\n\"\\\t\u00e9\ud83d\ude00"}`,
			send(func(v *inboundView) { v.MessageID = "m/1\n\"\\\té😀" })},
		{"escaped key", `{"\u0074o":"REG","message_\u0069d":"m-1"}`, send(nil)},
		{"lone surrogate becomes U+FFFD", `{"to":"REG","message_id":"a\ud800b\udc00c\ud800\u0041"}`,
			send(func(v *inboundView) { v.MessageID = "a\uFFFDb\uFFFDc\uFFFDA" })},
		{"raw UTF-8", `{"to":"RÉG","message_id":"m-1"}`, send(func(v *inboundView) { v.To = "RÉG" })},
		{"data kept verbatim", `{"to":"REG","message_id":"m-1","data":{ "k\u0041" : "a\"b\u00e9" , "x":[1,{"y":null}] }}`,
			send(func(v *inboundView) { v.Data = `{ "k\u0041" : "a\"b\u00e9" , "x":[1,{"y":null}] }` })},
		{"notification kept verbatim", `{"to":"REG","message_id":"m-1","notification":{"title":"\u00e9","body_loc_args":["a"]}}`,
			send(func(v *inboundView) { v.Notification = `{"title":"\u00e9","body_loc_args":["a"]}` })},
		{"unknown fields ignored", `{"x":{"y":[1,2,{"z":"\u0000"}]},"to":"REG","message_id":"m-1","from":"me","badge":-1.5e3}`, send(nil)},
		{"null options are absent", `{"to":"REG","message_id":"m-1","time_to_live":null,"dry_run":null,"priority":null,"data":null,"notification":null,"collapse_key":null,"registration_ids":null,"message_type":null}`, send(nil)},
		{"false booleans", `{"to":"REG","message_id":"m-1","delay_while_idle":false,"dry_run":false}`, send(nil)},
		{"ttl 0", `{"to":"REG","message_id":"m-1","time_to_live":0}`, send(func(v *inboundView) { v.TTL = 0 })},
		{"ttl max", `{"to":"REG","message_id":"m-1","time_to_live":2419200}`, send(nil)},
		{"priority normal", `{"to":"REG","message_id":"m-1","priority":"normal"}`, send(nil)},
		{"duplicate keys: last wins", `{"to":"A","message_id":"m-0","to":"REG","message_id":"m-1"}`, send(nil)},
		{"reserved-looking keys allowed", `{"to":"REG","message_id":"m-1","data":{"fromage":"1","gc":"2","goog":"3","Google":"4","collapse_key":"5"}}`,
			send(func(v *inboundView) {
				v.Data = `{"fromage":"1","gc":"2","goog":"3","Google":"4","collapse_key":"5"}`
			})},
		{"data of exactly 4096 bytes", `{"to":"REG","message_id":"m-1","data":{"k":"` + strings.Repeat("v", 4095) + `"}}`,
			send(func(v *inboundView) { v.Data = `{"k":"` + strings.Repeat("v", 4095) + `"}` })},
		{"ack", `{"to":"REG","message_id":"m-1","message_type":"ack"}`,
			inboundView{Kind: InboundAck, MessageID: "m-1", To: "REG"}},
		{"ack of a receipt, no to", `{"message_type":"ack","message_id":"dr2:m-1"}`,
			inboundView{Kind: InboundAck, MessageID: "dr2:m-1"}},
		{"ack ignores send fields", `{"message_type":"ack","message_id":"m-1","time_to_live":"x","data":5}`,
			inboundView{Kind: InboundAck, MessageID: "m-1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := Inbound{TTL: -5, Data: []byte("stale")}
			if err := DecodeInbound([]byte(tt.js), &in); err != nil {
				t.Fatalf("DecodeInbound(%s) = %v", tt.js, err)
			}
			if got := viewInbound(&in); got != tt.want {
				t.Errorf("DecodeInbound(%s)\n got %+v\nwant %+v", tt.js, got, tt.want)
			}
		})
	}
}

func TestDecodeInboundRefuses(t *testing.T) {
	const ok = `"to":"REG","message_id":"m-1"`
	nack := func(desc string) errorView {
		return errorView{Code: InvalidJSON, Description: desc, MessageID: "m-1", To: "REG"}
	}
	stanza := func(desc string) errorView {
		return errorView{Code: InvalidJSON, Description: prefixParse + desc, StanzaError: true}
	}
	typeErr := func(field, java, v string) errorView {
		return nack(`InvalidJson: JSON_TYPE_ERROR : Field "` + field + `" must be a JSON ` + java + `: ` + v)
	}
	ttlErr := func(v string) errorView {
		return nack(`InvalidJson: INVALID_TTL : Invalid value (` + v + `) for "time_to_live": must be between 0 and 2419200`)
	}
	tests := []struct {
		name string
		js   string
		want errorView
	}{
		// Not JSON, or not one object: stanza errors.
		{"empty", ``, stanza("empty payload at offset 0")},
		{"blank", " \n", stanza("empty payload at offset 2")},
		{"text", `hello`, stanza("the payload is not a JSON object at offset 0")},
		{"array", `[1]`, stanza("the payload is not a JSON object at offset 0")},
		{"string", `"x"`, stanza("the payload is not a JSON object at offset 0")},
		{"trailing garbage", `{` + ok + `} x`, stanza("trailing data after the JSON object at offset 32")},
		{"two objects", `{` + ok + `}{}`, stanza("trailing data after the JSON object at offset 31")},
		{"trailing comma", `{` + ok + `,}`, stanza("expected a string key at offset 31")},
		{"single quotes", `{'to':'x'}`, stanza("expected a string key at offset 1")},
		{"unterminated", `{` + ok, stanza("expected ',' or '}' at offset 30")},
		{"unterminated string", `{"to":"REG`, stanza("unterminated string at offset 10")},
		{"missing colon", `{"to" "x"}`, stanza("expected ':' at offset 6")},
		{"bad escape", `{` + ok + `,"x":"\x"}`, stanza("invalid escape in string at offset 36")},
		{"short unicode escape", `{"to":"\u12"}`, stanza("invalid escape in string at offset 7")},
		{"control character", "{\"to\":\"a\tb\"}", stanza("control character in string at offset 8")},
		{"invalid UTF-8", "{\"to\":\"a\xffb\"}", stanza("invalid UTF-8 in string at offset 8")},
		{"invalid UTF-8 in data", "{\"data\":{\"k\":\"\xc3\"}}", stanza("invalid UTF-8 in string at offset 14")},
		{"encoded surrogate", "{\"to\":\"\xed\xa0\x80\"}", stanza("invalid UTF-8 in string at offset 7")},
		{"leading zero", `{"x":01}`, stanza("expected ',' or '}' at offset 6")},
		{"bare minus", `{"x":-}`, stanza("invalid number at offset 6")},
		{"dot without digits", `{"x":1.}`, stanza("invalid number at offset 7")},
		{"exponent without digits", `{"x":1e+}`, stanza("invalid number at offset 8")},
		{"plus sign", `{"x":+1}`, stanza("unexpected character at offset 5")},
		{"bad literal", `{"x":tru}`, stanza("invalid literal at offset 5")},
		{"NaN", `{"x":NaN}`, stanza("unexpected character at offset 5")},
		{"too deep", `{"x":` + strings.Repeat("[", 64) + strings.Repeat("]", 64) + `}`, stanza("nesting too deep at offset 68")},
		{"too deep in data", `{"data":` + strings.Repeat(`{"a":`, 64) + `1` + strings.Repeat("}", 64) + `}`, stanza("nesting too deep at offset 323")},
		{"BOM", "\xef\xbb\xbf{}", stanza("the payload is not a JSON object at offset 0")},

		// No usable message_id: stanza errors.
		{"no message_id", `{"to":"REG"}`, stanza("Missing Required Field: message_id")},
		{"empty object", `{}`, stanza("Missing Required Field: message_id")},
		{"empty message_id", `{"to":"REG","message_id":""}`, stanza("Missing Required Field: message_id")},
		{"null message_id", `{"to":"REG","message_id":null}`, stanza("Missing Required Field: message_id")},
		{"numeric message_id", `{"to":"REG","message_id":42}`, errorView{Code: InvalidJSON, StanzaError: true,
			Description: `InvalidJson: JSON_TYPE_ERROR : Field "message_id" must be a JSON java.lang.String: 42`}},
		{"nack without message_id", `{"message_type":"nack"}`, stanza("Missing Required Field: message_id")},

		// message_type.
		{"nack from app server", `{` + ok + `,"message_type":"nack"}`,
			nack(`InvalidJson: JSON_PARSING_ERROR : message_type "nack" is not accepted from app servers`)},
		{"receipt from app server", `{` + ok + `,"message_type":"receipt"}`,
			nack(`InvalidJson: JSON_PARSING_ERROR : message_type "receipt" is not accepted from app servers`)},
		{"control from app server", `{` + ok + `,"message_type":"control"}`,
			nack(`InvalidJson: JSON_PARSING_ERROR : message_type "control" is not accepted from app servers`)},
		{"unknown message_type", `{` + ok + `,"message_type":"ACK"}`,
			nack(`InvalidJson: JSON_PARSING_ERROR : message_type "ACK" is not accepted from app servers`)},
		{"numeric message_type", `{` + ok + `,"message_type":1}`, typeErr("message_type", "java.lang.String", "1")},

		// ACKs.
		{"ack without message_id", `{"to":"REG","message_type":"ack"}`,
			errorView{Code: BadAck, Description: "Missing Required Field: message_id", To: "REG"}},
		{"ack with empty message_id", `{"message_type":"ack","message_id":""}`,
			errorView{Code: BadAck, Description: "Missing Required Field: message_id"}},
		{"ack with numeric message_id", `{"message_type":"ack","message_id":7}`,
			errorView{Code: BadAck, Description: `Field "message_id" must be a JSON java.lang.String: 7`}},
		{"ack with numeric to", `{"message_type":"ack","message_id":"m-1","to":7}`,
			errorView{Code: BadAck, Description: `Field "to" must be a JSON java.lang.String: 7`, MessageID: "m-1"}},

		// Targets.
		{"no to", `{"message_id":"m-1"}`, errorView{Code: InvalidJSON, MessageID: "m-1",
			Description: "InvalidJson: JSON_PARSING_ERROR : Missing Required Field: to"}},
		{"empty to", `{"message_id":"m-1","to":""}`, errorView{Code: InvalidJSON, MessageID: "m-1",
			Description: "InvalidJson: JSON_PARSING_ERROR : Missing Required Field: to"}},
		{"numeric to", `{"message_id":"m-1","to":5}`, errorView{Code: InvalidJSON, MessageID: "m-1",
			Description: `InvalidJson: JSON_TYPE_ERROR : Field "to" must be a JSON java.lang.String: 5`}},
		{"registration_ids", `{"message_id":"m-1","registration_ids":["a","b"]}`, errorView{Code: InvalidJSON, MessageID: "m-1",
			Description: `InvalidJson: JSON_PARSING_ERROR : Field "registration_ids" is not supported over XMPP: send to one registration with "to"`}},
		{"condition", `{` + ok + `,"condition":"'a' in topics"}`,
			nack(`InvalidJson: JSON_PARSING_ERROR : Field "condition" is not supported over XMPP: send to one registration with "to"`)},
		{"notification_key", `{` + ok + `,"notification_key":"k"}`,
			nack(`InvalidJson: JSON_PARSING_ERROR : Field "notification_key" is not supported over XMPP: send to one registration with "to"`)},

		// time_to_live.
		{"ttl string", `{` + ok + `,"time_to_live":"abc"}`, typeErr("time_to_live", "java.lang.Number", "abc")},
		{"ttl numeric string", `{` + ok + `,"time_to_live":"600"}`, typeErr("time_to_live", "java.lang.Number", "600")},
		{"ttl boolean", `{` + ok + `,"time_to_live":true}`, typeErr("time_to_live", "java.lang.Number", "true")},
		{"ttl negative", `{` + ok + `,"time_to_live":-1}`, ttlErr("-1")},
		{"ttl too big", `{` + ok + `,"time_to_live":2419201}`, ttlErr("2419201")},
		{"ttl huge", `{` + ok + `,"time_to_live":99999999999999999999}`, ttlErr("99999999999999999999")},
		{"ttl fraction", `{` + ok + `,"time_to_live":1.5}`, ttlErr("1.5")},
		{"ttl exponent", `{` + ok + `,"time_to_live":1e3}`, ttlErr("1e3")},
		{"ttl negative zero", `{` + ok + `,"time_to_live":-0}`, ttlErr("-0")},

		// Booleans.
		{"delay_while_idle string", `{` + ok + `,"delay_while_idle":"true"}`, typeErr("delay_while_idle", "java.lang.Boolean", "true")},
		{"dry_run number", `{` + ok + `,"dry_run":1}`, typeErr("dry_run", "java.lang.Boolean", "1")},
		{"delivery_receipt_requested string", `{` + ok + `,"delivery_receipt_requested":"yes"}`, typeErr("delivery_receipt_requested", "java.lang.Boolean", "yes")},
		{"content_available object", `{` + ok + `,"content_available":{}}`, typeErr("content_available", "java.lang.Boolean", "{}")},
		{"mutable_content array", `{` + ok + `,"mutable_content":[true]}`, typeErr("mutable_content", "java.lang.Boolean", "[true]")},

		// Strings and priority.
		{"collapse_key number", `{` + ok + `,"collapse_key":1}`, typeErr("collapse_key", "java.lang.String", "1")},
		{"restricted_package_name boolean", `{` + ok + `,"restricted_package_name":true}`, typeErr("restricted_package_name", "java.lang.String", "true")},
		{"priority unknown", `{` + ok + `,"priority":"urgent"}`,
			nack(`InvalidJson: JSON_PARSING_ERROR : Invalid value (urgent) for "priority": must be "normal" or "high"`)},
		{"priority APNs number", `{` + ok + `,"priority":10}`, typeErr("priority", "java.lang.String", "10")},
		{"priority APNs string", `{` + ok + `,"priority":"10"}`,
			nack(`InvalidJson: JSON_PARSING_ERROR : Invalid value (10) for "priority": must be "normal" or "high"`)},

		// data and notification.
		{"data string", `{` + ok + `,"data":"k=v"}`, nack(`InvalidJson: JSON_TYPE_ERROR : Field "data" must be a JSON object: k=v`)},
		{"data array", `{` + ok + `,"data":[1]}`, nack(`InvalidJson: JSON_TYPE_ERROR : Field "data" must be a JSON object: [1]`)},
		{"notification string", `{` + ok + `,"notification":"hi"}`, nack(`InvalidJson: JSON_TYPE_ERROR : Field "notification" must be a JSON object: hi`)},
		{"data key from", `{` + ok + `,"data":{"a":"b","from":"x"}}`, nack(dataKeyErr("from"))},
		{"data key gcm", `{` + ok + `,"data":{"gcm":"x"}}`, nack(dataKeyErr("gcm"))},
		{"data key google.", `{` + ok + `,"data":{"google.sent_time":"x"}}`, nack(dataKeyErr("google.sent_time"))},
		{"data key google", `{` + ok + `,"data":{"googleapis":1}}`, nack(dataKeyErr("googleapis"))},
		{"escaped data key from", `{` + ok + `,"data":{"fr\u006fm":"x"}}`, nack(dataKeyErr("from"))},
		{"first reserved key is named", `{` + ok + `,"data":{"gcm":1,"from":2}}`, nack(dataKeyErr("gcm"))},
		{"data too big", `{` + ok + `,"data":{"k":"` + strings.Repeat("v", 4096) + `"}}`,
			nack("InvalidJson: MESSAGE_TOO_BIG : data has 4097 bytes of keys and values; the limit is 4096")},
		{"data too big decoded", `{` + ok + `,"data":{"k":"` + strings.Repeat(`\u00e9`, 2048) + `"}}`,
			nack("InvalidJson: MESSAGE_TOO_BIG : data has 4097 bytes of keys and values; the limit is 4096")},
		{"data too big with numbers", `{` + ok + `,"data":{"k":` + strings.Repeat("1", 4096) + `}}`,
			nack("InvalidJson: MESSAGE_TOO_BIG : data has 4097 bytes of keys and values; the limit is 4096")},

		// Order of checks and what is echoed.
		{"first problem reported", `{"time_to_live":"x","dry_run":1,` + ok + `}`, typeErr("time_to_live", "java.lang.Number", "x")},
		{"numeric to is not echoed", `{"to":1,"message_id":"m-1","dry_run":1}`, errorView{Code: InvalidJSON, MessageID: "m-1",
			Description: `InvalidJson: JSON_TYPE_ERROR : Field "to" must be a JSON java.lang.String: 1`}},
		{"long values are clipped", `{` + ok + `,"collapse_key":` + strings.Repeat("1", 200) + `}`,
			typeErr("collapse_key", "java.lang.String", strings.Repeat("1", 100)+"...")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var in Inbound
			err := DecodeInbound([]byte(tt.js), &in)
			if err == nil {
				t.Fatalf("DecodeInbound(%.80s) = nil, want %+v", tt.js, tt.want)
			}
			if got := viewError(t, err); got != tt.want {
				t.Errorf("DecodeInbound(%.80s)\n got %+v\nwant %+v", tt.js, got, tt.want)
			}
		})
	}
}

func dataKeyErr(key string) string {
	return `InvalidDataKey: data key "` + key + `" is reserved ("from", "gcm" and keys starting with "google" are)`
}

func TestDecodeInboundClipsAtRuneBoundary(t *testing.T) {
	js := `{"to":"REG","message_id":"m-1","priority":"` + strings.Repeat("a", 99) + `é"}`
	got := viewError(t, DecodeInbound([]byte(js), new(Inbound))).Description
	want := prefixParse + "Invalid value (" + strings.Repeat("a", 99) + `...) for "priority": must be "normal" or "high"`
	if got != want {
		t.Errorf("description\n got %q\nwant %q", got, want)
	}
}

func TestDecodeErrorError(t *testing.T) {
	e := &DecodeError{Code: BadAck, Description: "Missing Required Field: message_id"}
	if got, want := e.Error(), "BAD_ACK: Missing Required Field: message_id"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

// typicalSend and everySend are the payloads of the allocation tests and
// benchmarks.
const (
	typicalSend = `{"to":"cW_KBPUKj7k:APA91bE-registration-token-of-a-device-0123456789","message_id":"m-1234567",` +
		`"time_to_live":3600,"data":{"score":"5x1","time":"15:10"}}`
	everySend = `{"to":"cW_KBPUKj7k:APA91bE-registration-token","message_id":"m-1\u00e9","collapse_key":"score",` +
		`"time_to_live":600,"delay_while_idle":true,"dry_run":false,"delivery_receipt_requested":true,` +
		`"content_available":true,"mutable_content":false,"priority":"high","restricted_package_name":"com.example.app",` +
		`"data":{"score":"5\"x1","n":42,"nested":{"a":[1,2]}},"notification":{"title":"Goal","body":"5x1","badge":1},` +
		`"unknown":{"x":[true,null]}}`
)

func TestDecodeInboundAllocs(t *testing.T) {
	for _, js := range []string{typicalSend, everySend, `{"to":"REG","message_id":"m-1","message_type":"ack"}`} {
		buf := []byte(js)
		work := make([]byte, len(buf))
		var in Inbound
		allocs := testing.AllocsPerRun(100, func() {
			copy(work, buf)
			if err := DecodeInbound(work, &in); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("DecodeInbound(%.40s...) allocates %v times, want 0", js, allocs)
		}
	}
}

func TestDecodeInboundAliasesInput(t *testing.T) {
	js := []byte(`{"to":"REG","message_id":"m-1"}`)
	var in Inbound
	if err := DecodeInbound(js, &in); err != nil {
		t.Fatal(err)
	}
	js[7] = 'X' // the R of REG
	if got, want := string(in.To), "XEG"; got != want {
		t.Errorf("To after rewriting js = %q, want %q (aliasing js)", got, want)
	}
}
