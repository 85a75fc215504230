// Package router decides where a message goes: it validates downstream
// messages against registrations and senders, hands them to the durable queue
// (or answers them at once), and routes upstream messages and receipts to the
// sender's app-server connections.
package router

import (
	"context"
	"errors"

	"github.com/ccsd/ccsd/internal/gcm"
	"github.com/ccsd/ccsd/internal/queue"
)

// Result is the answer to one downstream message: an ACK when Code is
// empty, otherwise a NACK with Code and Description.
type Result struct {
	Code        gcm.ErrorCode
	Description string
	Canonical   string // canonical registration id for the ACK, when the target was an alias
}

// OK reports whether the result is an ACK.
func (r Result) OK() bool { return r.Code == "" }

// Ticket is the promise of a Result. A ticket from Send is answered once the
// message is stored (persist before ACK); Immediate tickets are already
// answered. Tickets are values; waiting does not allocate.
type Ticket struct {
	res Result
	w   waiter
}

// waiter is what a stored message's ticket waits on (a *queue.Pending).
type waiter interface {
	Wait(ctx context.Context) error
}

// Immediate returns a ticket already answered with res.
func Immediate(res Result) Ticket { return Ticket{res: res} }

// Wait blocks until the ticket is answered or ctx ends; in the latter case
// it answers SERVICE_UNAVAILABLE (the message may or may not be stored, and
// the app server retries; receivers deduplicate by message id).
func (t Ticket) Wait(ctx context.Context) Result {
	if t.w == nil {
		return t.res
	}
	if err := t.w.Wait(ctx); err != nil {
		if errors.Is(err, queue.ErrDeviceFull) {
			return Result{Code: gcm.DeviceMessageRateExceeded, Description: "Downstream message rate exceeded for this registration id: the device has too many stored messages"}
		}
		return Result{Code: gcm.ServiceUnavailable, Description: "message could not be stored: retry with back-off"}
	}
	return t.res
}

// Stored reports whether the ticket waits on the store (tests, metrics).
func (t Ticket) Stored() bool { return t.w != nil }
