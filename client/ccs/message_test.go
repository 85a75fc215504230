package ccs

import (
	"encoding/json"
	"reflect"
	"testing"
)

// appendMessage must produce what encoding/json makes of the struct tags.
func TestAppendMessageMatchesEncodingJSON(t *testing.T) {
	msgs := []*Message{
		{To: "tok", MessageID: "m1"},
		{To: "/topics/news", MessageID: "m\"2\u2028", CollapseKey: "ck", Priority: "high", TimeToLive: TTL(0),
			DelayWhileIdle: true, DeliveryReceiptRequested: true, DryRun: true, ContentAvailable: true, MutableContent: true,
			RestrictedPackageName: "com.x", Data: map[string]string{"a": "b", "<k>": "v&\n\t\x01", "e": ""}},
		{Condition: "'a' in topics", MessageID: "m3", Notification: &Notification{Title: "t", Body: "b", BodyLocArgs: []string{"1"}}},
		{To: "bad\xffutf8", MessageID: "m4"},
	}
	for _, m := range msgs {
		var got, want map[string]any
		b := appendMessage(nil, m)
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("appendMessage %q: %v", b, err)
		}
		std, _ := json.Marshal(m)
		json.Unmarshal(std, &want)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("appendMessage\n got %s\nwant %s", b, std)
		}
	}
}

func TestAppendMessageAllocs(t *testing.T) {
	m := &Message{To: "cW_KBPUKj7k:APA91bE", MessageID: "m-1", TimeToLive: TTL(600), Data: map[string]string{"score": "5x1"}}
	buf := make([]byte, 0, 512)
	if n := testing.AllocsPerRun(100, func() { buf = appendMessage(buf[:0], m) }); n != 0 {
		t.Errorf("appendMessage allocates %.0f times", n)
	}
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "plain", "quo\"te", "back\\slash", "\x00\x1f", "\u2028\u2029", "bad\xff", "é€𝄞"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b := appendJSONString(nil, s)
		var got string
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("appendJSONString(%q) = %q: %v", s, b, err)
		}
		want, _ := json.Marshal(s)
		var w string
		json.Unmarshal(want, &w)
		if got != w {
			t.Fatalf("appendJSONString(%q) decodes to %q, encoding/json to %q", s, got, w)
		}
	})
}
