package deviceserver

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/ccsd/ccsd/internal/gcm"
	"github.com/ccsd/ccsd/internal/mcs"
	"github.com/ccsd/ccsd/internal/mcs/mcspb"
	"github.com/ccsd/ccsd/internal/queue"
	"github.com/ccsd/ccsd/internal/router"
)

// BenchmarkDeliver measures downstream messages per second through a real
// router and JetStream to one device over TLS, the device acknowledging
// every 10 messages with a StreamAck (as Chromium does). The sender stays
// at most `ahead` messages ahead of the device: the store refuses a
// device's messages beyond queue.MaxStoredPerDevice, and acknowledged
// messages leave it only once their retirement is done. "live": everything
// fits the window plus the live queue; "overflow": the live queue overflows
// and messages are read again from the store.
func BenchmarkDeliver(b *testing.B) {
	b.Run("live", func(b *testing.B) { benchDeliver(b, DefaultMaxInFlight+liveQueueMax/2) })
	b.Run("overflow", func(b *testing.B) { benchDeliver(b, 600) })
}

func benchDeliver(b *testing.B, benchAhead int) {
	f := newFixture(b, fixtureOpts{rate: -1})
	c := f.login()
	ctx := context.Background()
	in := msg("bench")
	in.To = []byte(f.reg.ID)
	credit := make(chan struct{}, benchAhead)
	for range benchAhead {
		credit <- struct{}{}
	}
	stop := make(chan struct{})
	defer close(stop)
	// Every ticket is waited on: a send the store refuses (the device over
	// queue.MaxStoredPerDevice because retirement lags) fails the benchmark
	// instead of leaving the device waiting for a message that never comes.
	tickets := make(chan router.Ticket, benchAhead)
	senderDone := make(chan error, 1)
	go func() {
		defer close(tickets)
		for range b.N {
			select {
			case <-credit:
			case <-stop:
				return
			}
			t := f.rt.Send(ctx, f.sender.ID, in)
			if !t.Stored() {
				senderDone <- &sendError{t.Wait(ctx)}
				_ = c.nc.Close()
				return
			}
			tickets <- t
		}
	}()
	go func() {
		for t := range tickets {
			if res := t.Wait(ctx); !res.OK() {
				senderDone <- &sendError{res}
				_ = c.nc.Close()
				return
			}
		}
		senderDone <- nil
	}()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if i%1024 == 0 {
			_ = c.nc.SetDeadline(time.Now().Add(20 * time.Second)) // a failure bound
		}
		if _, err := c.dataErr(); err != nil {
			select {
			case serr := <-senderDone:
				b.Fatalf("device read after %d of %d: %v (sender: %v)", i, b.N, err, serr)
			default:
				b.Fatalf("device read after %d of %d: %v", i, b.N, err)
			}
		}
		credit <- struct{}{}
		if i%10 == 9 || i == b.N-1 {
			c.send(&mcspb.IqStanza{Type: mcs.IqSet.Enum(), Id: proto.String(""),
				Extension:            &mcspb.Extension{Id: proto.Int32(mcs.ExtensionStreamAck), Data: []byte{}},
				LastStreamIdReceived: proto.Int32(c.in)})
		}
	}
	b.StopTimer()
	if err := <-senderDone; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

type sendError struct{ res router.Result }

func (e *sendError) Error() string { return string(e.res.Code) + ": " + e.res.Description }

// benchStored is a typical stored message: three data pairs.
func benchStored() (storedDown, queue.Registration) {
	sd := storedDown{Seq: 4711, Subject: "down.1.n", Message: gcm.Message{
		SenderID: "123456789012", To: "reg", MessageID: "m-1", TTL: gcm.MaxTTL, Accepted: epoch.UnixMilli(),
		Data: []byte(`{"title":"hello","body":"a message of moderate length","n":"3"}`)}}
	return sd, queue.Registration{ID: "reg", App: "com.example.app"}
}

// TestBuildStanzaAllocs: building and encoding a data message costs the
// strings of its data pairs and its persistent id, nothing per field.
func TestBuildStanzaAllocs(t *testing.T) {
	sd, reg := benchStored()
	st := new(stanza)
	buf := make([]byte, 0, 1024)
	pid := mcs.NewPersistentID(sd.Message.Accepted*1000, sd.Seq)
	allocs := testing.AllocsPerRun(100, func() {
		if err := st.build(&sd, &reg, pid); err != nil {
			t.Fatal(err)
		}
		var err error
		if buf, err = mcs.AppendFrame(buf[:0], mcs.TagDataMessageStanza, &st.m); err != nil {
			t.Fatal(err)
		}
	})
	// DataPairs returns each key and value as a string: 6 strings.
	if allocs > 6 {
		t.Errorf("build + encode: %v allocations, want <= 6", allocs)
	}
}

func BenchmarkBuildStanza(b *testing.B) {
	sd, reg := benchStored()
	st := new(stanza)
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		pid := mcs.NewPersistentID(sd.Message.Accepted*1000, sd.Seq)
		if err := st.build(&sd, &reg, pid); err != nil {
			b.Fatal(err)
		}
		buf, _ = mcs.AppendFrame(buf[:0], mcs.TagDataMessageStanza, &st.m)
	}
}

// dataErr reads frames until a DataMessageStanza, returning read errors.
func (c *client) dataErr() (*mcspb.DataMessageStanza, error) {
	for {
		tag, m, err := c.recvErr()
		if err != nil {
			return nil, err
		}
		if d, ok := m.(*mcspb.DataMessageStanza); ok {
			return d, nil
		}
		if tag == mcs.TagClose {
			return nil, fmt.Errorf("got Close, want a data message")
		}
	}
}
