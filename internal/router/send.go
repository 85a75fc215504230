package router

import (
	"context"
	"errors"

	"github.com/ccsd/ccsd/internal/gcm"
	"github.com/ccsd/ccsd/internal/queue"
)

// Send validates one downstream message from senderID against its target
// registration and hands it to the store. The returned ticket is answered
// once the message is stored (persist before ACK), or at once for a NACK, a
// dry run, or a message that is not stored. in's slices are used only
// during the call.
func (r *Router) Send(ctx context.Context, senderID string, in *gcm.Inbound) Ticket {
	e, err := r.registration(ctx, in.To)
	if err != nil {
		r.log.Error("looking up registration", "err", err)
		return Immediate(Result{Code: gcm.InternalServerError, Description: "registration lookup failed"})
	}
	if e == nil {
		return Immediate(Result{Code: gcm.BadRegistration, Description: "Invalid token on 'to' field: " + string(in.To)})
	}
	e.mu.Lock()
	reg := e.reg
	e.mu.Unlock()
	if reg.SenderID != senderID {
		// MismatchSenderId in HTTP terms; CCS folds it into BAD_REGISTRATION.
		return Immediate(Result{Code: gcm.BadRegistration, Description: "MismatchSenderId: registration was not made for sender " + senderID})
	}
	if !reg.Active() {
		return Immediate(Result{Code: gcm.DeviceUnregistered, Description: "NotRegistered: the app was unregistered from this device"})
	}
	if len(in.RestrictedPackageName) > 0 && string(in.RestrictedPackageName) != reg.App {
		return Immediate(Result{Code: gcm.BadRegistration, Description: "InvalidPackageName: registration belongs to another package"})
	}
	now := r.cfg.Now()
	if !e.allow(now, r.cfg.DeviceRate, r.cfg.DeviceBurst) {
		return Immediate(Result{Code: gcm.DeviceMessageRateExceeded, Description: "Downstream message rate exceeded for this registration id"})
	}
	if in.DryRun {
		return Immediate(Result{})
	}
	rec := gcm.AppendRecord(make([]byte, 0, recordSize(in, senderID)), []byte(senderID), in, now.UnixMilli())
	if in.TTL == 0 {
		// time_to_live 0: delivered now if the device is connected (on any
		// node), never stored.
		if err := r.q.PublishLive(reg.AndroidID, rec); err != nil {
			return Immediate(Result{Code: gcm.ServiceUnavailable, Description: "live routing unavailable: retry with back-off"})
		}
		return Immediate(Result{})
	}
	subj := e.subj
	if len(in.CollapseKey) > 0 {
		subj = queue.DownSubject(reg.AndroidID, reg.ID, in.CollapseKey)
	}
	p, err := r.q.PublishDown(subj, len(in.CollapseKey) > 0, in.TTL, rec)
	if err != nil {
		if !errors.Is(err, queue.ErrStoreBusy) {
			r.log.Error("storing downstream message", "err", err)
		}
		return Immediate(Result{Code: gcm.ServiceUnavailable, Description: "store unavailable: retry with back-off"})
	}
	return Ticket{w: p}
}

// recordSize estimates the encoded record's size so it is allocated once.
func recordSize(in *gcm.Inbound, sender string) int {
	return 48 + len(sender) + len(in.To) + len(in.MessageID) + len(in.CollapseKey) +
		len(in.RestrictedPackageName) + len(in.Data) + len(in.Notification)
}
