package xmppserver

import (
	"context"

	"github.com/ccsd/ccsd/internal/gcm"
	"github.com/ccsd/ccsd/internal/router"
)

// Backend is what the CCS endpoint needs from the rest of ccsd.
type Backend interface {
	// Authenticate checks a sender's API key in constant time; ErrUnauthorized for an unknown or
	// revoked sender or a wrong key; other errors are internal (answer <failure><temporary-auth-failure/>).
	Authenticate(ctx context.Context, senderID string, apiKey []byte) error
	// Send validates and stores (or answers at once) one downstream message. in's slices are valid
	// only during the call. The ticket is answered after the message is stored.
	Send(ctx context.Context, senderID string, in *gcm.Inbound) router.Ticket
	// Attach is called when a connection is bound; the Feed delivers upstream messages and receipts
	// for this connection to push. A nil Feed means none.
	Attach(ctx context.Context, senderID, connID string, window int) (Feed, error)
}

// Feed is one connection's share of its sender's upstream messages and
// receipts (router.Feed; the router implements it).
//
// The connection's writer goroutine receives from C while fewer than the
// window are un-ACKed; its reader goroutine calls Ack concurrently; Close is
// called once, after both have stopped. Implementations must allow Ack and C
// to be used from different goroutines.
type Feed = router.Feed

// Upstream is one server-originated message: ID is its message_id, JSON the
// payload.
type Upstream = router.Upstream

// ErrUnauthorized is what Backend.Authenticate returns for an unknown or
// revoked sender or a wrong API key (the router's error).
var ErrUnauthorized = router.ErrUnauthorized
