package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ccsd/ccsd/internal/metrics"
	"github.com/ccsd/ccsd/internal/queue"
)

// ErrUnauthorized is returned by Authenticate for an unknown or revoked
// sender or a wrong API key.
var ErrUnauthorized = errors.New("not authorized")

// Config configures a Router.
type Config struct {
	// Queue is the durable store; required.
	Queue *queue.Queue
	// DeviceRate is the sustained downstream messages per second one
	// registration may receive before sends are NACKed
	// DEVICE_MESSAGE_RATE_EXCEEDED; zero means 100. Negative disables the limit.
	DeviceRate float64
	// DeviceBurst is how many messages above the rate a registration may take
	// at once; zero means 1000.
	DeviceBurst int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// Metrics; nil means a private set.
	Metrics *metrics.Metrics
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	if c.Queue == nil {
		return errors.New("router: a queue is required")
	}
	if c.DeviceBurst < 0 {
		return fmt.Errorf("router: device burst %d: want >= 0", c.DeviceBurst)
	}
	return nil
}

// Router validates and routes messages. It is safe for concurrent use.
type Router struct {
	// immutable after New
	q   *queue.Queue
	cfg Config
	log *slog.Logger
	met *metrics.Metrics

	mu       sync.RWMutex
	regs     map[string]*regEntry     // guarded by mu; fed by the registration watch, filled on misses
	senders  map[string]*queue.Sender // guarded by mu; fed by the sender watch
	onRevoke []func(senderID string)  // guarded by mu

	presence *queue.Presence // immutable after New; dispatched by Run
}

// regEntry is a cached registration with what the send path derives from it.
type regEntry struct {
	reg  queue.Registration
	subj string // subject of its non-collapsible messages

	mu     sync.Mutex // guards tokens and last
	tokens float64
	last   time.Time
}

// New returns a Router; call Run to keep its caches current.
func New(cfg Config) (*Router, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.DeviceRate == 0 {
		cfg.DeviceRate = 100
	}
	if cfg.DeviceBurst == 0 {
		cfg.DeviceBurst = 1000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.New()
	}
	return &Router{q: cfg.Queue, cfg: cfg, log: cfg.Logger, met: cfg.Metrics,
		regs: make(map[string]*regEntry), senders: make(map[string]*queue.Sender),
		presence: cfg.Queue.NewPresence(0)}, nil
}

// OnRevoke registers fn to be called when a sender is revoked (the CCS
// endpoint closes that sender's connections).
func (r *Router) OnRevoke(fn func(senderID string)) {
	r.mu.Lock()
	r.onRevoke = append(r.onRevoke, fn)
	r.mu.Unlock()
}

// Run keeps the sender and registration caches current from the store's
// watches until ctx ends. It returns ctx's error, or the first watch error.
func (r *Router) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 3)
	go func() { errc <- r.q.WatchSenders(ctx, r.senderChanged) }()
	go func() { errc <- r.q.WatchRegistrations(ctx, r.registrationChanged) }()
	go func() { errc <- r.presence.Run(ctx) }()
	err := <-errc
	cancel()
	<-errc
	<-errc
	return err
}

func (r *Router) senderChanged(s queue.Sender) {
	r.mu.Lock()
	old := r.senders[s.ID]
	r.senders[s.ID] = &s
	var fns []func(string)
	if s.Revoked && (old == nil || !old.Revoked) {
		fns = append(fns, r.onRevoke...)
	}
	r.mu.Unlock()
	for _, fn := range fns {
		fn(s.ID)
	}
}

func (r *Router) registrationChanged(reg queue.Registration, deleted bool, key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if deleted {
		delete(r.regs, key)
		return
	}
	if e, ok := r.regs[reg.ID]; ok {
		e.mu.Lock()
		e.reg = reg
		e.mu.Unlock()
		return
	}
	r.regs[reg.ID] = newEntry(reg, r.cfg)
}

func newEntry(reg queue.Registration, cfg Config) *regEntry {
	return &regEntry{reg: reg, subj: queue.DownSubject(reg.AndroidID, reg.ID, nil),
		tokens: float64(cfg.DeviceBurst), last: cfg.Now()}
}

// Authenticate checks a sender's API key in constant time.
func (r *Router) Authenticate(ctx context.Context, senderID string, apiKey []byte) error {
	s, err := r.sender(ctx, senderID)
	if errors.Is(err, queue.ErrNotFound) {
		return ErrUnauthorized
	}
	if err != nil {
		return err
	}
	if !s.VerifyKey(apiKey) {
		return ErrUnauthorized
	}
	return nil
}

// SenderActive reports whether senderID exists and is not revoked.
func (r *Router) SenderActive(ctx context.Context, senderID string) bool {
	s, err := r.sender(ctx, senderID)
	return err == nil && !s.Revoked
}

func (r *Router) sender(ctx context.Context, id string) (*queue.Sender, error) {
	r.mu.RLock()
	s := r.senders[id]
	r.mu.RUnlock()
	if s != nil {
		return s, nil
	}
	got, err := r.q.Sender(ctx, id)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	if cur := r.senders[id]; cur != nil {
		s = cur
	} else {
		s = &got
		r.senders[id] = s
	}
	r.mu.Unlock()
	return s, nil
}

// registration returns the cached registration id, reading the store on a
// miss (a registration made on another node a moment ago). It returns nil
// when there is none.
func (r *Router) registration(ctx context.Context, id []byte) (*regEntry, error) {
	r.mu.RLock()
	e := r.regs[string(id)]
	r.mu.RUnlock()
	if e != nil {
		return e, nil
	}
	reg, err := r.q.Registration(ctx, string(id))
	if errors.Is(err, queue.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	if cur := r.regs[reg.ID]; cur != nil {
		e = cur
	} else {
		e = newEntry(reg, r.cfg)
		r.regs[reg.ID] = e
	}
	r.mu.Unlock()
	return e, nil
}

// allow takes one token from the registration's rate bucket.
func (e *regEntry) allow(now time.Time, rate float64, burst int) bool {
	if rate < 0 {
		return true
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if d := now.Sub(e.last); d > 0 {
		e.tokens = min(float64(burst), e.tokens+d.Seconds()*rate)
		e.last = now
	}
	if e.tokens < 1 {
		return false
	}
	e.tokens--
	return true
}
