// Package gcm is the domain of ccsd: downstream and upstream messages, ACKs
// and NACKs, delivery receipts, control messages, error codes, validation and
// the JSON codec of the CCS payload. It does no I/O.
//
// API CONTRACT (other packages are written against these exact signatures).
package gcm

// Limits of the protocol (protocol.md §4).
const (
	MaxTTL        = 2419200 // seconds (4 weeks); also the default time_to_live
	MaxDataBytes  = 4096    // bytes of data keys plus values
	ReceiptPrefix = "dr2:"
)

// ErrorCode is a CCS NACK error code (protocol.md §5.3).
type ErrorCode string

const (
	InvalidJSON               ErrorCode = "INVALID_JSON"
	BadRegistration           ErrorCode = "BAD_REGISTRATION"
	DeviceUnregistered        ErrorCode = "DEVICE_UNREGISTERED"
	BadAck                    ErrorCode = "BAD_ACK"
	ServiceUnavailable        ErrorCode = "SERVICE_UNAVAILABLE"
	InternalServerError       ErrorCode = "INTERNAL_SERVER_ERROR"
	ConnectionDraining        ErrorCode = "CONNECTION_DRAINING"
	DeviceMessageRateExceeded ErrorCode = "DEVICE_MESSAGE_RATE_EXCEEDED"
	TopicsMessageRateExceeded ErrorCode = "TOPICS_MESSAGE_RATE_EXCEEDED"
)

// Priority of a downstream message.
type Priority uint8

const (
	PriorityNormal Priority = iota // the default
	PriorityHigh
)

// InboundKind says what an app server sent.
type InboundKind uint8

const (
	// InboundSend is a downstream send request (no message_type).
	InboundSend InboundKind = iota + 1
	// InboundAck is the app server's ACK of an upstream message or receipt.
	InboundAck
)

// Inbound is a decoded app-server JSON payload. Byte slices alias the buffer
// given to DecodeInbound (which may have been rewritten in place to unescape
// JSON strings).
type Inbound struct {
	Kind      InboundKind
	MessageID []byte
	To        []byte

	// Send options (InboundSend).
	CollapseKey           []byte
	TTL                   int32 // seconds; MaxTTL when absent
	DelayWhileIdle        bool
	DryRun                bool
	DeliveryReceipt       bool // delivery_receipt_requested
	ContentAvailable      bool
	MutableContent        bool
	Priority              Priority
	RestrictedPackageName []byte
	Data                  []byte // the raw JSON object text of "data", nil when absent
	Notification          []byte // the raw JSON object text of "notification", nil when absent
}

// DecodeError is why a payload was refused. When StanzaError is true the
// payload has no usable message_id (or is not JSON at all) and must be
// answered with an XMPP stanza error (protocol.md §5.4, condition
// bad-request, type modify); otherwise it is answered with a NACK carrying
// Code and Description. MessageID and To are set when they could be read.
type DecodeError struct {
	Code        ErrorCode
	Description string
	StanzaError bool
	MessageID   []byte
	To          []byte
}

func (e *DecodeError) Error() string { return string(e.Code) + ": " + e.Description }

// DecodeInbound decodes and validates js, the unescaped text of a <gcm>
// element, into in. It may rewrite js in place; in's slices alias js. It
// validates every downstream field of protocol.md §4 (types strict; to and
// message_id required; data an object of at most MaxDataBytes with no
// reserved key: "from", "gcm", or any key starting with "google";
// time_to_live an integer 0..MaxTTL; priority "normal" or "high"; booleans
// JSON booleans; notification an object) and the ACK fields (message_id
// required, else BAD_ACK). Unknown fields are ignored. It does not allocate
// on success. Errors are *DecodeError.
func DecodeInbound(js []byte, in *Inbound) error { return decodeInbound(js, in) }

// AppendAck appends the JSON of an ACK: {"message_type":"ack","from":...,
// "message_id":...} plus "registration_id" when canonical is non-empty.
func AppendAck(dst, from, messageID, canonical []byte) []byte {
	return appendAck(dst, from, messageID, canonical)
}

// AppendNack appends the JSON of a NACK with error and error_description.
// from and messageID are omitted when empty.
func AppendNack(dst, from, messageID []byte, code ErrorCode, description string) []byte {
	return appendNack(dst, from, messageID, code, description)
}

// AppendControlDraining appends {"message_type":"control","control_type":"CONNECTION_DRAINING"}.
func AppendControlDraining(dst []byte) []byte {
	return append(dst, `{"message_type":"control","control_type":"CONNECTION_DRAINING"}`...)
}

// KV is one string key/value pair (app data as devices carry it).
type KV struct{ Key, Value string }

// Upstream is a device-originated message as the app server sees it
// (protocol.md §6.1).
type Upstream struct {
	From      string // registration id of the sending app instance
	Category  string // app package
	MessageID string
	TTL       int32 // seconds; omitted when <0
	Data      []KV
}

// AppendUpstream appends the upstream JSON (category, data, message_id,
// from, time_to_live).
func AppendUpstream(dst []byte, u *Upstream) []byte { return appendUpstream(dst, u) }

// Receipt is a delivery receipt (protocol.md §6.2).
type Receipt struct {
	OriginalMessageID    string
	DeviceRegistrationID string
	Category             string
	SentTimestamp        int64 // ms since epoch when the device acknowledged
}

// AppendReceipt appends the receipt JSON: message_type "receipt", from
// "gcm.googleapis.com", message_id "dr2:"+original, category, and data with
// message_status MESSAGE_SENT_TO_DEVICE, original_message_id,
// device_registration_id and message_sent_timestamp.
func AppendReceipt(dst []byte, r *Receipt) []byte { return appendReceipt(dst, r) }

// Message is a downstream message as ccsd stores and delivers it.
type Message struct {
	SenderID              string
	To                    string // registration id
	MessageID             string
	CollapseKey           string
	TTL                   int32 // seconds
	Accepted              int64 // ms since epoch when ccsd accepted it
	DelayWhileIdle        bool
	DeliveryReceipt       bool
	ContentAvailable      bool
	MutableContent        bool
	Priority              Priority
	RestrictedPackageName string
	Data                  []byte // raw JSON object, nil when absent
	Notification          []byte // raw JSON object, nil when absent
}

// AppendRecord appends the compact, versioned binary record of the
// downstream message in to dst, as the queue stores it. It does not
// allocate beyond growing dst.
func AppendRecord(dst []byte, sender []byte, in *Inbound, acceptedMs int64) []byte {
	return appendRecord(dst, sender, in, acceptedMs)
}

// DecodeRecord decodes a record made by AppendRecord into m (copying).
func DecodeRecord(b []byte, m *Message) error { return decodeRecord(b, m) }

// DataPairs calls fn for each key/value of a raw JSON data object, with
// string values unescaped and other values as their JSON text (GCM
// stringifies non-string values for the device).
func DataPairs(data []byte, fn func(key, value string)) error { return dataPairs(data, fn) }
