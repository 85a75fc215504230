package queue

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"sort"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Sender is an app-server identity: a numeric sender id (the GCM project
// number) and a hashed API key. The key itself is never stored.
type Sender struct {
	ID      string    `json:"id"`
	Name    string    `json:"name,omitempty"`
	KeyHash string    `json:"key_hash"` // hex SHA-256 of the API key
	Created time.Time `json:"created"`
	Revoked bool      `json:"revoked,omitempty"`
}

// APIKey is a secret that never prints itself in logs.
type APIKey string

// String redacts the key.
func (APIKey) String() string { return "[redacted]" }

// LogValue redacts the key in slog output.
func (APIKey) LogValue() string { return "[redacted]" }

// VerifyKey reports, in constant time, whether key is s's API key and s is
// not revoked.
func (s *Sender) VerifyKey(key []byte) bool {
	want, err := hex.DecodeString(s.KeyHash)
	if err != nil || len(want) != sha256.Size {
		return false
	}
	got := sha256.Sum256(key)
	ok := subtle.ConstantTimeCompare(got[:], want) == 1
	return ok && !s.Revoked
}

// CreateSender makes a new sender with a fresh numeric id and API key and
// returns the key (shown once; only its hash is stored).
func (q *Queue) CreateSender(ctx context.Context, name string) (Sender, APIKey, error) {
	key := newAPIKey()
	sum := sha256.Sum256([]byte(key))
	for range 10 {
		s := Sender{ID: newSenderID(), Name: name, KeyHash: hex.EncodeToString(sum[:]), Created: time.Now().UTC()}
		b, err := json.Marshal(&s)
		if err != nil {
			return Sender{}, "", fmt.Errorf("encoding sender: %w", err)
		}
		_, err = q.senders.Create(ctx, s.ID, b)
		if errors.Is(err, jetstream.ErrKeyExists) {
			continue // id collision: draw again
		}
		if err != nil {
			return Sender{}, "", fmt.Errorf("storing sender: %w", err)
		}
		return s, APIKey(key), nil
	}
	return Sender{}, "", errors.New("creating sender: no free sender id after 10 draws")
}

// Sender returns the sender with id, or ErrNotFound.
func (q *Queue) Sender(ctx context.Context, id string) (Sender, error) {
	if !validKey(id) {
		return Sender{}, ErrNotFound
	}
	b, err := q.kvGet(ctx, q.senders, BucketSenders, id)
	if err != nil {
		return Sender{}, err
	}
	return decodeSender(b)
}

// Senders lists every sender, revoked ones included, by id.
func (q *Queue) Senders(ctx context.Context) ([]Sender, error) {
	lister, err := q.senders.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing senders: %w", err)
	}
	var out []Sender
	for k := range lister.Keys() {
		s, err := q.Sender(ctx, k)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// RevokeSender marks a sender revoked: its key stops working at once on
// every node (watchers see the update).
func (q *Queue) RevokeSender(ctx context.Context, id string) error {
	if !validKey(id) {
		return ErrNotFound
	}
	e, err := q.senders.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("reading sender %s: %w", id, err)
	}
	s, err := decodeSender(e.Value())
	if err != nil {
		return err
	}
	s.Revoked = true
	b, err := json.Marshal(&s)
	if err != nil {
		return fmt.Errorf("encoding sender: %w", err)
	}
	if _, err := q.senders.Update(ctx, id, b, e.Revision()); err != nil {
		return fmt.Errorf("revoking sender %s: %w", id, err)
	}
	return nil
}

// WatchSenders calls fn for every sender change (including the current
// state at start) until ctx ends. It returns ctx's error or a watch error.
func (q *Queue) WatchSenders(ctx context.Context, fn func(s Sender)) error {
	return watchKV(ctx, q.senders, "senders", func(e jetstream.KeyValueEntry) {
		if e.Operation() != jetstream.KeyValuePut {
			return // senders are revoked, never deleted
		}
		s, err := decodeSender(e.Value())
		if err != nil {
			q.log.Warn("skipping undecodable sender", "key", e.Key(), "err", err)
			return
		}
		fn(s)
	})
}

// watchKV calls fn for every entry of kv (current values first, then each
// change, deletes included) until ctx ends or the watch fails.
func watchKV(ctx context.Context, kv jetstream.KeyValue, what string, fn func(jetstream.KeyValueEntry)) error {
	w, err := kv.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("watching %s: %w", what, err)
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return fmt.Errorf("%s watch ended", what)
			}
			if e != nil { // nil marks the end of the initial values
				fn(e)
			}
		}
	}
}

func decodeSender(b []byte) (Sender, error) {
	var s Sender
	if err := json.Unmarshal(b, &s); err != nil {
		return Sender{}, fmt.Errorf("decoding sender: %w", err)
	}
	return s, nil
}

// newSenderID draws a 12-digit project number (no leading zero).
func newSenderID() string {
	n, err := rand.Int(rand.Reader, big.NewInt(9e11))
	if err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return n.Add(n, big.NewInt(1e11)).String()
}

const keyAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// newAPIKey makes a 39-character key shaped like Google's server keys
// ("AIza" + 35 URL-safe characters, 210 random bits).
func newAPIKey() string {
	return "AIza" + randomString(35)
}

func randomString(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	for i := range b {
		b[i] = keyAlphabet[b[i]&63]
	}
	return string(b)
}

// validKey reports whether s can be a KV key (and so a sender id or
// registration id we issued).
func validKey(s string) bool {
	if s == "" || len(s) > 512 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}
