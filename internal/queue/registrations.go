package queue

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrUnknownSender is returned when a registration names a sender that does
// not exist or is revoked.
var ErrUnknownSender = errors.New("unknown sender")

// Registration ties a registration id to the sender it was made for and the
// app instance (device, app, subtype) that receives its messages.
type Registration struct {
	ID        string    `json:"id"`
	SenderID  string    `json:"sender"`
	App       string    `json:"app"`
	Subtype   string    `json:"subtype,omitempty"`
	AndroidID uint64    `json:"android_id"`
	Created   time.Time `json:"created"`
	// Unregistered is when the app unregistered; zero while active. An
	// unregistered registration is kept so sends to it answer
	// DEVICE_UNREGISTERED rather than BAD_REGISTRATION.
	Unregistered time.Time `json:"unregistered,omitzero"`
}

// Active reports whether the registration still receives messages.
func (r *Registration) Active() bool { return r.Unregistered.IsZero() }

// RegisterRequest asks for the registration of one app instance for one sender.
type RegisterRequest struct {
	AndroidID uint64
	App       string
	Subtype   string
	SenderID  string
}

// Register returns the canonical registration of (device, app, subtype,
// sender), creating it if there is none: registering the same app again
// returns the same id. The sender must exist and not be revoked.
func (q *Queue) Register(ctx context.Context, req RegisterRequest) (Registration, error) {
	if req.AndroidID == 0 || req.App == "" {
		return Registration{}, errors.New("registering: android id and app are required")
	}
	s, err := q.Sender(ctx, req.SenderID)
	if errors.Is(err, ErrNotFound) || (err == nil && s.Revoked) {
		return Registration{}, ErrUnknownSender
	}
	if err != nil {
		return Registration{}, err
	}
	ikey := indexKey(req.AndroidID, req.App, req.Subtype, req.SenderID)
	for range 5 {
		e, err := q.regidx.Get(ctx, ikey)
		switch {
		case err == nil:
			r, err := q.Registration(ctx, string(e.Value()))
			if err == nil && r.Active() {
				return r, nil
			}
			if err != nil && !errors.Is(err, ErrNotFound) {
				return Registration{}, err
			}
			// The indexed registration is gone or unregistered: replace it.
			r, err = q.newRegistration(ctx, req)
			if err != nil {
				return Registration{}, err
			}
			if _, err := q.regidx.Update(ctx, ikey, []byte(r.ID), e.Revision()); err != nil {
				continue // someone else replaced it first: use theirs
			}
			return r, nil
		case errors.Is(err, jetstream.ErrKeyNotFound):
			r, err := q.newRegistration(ctx, req)
			if err != nil {
				return Registration{}, err
			}
			if _, err := q.regidx.Create(ctx, ikey, []byte(r.ID)); err != nil {
				if errors.Is(err, jetstream.ErrKeyExists) {
					_ = q.regs.Delete(ctx, r.ID) // lost the race: drop ours, use theirs
					continue
				}
				return Registration{}, fmt.Errorf("indexing registration: %w", err)
			}
			return r, nil
		default:
			return Registration{}, fmt.Errorf("reading registration index: %w", err)
		}
	}
	return Registration{}, errors.New("registering: too much contention on this app instance")
}

func (q *Queue) newRegistration(ctx context.Context, req RegisterRequest) (Registration, error) {
	for range 10 {
		r := Registration{ID: newRegistrationID(), SenderID: req.SenderID, App: req.App,
			Subtype: req.Subtype, AndroidID: req.AndroidID, Created: time.Now().UTC()}
		b, err := json.Marshal(&r)
		if err != nil {
			return Registration{}, fmt.Errorf("encoding registration: %w", err)
		}
		_, err = q.regs.Create(ctx, r.ID, b)
		if errors.Is(err, jetstream.ErrKeyExists) {
			continue
		}
		if err != nil {
			return Registration{}, fmt.Errorf("storing registration: %w", err)
		}
		return r, nil
	}
	return Registration{}, errors.New("registering: no free registration id after 10 draws")
}

// Registration returns the registration with id (active or not), or ErrNotFound.
func (q *Queue) Registration(ctx context.Context, id string) (Registration, error) {
	if !validKey(id) {
		return Registration{}, ErrNotFound
	}
	b, err := q.kvGet(ctx, q.regs, BucketRegistrations, id)
	if err != nil {
		return Registration{}, err
	}
	return decodeRegistration(b)
}

// RegistrationOf returns the canonical registration of (device, app,
// subtype, sender), or ErrNotFound.
func (q *Queue) RegistrationOf(ctx context.Context, androidID uint64, app, subtype, sender string) (Registration, error) {
	if !validKey(sender) {
		return Registration{}, ErrNotFound
	}
	e, err := q.regidx.Get(ctx, indexKey(androidID, app, subtype, sender))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Registration{}, ErrNotFound
	}
	if err != nil {
		return Registration{}, fmt.Errorf("reading registration index: %w", err)
	}
	return q.Registration(ctx, string(e.Value()))
}

// Unregister marks the registration id unregistered. Unregistering twice is
// not an error.
func (q *Queue) Unregister(ctx context.Context, id string) (Registration, error) {
	for range 5 {
		if !validKey(id) {
			return Registration{}, ErrNotFound
		}
		e, err := q.regs.Get(ctx, id)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return Registration{}, ErrNotFound
		}
		if err != nil {
			return Registration{}, fmt.Errorf("reading registration: %w", err)
		}
		r, err := decodeRegistration(e.Value())
		if err != nil {
			return Registration{}, err
		}
		if !r.Active() {
			return r, nil
		}
		r.Unregistered = time.Now().UTC()
		b, err := json.Marshal(&r)
		if err != nil {
			return Registration{}, fmt.Errorf("encoding registration: %w", err)
		}
		if _, err := q.regs.Update(ctx, id, b, e.Revision()); err != nil {
			continue
		}
		ikey := indexKey(r.AndroidID, r.App, r.Subtype, r.SenderID)
		if ie, err := q.regidx.Get(ctx, ikey); err == nil && string(ie.Value()) == id {
			_ = q.regidx.Delete(ctx, ikey, jetstream.LastRevision(ie.Revision()))
		}
		return r, nil
	}
	return Registration{}, errors.New("unregistering: too much contention")
}

// UnregisterApp unregisters every registration of (device, app, subtype),
// whatever its sender, and returns them.
func (q *Queue) UnregisterApp(ctx context.Context, androidID uint64, app, subtype string) ([]Registration, error) {
	prefix := strconv.FormatUint(androidID, 10) + "." + appHash(app, subtype) + "."
	lister, err := q.regidx.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing registration index: %w", err)
	}
	var ids []string
	for k := range lister.Keys() {
		if strings.HasPrefix(k, prefix) {
			if e, err := q.regidx.Get(ctx, k); err == nil {
				ids = append(ids, string(e.Value()))
			}
		}
	}
	var out []Registration
	for _, id := range ids {
		r, err := q.Unregister(ctx, id)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return out, err
		}
		if err == nil {
			out = append(out, r)
		}
	}
	return out, nil
}

// WatchRegistrations calls fn for every registration change (the current
// state first) until ctx ends.
func (q *Queue) WatchRegistrations(ctx context.Context, fn func(r Registration, deleted bool, key string)) error {
	return watchKV(ctx, q.regs, "registrations", func(e jetstream.KeyValueEntry) {
		if e.Operation() != jetstream.KeyValuePut {
			fn(Registration{}, true, e.Key())
			return
		}
		r, err := decodeRegistration(e.Value())
		if err != nil {
			q.log.Warn("skipping undecodable registration", "key", e.Key(), "err", err)
			return
		}
		fn(r, false, e.Key())
	})
}

func decodeRegistration(b []byte) (Registration, error) {
	var r Registration
	if err := json.Unmarshal(b, &r); err != nil {
		return Registration{}, fmt.Errorf("decoding registration: %w", err)
	}
	return r, nil
}

// indexKey is the registration index key of an app instance and sender:
// <android id>.<hash of app and subtype>.<sender id>.
func indexKey(androidID uint64, app, subtype, sender string) string {
	return strconv.FormatUint(androidID, 10) + "." + appHash(app, subtype) + "." + sender
}

func appHash(app, subtype string) string {
	h := sha256.Sum256([]byte(app + "\x00" + subtype))
	return hex.EncodeToString(h[:12])
}

// newRegistrationID makes a token shaped like a GCM registration id:
// "APA91b" and 134 URL-safe characters (no '=', no whitespace and never the
// substring "Error", which device clients treat as a failure).
func newRegistrationID() string {
	for {
		id := "APA91b" + randomString(134)
		if !strings.Contains(id, "Error") {
			return id
		}
	}
}
