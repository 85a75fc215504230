package router

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/ccsd/ccsd/internal/gcm"
	"github.com/ccsd/ccsd/internal/queue"
)

// The device side: what the MCS endpoint and the device HTTP routes call.

// Upstream errors (the device gets a send_error message).
var (
	// ErrUpstreamSender: the device has no registration for the sender it
	// addressed, or the sender does not exist.
	ErrUpstreamSender = errors.New("InvalidSender: device is not registered with that sender")
	// ErrUpstreamTooBig: data over gcm.MaxDataBytes.
	ErrUpstreamTooBig = errors.New("MessageTooBig: upstream data over 4096 bytes")
	// ErrUpstreamInvalid: a malformed upstream message (no id, bad address).
	ErrUpstreamInvalid = errors.New("InvalidParameters: malformed upstream message")
)

// DeviceUpstream is an upstream message as a device sent it.
type DeviceUpstream struct {
	To        string // "<sender id>@gcm.googleapis.com" (or @fcm.googleapis.com, or bare)
	From      string // registration id, when the app put it there
	RegID     string // reg_id field, when set
	Category  string // app package
	MessageID string
	TTL       int32 // seconds; <0 when absent
	Data      []gcm.KV
}

// Checkin issues or confirms a device's android id and security token.
func (r *Router) Checkin(ctx context.Context, androidID, token uint64) (uint64, uint64, error) {
	d, tok, err := r.q.Checkin(ctx, androidID, token)
	if err != nil {
		return 0, 0, err
	}
	return d.AndroidID, tok, nil
}

// VerifyDevice checks a device's credentials: queue.ErrNotFound for an
// unknown android id, queue.ErrBadToken for a wrong token.
func (r *Router) VerifyDevice(ctx context.Context, androidID, token uint64) error {
	return r.q.VerifyDevice(ctx, androidID, token)
}

// Register returns the canonical registration of an app instance for a
// sender (queue.ErrUnknownSender when the sender does not exist).
func (r *Router) Register(ctx context.Context, req queue.RegisterRequest) (queue.Registration, error) {
	reg, err := r.q.Register(ctx, req)
	if err != nil {
		return reg, err
	}
	r.mu.Lock()
	r.regs[reg.ID] = newEntry(reg, r.cfg)
	r.mu.Unlock()
	return reg, nil
}

// UnregisterApp unregisters an app instance from every sender.
func (r *Router) UnregisterApp(ctx context.Context, androidID uint64, app, subtype string) ([]queue.Registration, error) {
	regs, err := r.q.UnregisterApp(ctx, androidID, app, subtype)
	r.mu.Lock()
	for _, reg := range regs {
		if e := r.regs[reg.ID]; e != nil {
			e.mu.Lock()
			e.reg = reg
			e.mu.Unlock()
		}
	}
	r.mu.Unlock()
	return regs, err
}

// Registration returns a registration by id (cached).
func (r *Router) Registration(ctx context.Context, regID string) (queue.Registration, error) {
	e, err := r.registration(ctx, []byte(regID))
	if err != nil {
		return queue.Registration{}, err
	}
	if e == nil {
		return queue.Registration{}, queue.ErrNotFound
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.reg, nil
}

// Join makes this node the device's home for live messages (see
// queue.Presence); leave undoes it.
func (r *Router) Join(androidID uint64, connID string, sink queue.DeviceSink) (leave func(), err error) {
	return r.presence.Join(androidID, connID, sink)
}

// Backlog returns the device's stored messages from sequence from on.
func (r *Router) Backlog(ctx context.Context, androidID uint64, from uint64, limit int) ([]queue.StoredDown, error) {
	return r.q.ReadDeviceFrom(ctx, androidID, from, limit)
}

// BacklogBatch is Backlog in one batched request (queue.ReadDeviceBatch):
// at most queue.MaxDeviceBatch messages, cheaper than Backlog for any page
// of several.
func (r *Router) BacklogBatch(ctx context.Context, androidID uint64, from uint64, limit int) ([]queue.StoredDown, error) {
	return r.q.ReadDeviceBatch(ctx, androidID, from, limit)
}

// StoredMessage returns one stored downstream message by sequence.
func (r *Router) StoredMessage(ctx context.Context, seq uint64) (queue.StoredDown, error) {
	return r.q.GetDown(ctx, seq)
}

// Retire deletes a stored downstream message (acknowledged, expired or
// dropped).
func (r *Router) Retire(seq uint64) { r.q.Retire(seq) }

// StoreDown stores a downstream message for a device (the device side uses
// it for the deleted_messages marker).
func (r *Router) StoreDown(ctx context.Context, subject string, collapsible bool, m *gcm.Message) error {
	in := gcm.Inbound{Kind: gcm.InboundSend, To: []byte(m.To), MessageID: []byte(m.MessageID),
		CollapseKey: []byte(m.CollapseKey), TTL: m.TTL, Data: m.Data, Notification: m.Notification}
	rec := gcm.AppendRecord(nil, []byte(m.SenderID), &in, m.Accepted)
	p, err := r.q.PublishDown(subject, collapsible, m.TTL, rec)
	if err != nil {
		return err
	}
	return p.Wait(ctx)
}

// Delivered is called once a device acknowledged m: when the app server
// asked for a delivery receipt, the receipt is stored for it (ACK required,
// redelivered like upstream messages).
func (r *Router) Delivered(ctx context.Context, m *gcm.Message, category string, nowMs int64) error {
	if !m.DeliveryReceipt {
		return nil
	}
	rc := gcm.Receipt{OriginalMessageID: m.MessageID, DeviceRegistrationID: m.To, Category: category, SentTimestamp: nowMs}
	id := gcm.ReceiptPrefix + m.MessageID
	return r.q.PublishUp(ctx, m.SenderID, id, id+"/"+m.To, gcm.AppendReceipt(nil, &rc))
}

// Upstream validates a device's upstream message and stores it for the
// sender's app servers. It returns only once the message is stored; the
// device may be acknowledged after that.
func (r *Router) Upstream(ctx context.Context, androidID uint64, up *DeviceUpstream) error {
	sender, _, _ := strings.Cut(up.To, "@")
	if sender == "" || up.MessageID == "" {
		return ErrUpstreamInvalid
	}
	if !r.SenderActive(ctx, sender) {
		return ErrUpstreamSender
	}
	size := 0
	for _, kv := range up.Data {
		size += len(kv.Key) + len(kv.Value)
	}
	if size > gcm.MaxDataBytes {
		return ErrUpstreamTooBig
	}
	reg, err := r.upstreamRegistration(ctx, androidID, sender, up)
	if err != nil {
		return err
	}
	u := gcm.Upstream{From: reg.ID, Category: reg.App, MessageID: up.MessageID, TTL: up.TTL, Data: up.Data}
	if u.Category == "" {
		u.Category = up.Category
	}
	dedup := strconv.FormatUint(androidID, 10) + "/" + up.MessageID
	if err := r.q.PublishUp(ctx, sender, up.MessageID, dedup, gcm.AppendUpstream(nil, &u)); err != nil {
		return fmt.Errorf("storing upstream message: %w", err)
	}
	return nil
}

// upstreamRegistration finds the registration the device sends from: the
// one it named (from / reg_id), if it is this device's and the sender's, or
// else its registration of the category for that sender.
func (r *Router) upstreamRegistration(ctx context.Context, androidID uint64, sender string, up *DeviceUpstream) (queue.Registration, error) {
	for _, id := range []string{up.RegID, up.From} {
		if id == "" {
			continue
		}
		reg, err := r.Registration(ctx, id)
		if err == nil && reg.Active() && reg.AndroidID == androidID && reg.SenderID == sender {
			return reg, nil
		}
	}
	if up.Category != "" {
		reg, err := r.q.RegistrationOf(ctx, androidID, up.Category, "", sender)
		if err == nil && reg.Active() {
			return reg, nil
		}
		if err != nil && !errors.Is(err, queue.ErrNotFound) {
			return queue.Registration{}, err
		}
	}
	return queue.Registration{}, ErrUpstreamSender
}
