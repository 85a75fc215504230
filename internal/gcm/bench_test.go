package gcm

import "testing"

func BenchmarkDecodeInbound(b *testing.B) {
	for _, bm := range []struct{ name, js string }{
		{"typical", typicalSend},
		{"every", everySend},
		{"ack", `{"to":"cW_KBPUKj7k:APA91bE-registration-token","message_id":"m-1234567","message_type":"ack"}`},
	} {
		b.Run(bm.name, func(b *testing.B) {
			src := []byte(bm.js)
			work := make([]byte, len(src))
			var in Inbound
			b.SetBytes(int64(len(src)))
			b.ReportAllocs()
			for b.Loop() {
				copy(work, src)
				if err := DecodeInbound(work, &in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkAppendAck(b *testing.B) {
	dst := make([]byte, 0, 256)
	from := []byte("cW_KBPUKj7k:APA91bE-registration-token-of-a-device-0123456789")
	id := []byte("m-1234567")
	b.ReportAllocs()
	for b.Loop() {
		dst = AppendAck(dst[:0], from, id, nil)
	}
}

func BenchmarkAppendRecord(b *testing.B) {
	var in Inbound
	if err := DecodeInbound([]byte(typicalSend), &in); err != nil {
		b.Fatal(err)
	}
	dst := make([]byte, 0, 512)
	sender := []byte("123456789012")
	b.ReportAllocs()
	for b.Loop() {
		dst = AppendRecord(dst[:0], sender, &in, 1700000000000)
	}
}

func BenchmarkDecodeRecord(b *testing.B) {
	var in Inbound
	if err := DecodeInbound([]byte(typicalSend), &in); err != nil {
		b.Fatal(err)
	}
	rec := AppendRecord(nil, []byte("123456789012"), &in, 1700000000000)
	var m Message
	b.ReportAllocs()
	for b.Loop() {
		if err := DecodeRecord(rec, &m); err != nil {
			b.Fatal(err)
		}
	}
}
