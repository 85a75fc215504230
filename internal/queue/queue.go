// Package queue is ccsd's durable store-and-forward on NATS JetStream: the
// sender, device and registration stores (KV buckets), the downstream stream
// that holds messages for devices until they acknowledge them or their
// time_to_live ends, and the upstream stream that holds device messages and
// receipts until an app server ACKs them. It is the only package besides
// cluster that imports NATS.
package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ccsd/ccsd/internal/cluster"
	"github.com/ccsd/ccsd/internal/gcm"
	"github.com/ccsd/ccsd/internal/metrics"
)

// Names of the JetStream assets ccsd owns.
const (
	BucketSenders       = "ccsd_senders"
	BucketRegistrations = "ccsd_registrations"
	BucketRegIndex      = "ccsd_regindex"
	BucketDevices       = "ccsd_devices"
	StreamDown          = "CCSD_DOWN"
	StreamUp            = "CCSD_UP"
)

// ErrNotFound is returned when a sender, device or registration does not exist.
var ErrNotFound = errors.New("not found")

// Config configures a Queue. The zero value works for a single node.
type Config struct {
	// Replicas for every stream and bucket; zero means the node's default
	// (1 standalone, 3 in a cluster).
	Replicas int
	// PublishWindow bounds asynchronous downstream publishes in flight on
	// this node; zero means 4096.
	PublishWindow int
	// MaxPerDevice caps the non-collapsible messages stored for one device;
	// zero means MaxStoredPerDevice. A message over the cap is refused (its
	// ticket fails with ErrDeviceFull, which the CCS endpoint NACKs
	// DEVICE_MESSAGE_RATE_EXCEEDED): JetStream never drops an acknowledged
	// message to make room.
	MaxPerDevice int
	// BindOnly makes Open use the streams and buckets as they are, creating
	// only missing ones (command-line tools attaching to a running server
	// must not rewrite its configuration).
	BindOnly bool
	// LocalPresence says every device connection that can receive live
	// messages is on this node (a standalone node): stored messages are then
	// republished live only to devices connected here, which saves a core
	// NATS publish (~6 µs of CPU) per message for offline devices. In a
	// cluster it must be false: every stored message is republished and NATS
	// routes it to whichever node holds the device.
	LocalPresence bool
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// Metrics; nil means a private set.
	Metrics *metrics.Metrics
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	if c.Replicas < 0 || c.Replicas > 5 {
		return fmt.Errorf("queue replicas %d: want 0..5", c.Replicas)
	}
	if c.PublishWindow < 0 {
		return fmt.Errorf("queue publish window %d: want >= 0", c.PublishWindow)
	}
	return nil
}

// Queue is the durable store. It is safe for concurrent use.
type Queue struct {
	// immutable after Open
	nc      *nats.Conn
	js      jetstream.JetStream
	pub     *publisher // downstream async publisher with its own in-flight window
	cfg     Config
	log     *slog.Logger
	met     *metrics.Metrics
	senders jetstream.KeyValue
	regs    jetstream.KeyValue
	regidx  jetstream.KeyValue
	devices jetstream.KeyValue
	down    jetstream.Stream
	up      jetstream.Stream

	sweepStop  chan struct{} // closed by Close
	sweepDone  chan struct{} // closed when the sweeper ends
	retireOnce sync.Once
	retireCh   chan uint64   // owned by the retirer goroutine once started
	retireDone chan struct{} // closed when the retirer ends
	closeOnce  sync.Once

	onlineMu sync.RWMutex
	online   map[string]int // guarded by onlineMu: android id (decimal) -> connections on this node
}

// Open creates (or updates) every stream and bucket and returns the Queue.
func Open(ctx context.Context, node *cluster.Node, cfg Config) (*Queue, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = max(node.Replicas, 1)
	}
	if cfg.MaxPerDevice == 0 {
		cfg.MaxPerDevice = MaxStoredPerDevice
	}
	if cfg.PublishWindow == 0 {
		cfg.PublishWindow = 4096
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.New()
	}
	q := &Queue{nc: node.NC, js: node.JS, cfg: cfg, log: cfg.Logger, met: cfg.Metrics, online: make(map[string]int)}
	pub, err := newPublisher(node.NC, cfg.PublishWindow, q.onStored)
	if err != nil {
		return nil, err
	}
	q.pub = pub
	q.sweepDone = make(chan struct{})
	q.sweepStop = make(chan struct{})
	go q.sweeper()
	kv := func(name, desc string, history uint8) (jetstream.KeyValue, error) {
		if cfg.BindOnly {
			if b, err := q.js.KeyValue(ctx, name); err == nil {
				return b, nil
			}
		}
		var b jetstream.KeyValue
		err := retryMeta(ctx, func(ctx context.Context) (err error) {
			b, err = q.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
				Bucket: name, Description: desc, History: history,
				Storage: jetstream.FileStorage, Replicas: cfg.Replicas,
			})
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("creating bucket %s: %w", name, err)
		}
		return b, nil
	}
	if q.senders, err = kv(BucketSenders, "ccsd senders: sender id -> hashed API key", 1); err != nil {
		return nil, err
	}
	if q.regs, err = kv(BucketRegistrations, "ccsd registrations: registration id -> sender, app, device", 1); err != nil {
		return nil, err
	}
	if q.regidx, err = kv(BucketRegIndex, "ccsd canonical registration per (device, app, sender)", 1); err != nil {
		return nil, err
	}
	if q.devices, err = kv(BucketDevices, "ccsd devices: android id -> hashed security token", 1); err != nil {
		return nil, err
	}
	q.down, err = q.stream(ctx, jetstream.StreamConfig{
		Name:              StreamDown,
		Description:       "ccsd downstream messages per device: down.<android id>.n and down.<android id>.c.<collapse hash>",
		Subjects:          []string{"down.>"},
		Retention:         jetstream.LimitsPolicy,
		Storage:           jetstream.FileStorage,
		Replicas:          cfg.Replicas,
		MaxAge:            (gcm.MaxTTL + 3600) * time.Second, // the longest time_to_live, plus slack; shorter ones carry Nats-TTL
		MaxMsgsPerSubject: int64(cfg.MaxPerDevice),
		AllowDirect:       true,
		AllowRollup:       true,
		AllowMsgTTL:       true,
		// A full device refuses new messages rather than losing stored ones.
		Discard:              jetstream.DiscardNew,
		DiscardNewPerSubject: true,
	})
	if err != nil {
		return nil, fmt.Errorf("creating stream %s: %w", StreamDown, err)
	}
	q.up, err = q.stream(ctx, jetstream.StreamConfig{
		Name:        StreamUp,
		Description: "ccsd upstream messages and receipts per sender: up.<sender id>",
		Subjects:    []string{"up.*"},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		AllowMsgTTL: true,
		Duplicates:  2 * time.Minute,
	})
	if err != nil {
		return nil, fmt.Errorf("creating stream %s: %w", StreamUp, err)
	}
	return q, nil
}

// stream creates or updates a stream, or with BindOnly binds to it as it is.
func (q *Queue) stream(ctx context.Context, sc jetstream.StreamConfig) (jetstream.Stream, error) {
	if q.cfg.BindOnly {
		if s, err := q.js.Stream(ctx, sc.Name); err == nil {
			return s, nil
		}
	}
	var st jetstream.Stream
	err := retryMeta(ctx, func(ctx context.Context) (err error) {
		st, err = q.js.CreateOrUpdateStream(ctx, sc)
		return err
	})
	return st, err
}

// retryMeta runs a JetStream asset operation until it succeeds, ctx ends,
// or a minute passes. In a cluster that is starting, several nodes create
// the same assets at once and the meta leader may be busy or moving, so a
// single attempt can time out.
func retryMeta(ctx context.Context, op func(context.Context) error) error {
	deadline := time.Now().Add(time.Minute)
	wait := 100 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := op(actx)
		cancel()
		var apiErr *jetstream.APIError
		if err == nil || errors.As(err, &apiErr) && apiErr.Code == 400 || ctx.Err() != nil || time.Now().After(deadline) {
			return err // success, a refused configuration, or out of time
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// Depth reports how many messages each stream holds (for metrics).
func (q *Queue) Depth(ctx context.Context) (down, up uint64, err error) {
	di, err := q.down.Info(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("reading %s info: %w", StreamDown, err)
	}
	ui, err := q.up.Info(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("reading %s info: %w", StreamUp, err)
	}
	return di.State.Msgs, ui.State.Msgs, nil
}

// Flush waits until every downstream publish started so far is answered
// or ctx ends.
func (q *Queue) Flush(ctx context.Context) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for q.pub.inFlight() > 0 {
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// sweeper fails downstream publishes whose acknowledgement never came,
// until Close.
func (q *Queue) sweeper() {
	defer close(q.sweepDone)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-q.sweepStop:
			return
		case <-t.C:
			q.pub.sweep(30 * time.Second)
		}
	}
}
