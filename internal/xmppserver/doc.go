// Package xmppserver is the CCS endpoint: it accepts app-server connections
// over TLS from the first byte, negotiates the XMPP session (SASL PLAIN,
// stream restart, resource binding, legacy session), reads downstream
// messages and answers each with an ACK or NACK once the Backend stored it,
// and pushes upstream messages and receipts from the Backend's Feed.
//
// # Goroutines
//
// Each connection has one reader goroutine (negotiation and stanza
// handling), one writer goroutine (the only one that writes to the socket;
// it also pulls the Feed) and, once bound, one acker goroutine that waits
// the tickets of pending downstream messages in order and queues their
// answers. All are counted by the Server's WaitGroup; Drain and Close wait
// for them.
//
// # Window policy
//
// At most Config.MaxPending downstream messages may be unanswered on one
// connection (ACKs from the app server are never counted). When a client
// sends more, the reader stops reading from the socket until ccsd's own
// answers free the window. Answers depend only on the store, never on the
// client, so this cannot deadlock. Memory stays bounded: the pending queue
// is a fixed ring of MaxPending slots, the outbound queue has a byte limit
// beyond which the acker (and with it the window) waits for the writer, and
// a client that does not read its answers is closed when a write has not
// completed within WriteTimeout (reason "slow-consumer").
//
// In the other direction the writer pulls from the Feed only while fewer
// than MaxPending upstream messages and receipts are un-ACKed on the
// connection. An app-server ACK must name a message in flight on this
// connection (the "dr2:"-stripped id of a receipt is accepted too);
// anything else is answered with a BAD_ACK NACK.
//
// # Draining
//
// Server.Drain sends every bound connection the CONNECTION_DRAINING
// control message; from then on new downstream messages on it are NACKed
// with CONNECTION_DRAINING, pending ones are answered, ACKs for upstream in
// flight are accepted but no new upstream is pushed, and the connection is
// closed with </stream:stream> once both windows are empty (or after
// DrainTimeout).
package xmppserver
