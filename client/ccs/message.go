package ccs

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// Message is one downstream message (protocol.md §4). The json tags give the
// wire names; the SDK encodes it itself without reflection.
type Message struct {
	// To is the target: a registration token, a notification key or
	// "/topics/<name>".
	To string `json:"to,omitempty"`
	// Condition is a topic condition expression (FCM era), instead of To.
	Condition string `json:"condition,omitempty"`
	// MessageID is required and correlates the ACK or NACK.
	MessageID   string `json:"message_id"`
	CollapseKey string `json:"collapse_key,omitempty"`
	// Priority is "normal" or "high"; empty omits it.
	Priority string `json:"priority,omitempty"`
	// TimeToLive in seconds (0..2419200); nil omits it (the server default
	// is 4 weeks).
	TimeToLive               *int   `json:"time_to_live,omitempty"`
	DelayWhileIdle           bool   `json:"delay_while_idle,omitempty"`
	DeliveryReceiptRequested bool   `json:"delivery_receipt_requested,omitempty"`
	DryRun                   bool   `json:"dry_run,omitempty"`
	ContentAvailable         bool   `json:"content_available,omitempty"`
	MutableContent           bool   `json:"mutable_content,omitempty"`
	RestrictedPackageName    string `json:"restricted_package_name,omitempty"`
	// Data is the app payload (keys plus values at most 4096 bytes).
	Data         map[string]string `json:"data,omitempty"`
	Notification *Notification     `json:"notification,omitempty"`

	// RawJSON, when set, is sent verbatim as the payload instead of the
	// fields above (MessageID must still match its message_id for the answer
	// to be matched). For tests that need arbitrary payloads.
	RawJSON []byte `json:"-"`
}

// Notification is the display payload of a downstream message (GCM 3.0).
type Notification struct {
	Title        string   `json:"title,omitempty"`
	Body         string   `json:"body,omitempty"`
	Icon         string   `json:"icon,omitempty"`
	Sound        string   `json:"sound,omitempty"`
	Badge        string   `json:"badge,omitempty"`
	Tag          string   `json:"tag,omitempty"`
	Color        string   `json:"color,omitempty"`
	ClickAction  string   `json:"click_action,omitempty"`
	BodyLocKey   string   `json:"body_loc_key,omitempty"`
	BodyLocArgs  []string `json:"body_loc_args,omitempty"`
	TitleLocKey  string   `json:"title_loc_key,omitempty"`
	TitleLocArgs []string `json:"title_loc_args,omitempty"`
}

// TTL returns a pointer to seconds, for Message.TimeToLive.
func TTL(seconds int) *int { return &seconds }

// Response is the server's answer to one downstream message.
type Response struct {
	MessageID string
	// From is the target the message was sent to (ACK and NACK).
	From string
	// Error is the NACK code (for example "BAD_REGISTRATION"); empty for an
	// ACK.
	Error       string
	Description string
	// RegistrationID is the canonical registration id, when the server
	// reported one.
	RegistrationID string
	// Err is set when no answer came: the connection was lost (the message
	// may or may not have been accepted; resend it) or the server answered
	// with a stanza error.
	Err error
}

// OK reports whether the message was ACKed.
func (r Response) OK() bool { return r.Error == "" && r.Err == nil }

// Upstream is a device-originated message (protocol.md §6.1).
type Upstream struct {
	From      string // registration token of the sending app instance
	Category  string // the app's package
	MessageID string
	Data      map[string]string
	TTL       int // seconds; -1 when absent
}

// Receipt is a delivery receipt (protocol.md §6.2).
type Receipt struct {
	MessageID            string // "dr2:" + OriginalMessageID; the id that is ACKed
	OriginalMessageID    string
	From                 string
	Category             string
	Status               string // message_status, "MESSAGE_SENT_TO_DEVICE"
	DeviceRegistrationID string
	SentTimestamp        string // message_sent_timestamp, ms since epoch, when present
	Data                 map[string]string
}

// AppendJSON appends the CCS JSON payload of m to dst, as the SDK sends it
// (RawJSON verbatim when set). It does not allocate beyond growing dst,
// unless m has a Notification.
func (m *Message) AppendJSON(dst []byte) []byte { return appendMessage(dst, m) }

// appendMessage appends the JSON payload of m.
func appendMessage(dst []byte, m *Message) []byte {
	if m.RawJSON != nil {
		return append(dst, m.RawJSON...)
	}
	dst = append(dst, '{')
	first := true
	str := func(key, v string) {
		if v == "" {
			return
		}
		dst = appendKey(dst, &first, key)
		dst = appendJSONString(dst, v)
	}
	flag := func(key string, v bool) {
		if v {
			dst = appendKey(dst, &first, key)
			dst = append(dst, "true"...)
		}
	}
	str("to", m.To)
	str("condition", m.Condition)
	dst = appendKey(dst, &first, "message_id")
	dst = appendJSONString(dst, m.MessageID)
	str("collapse_key", m.CollapseKey)
	str("priority", m.Priority)
	if m.TimeToLive != nil {
		dst = appendKey(dst, &first, "time_to_live")
		dst = strconv.AppendInt(dst, int64(*m.TimeToLive), 10)
	}
	flag("delay_while_idle", m.DelayWhileIdle)
	flag("delivery_receipt_requested", m.DeliveryReceiptRequested)
	flag("dry_run", m.DryRun)
	flag("content_available", m.ContentAvailable)
	flag("mutable_content", m.MutableContent)
	str("restricted_package_name", m.RestrictedPackageName)
	if len(m.Data) > 0 {
		dst = appendKey(dst, &first, "data")
		dst = append(dst, '{')
		dfirst := true
		for k, v := range m.Data {
			dst = appendKey(dst, &dfirst, k)
			dst = appendJSONString(dst, v)
		}
		dst = append(dst, '}')
	}
	if m.Notification != nil {
		dst = appendKey(dst, &first, "notification")
		b, _ := json.Marshal(m.Notification) // cannot fail: strings only
		dst = append(dst, b...)
	}
	return append(dst, '}')
}

func appendKey(dst []byte, first *bool, key string) []byte {
	if !*first {
		dst = append(dst, ',')
	}
	*first = false
	dst = appendJSONString(dst, key)
	return append(dst, ':')
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string. Invalid UTF-8 becomes
// U+FFFD, as encoding/json does.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// appendAck appends the app server's ACK of an upstream message or receipt.
func appendAck(dst []byte, to, messageID string) []byte {
	dst = append(dst, `{"to":`...)
	dst = appendJSONString(dst, to)
	dst = append(dst, `,"message_id":`...)
	dst = appendJSONString(dst, messageID)
	return append(dst, `,"message_type":"ack"}`...)
}
