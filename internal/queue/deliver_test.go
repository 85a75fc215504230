package queue

import (
	"context"
	"strconv"
	"testing"

	"github.com/ccsd/ccsd/internal/gcm"
)

// TestReadDeviceBatch: the batched direct get returns what the one-by-one
// read returns, page by page, and nothing of other devices.
func TestReadDeviceBatch(t *testing.T) {
	ctx := context.Background()
	q, node := open(t, t.TempDir())
	defer node.Close()
	defer q.Close()
	store := func(aid uint64, id string, collapse []byte) {
		t.Helper()
		in := gcm.Inbound{Kind: gcm.InboundSend, To: []byte("REG"), MessageID: []byte(id), CollapseKey: collapse, TTL: gcm.MaxTTL, Data: []byte(`{"k":"` + id + `"}`)}
		p, err := q.PublishDown(DownSubject(aid, "REG", collapse), collapse != nil, in.TTL, gcm.AppendRecord(nil, []byte("123"), &in, 1))
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 7 {
		store(7, "a"+strconv.Itoa(i), nil)
		store(8, "b"+strconv.Itoa(i), nil)
	}
	store(7, "c1", []byte("ck"))

	want, err := q.ReadDeviceFrom(ctx, 7, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != 8 {
		t.Fatalf("ReadDeviceFrom: %d messages, want 8", len(want))
	}
	tests := []struct {
		name  string
		from  uint64
		limit int
		want  []StoredDown
	}{
		{"all", 1, 100, want},
		{"first page", 1, 3, want[:3]},
		{"from the middle", want[3].Seq, 3, want[3:6]},
		{"between sequences", want[3].Seq - 1, 2, want[3:5]},
		{"last page short", want[6].Seq, 5, want[6:]},
		{"past the end", want[7].Seq + 1, 5, nil},
		{"limit clamped up", 1, 0, want[:1]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := q.ReadDeviceBatch(ctx, 7, tt.from, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d messages, want %d", len(got), len(tt.want))
			}
			for i := range got {
				g, w := got[i], tt.want[i]
				if g.Seq != w.Seq || g.Subject != w.Subject || g.Message.MessageID != w.Message.MessageID ||
					string(g.Message.Data) != string(w.Message.Data) || g.Message.CollapseKey != w.Message.CollapseKey {
					t.Errorf("message %d = %d %s %s, want %d %s %s", i, g.Seq, g.Subject, g.Message.MessageID, w.Seq, w.Subject, w.Message.MessageID)
				}
			}
		})
	}
	if got, err := q.ReadDeviceBatch(ctx, 9, 1, 10); err != nil || len(got) != 0 {
		t.Errorf("device without messages: %d, %v; want none", len(got), err)
	}
}
