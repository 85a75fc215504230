// Package deviceserver is the device endpoint of ccsd: MCS over TLS (port
// 5228) for GCM/FCM device clients. It logs devices in, answers heartbeats,
// delivers their stored and live downstream messages, applies their acks and
// takes their upstream messages (mcs.md §2–§4, §8, §9; protocol.md §10).
//
// # Connections
//
// Every connection has one reader goroutine and at most one writer goroutine
// at a time. The reader parses client frames (mcs.Reader, whose buffer is
// given back whenever nothing is buffered) and applies them; a writer run is
// started when there is something to write and ends when there is nothing
// left, so an idle logged-in device costs a blocked reader, a small struct
// and its TLS state, and no timer unless IdleTimeout is set. Writer runs go
// to one of at most 32 parked writer goroutines shared by all connections
// (their stacks are grown already), or to a new goroutine. The writer writes
// exactly one frame per Write call, from a buffer borrowed from a pool for
// that one write (mcs.md §2.3 rule 1).
//
// # Stream ids
//
// Every packet the server sends carries last_stream_id_received (mcs.md
// §4.2). A client treats that number as the acknowledgement of its upstream
// messages, so the value never covers an upstream message that is not stored
// yet (DESIGN invariant 1): while an upstream message is being stored the
// server stamps the count of packets received before it; once it is stored
// (or refused, which the device learns from a send_error message) the stamp
// is the full receive count again, followed by a StreamAck IQ. The reader
// handles one upstream message at a time, so at most one is pending.
//
// # Acknowledgements and persistent ids
//
// A downstream message is acknowledged by any of the three signals of mcs.md
// §4.4: LoginRequest.received_persistent_id, a SelectiveAck IQ, or
// last_stream_id_received on any client packet. An acknowledged stored
// message is retired from the store and, when the app server asked for one,
// its delivery receipt is emitted. An acknowledged id that is not in flight
// on this connection is retired only after the store confirms that the
// message belongs to this device.
//
// The persistent_id of a stored message is mcs.NewPersistentID(accepted µs,
// stream sequence): the same on every redelivery and unique in the store.
// Messages that are never stored (time_to_live 0) and send_error messages get
// "1:<16-digit µs>%<16 hex>", where the hex is a random per-server prefix and
// a counter; the leading "1" keeps mcs.ParsePersistentID from mapping them to
// a stored sequence, and their acknowledgement does nothing.
//
// # Delivery rules (protocol.md §10)
//
// GCM's storage limits are enforced when a device's backlog is read at login,
// because that is where they were visible to GCM users: messages stored while
// the device was away.
//
//   - Expired messages (accepted + time_to_live < now) are retired, not
//     delivered, wherever they are met.
//   - More than 100 stored non-collapsible messages: all of them are retired
//     and each registration concerned gets one stored
//     message_type=deleted_messages message whose app_data total_deleted is
//     the number dropped for it (from = its sender, category = its app). The
//     marker is stored before the messages are retired.
//   - More than 4 distinct collapse keys stored: the newest 4 are kept, the
//     others retired. (JetStream itself keeps only the newest message per
//     collapse key.)
//
// Messages are delivered in store order, so in order per registration, at
// least once, with at most MaxInFlight unacknowledged on a connection. Live
// messages that arrive while the window is full wait in a small bounded
// queue; when it overflows the copies are dropped and the messages are read
// again from the store, from the first one not delivered, once the window
// opens (the store is the buffer, DESIGN invariant 4). At login the device
// joins presence first, then its backlog is read; live messages whose
// sequence is not above the last one read are skipped, so there are neither
// gaps nor duplicates.
//
// # Idle devices and delay_while_idle
//
// MCS has no idle signal that GCM documented, so ccsd defines one: a
// HeartbeatPing or LoginRequest whose status field has bit 0 set says the
// device is idle; any later client packet that carries status with bit 0
// clear says it is active. While a device is idle, messages with
// delay_while_idle (and not priority high) are held and delivered when it
// becomes active; a reconnect delivers the whole backlog regardless. At most
// 1024 messages are held, the first 16 decoded in memory and the others
// only as sequence numbers, read back from the store when released; past
// that, delay_while_idle messages are delivered even to an idle device. A held
// message lets later messages of its registration pass it, as in GCM. A
// time_to_live 0 message with delay_while_idle is dropped while the device is
// idle (it is now or never).
//
// # Protocol errors
//
// The server reads only the tags clients send (0, 1, 2, 4, 7, 8). Any other
// tag, including the server-only and closed-source ones (3, 5, 6, 9–15), an
// undecodable payload, a second LoginRequest, a length varint over 5 bytes or
// a frame over MaxFrameBytes ends the connection: the server sends Close and
// closes it, with a counted reason (metrics.MCSClosed). A device that sends
// more than 10 heartbeats a second (beyond a burst of 20) is closed the same
// way. Unanswered server pings never close a connection (push-receiver 2.1.1
// never answers them); dead peers are found by TCP keepalive, write errors
// and the optional IdleTimeout.
//
// # Upstream
//
// A DataMessageStanza from the device is an upstream message (mcs.md §9). It
// is handed to Backend.Upstream, which returns once it is stored; only then
// does the stamp cover it, and a StreamAck IQ is sent. When it is refused,
// the device gets a data message with app_data message_type=send_error,
// error=<InvalidSender|MessageTooBig|InvalidParameters|ServiceUnavailable>
// and google.message_id=<its id>, and the connection stays up. Replies to
// IdleNotification (category com.google.android.gsf.gtalkservice) are
// ignored.
package deviceserver
