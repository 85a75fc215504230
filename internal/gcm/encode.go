package gcm

import (
	"strconv"
	"unicode/utf8"
)

// The encoders below write the JSON that ccsd sends to app servers. They
// append to dst and allocate only when dst must grow. Strings are escaped
// so that the output is valid JSON and also safe as XML character data:
// besides the quote, the backslash and control characters, '<', '>' and
// '&' are written as \u escapes, and invalid UTF-8 becomes U+FFFD.

func appendAck(dst, from, messageID, canonical []byte) []byte {
	dst = append(dst, `{"message_type":"ack","from":`...)
	dst = appendQuoted(dst, from)
	dst = append(dst, `,"message_id":`...)
	dst = appendQuoted(dst, messageID)
	if len(canonical) > 0 {
		dst = append(dst, `,"registration_id":`...)
		dst = appendQuoted(dst, canonical)
	}
	return append(dst, '}')
}

func appendNack(dst, from, messageID []byte, code ErrorCode, description string) []byte {
	dst = append(dst, `{"message_type":"nack"`...)
	if len(from) > 0 {
		dst = append(dst, `,"from":`...)
		dst = appendQuoted(dst, from)
	}
	if len(messageID) > 0 {
		dst = append(dst, `,"message_id":`...)
		dst = appendQuoted(dst, messageID)
	}
	dst = append(dst, `,"error":`...)
	dst = appendQuoted(dst, code)
	if description != "" {
		dst = append(dst, `,"error_description":`...)
		dst = appendQuoted(dst, description)
	}
	return append(dst, '}')
}

func appendUpstream(dst []byte, u *Upstream) []byte {
	dst = append(dst, `{"category":`...)
	dst = appendQuoted(dst, u.Category)
	dst = append(dst, `,"data":{`...)
	for i := range u.Data {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendQuoted(dst, u.Data[i].Key)
		dst = append(dst, ':')
		dst = appendQuoted(dst, u.Data[i].Value)
	}
	dst = append(dst, `},"message_id":`...)
	dst = appendQuoted(dst, u.MessageID)
	dst = append(dst, `,"from":`...)
	dst = appendQuoted(dst, u.From)
	if u.TTL >= 0 {
		dst = append(dst, `,"time_to_live":`...)
		dst = strconv.AppendInt(dst, int64(u.TTL), 10)
	}
	return append(dst, '}')
}

func appendReceipt(dst []byte, r *Receipt) []byte {
	dst = append(dst, `{"message_type":"receipt","from":"gcm.googleapis.com","message_id":"`+ReceiptPrefix...)
	dst = appendQuotedBody(dst, r.OriginalMessageID)
	dst = append(dst, `","category":`...)
	dst = appendQuoted(dst, r.Category)
	dst = append(dst, `,"data":{"message_status":"MESSAGE_SENT_TO_DEVICE","original_message_id":`...)
	dst = appendQuoted(dst, r.OriginalMessageID)
	dst = append(dst, `,"device_registration_id":`...)
	dst = appendQuoted(dst, r.DeviceRegistrationID)
	dst = append(dst, `,"message_sent_timestamp":"`...)
	dst = strconv.AppendInt(dst, r.SentTimestamp, 10)
	return append(dst, `"},"time_to_live":0}`...)
}

// appendQuoted appends s as a JSON string, quotes included.
func appendQuoted[T ~string | ~[]byte](dst []byte, s T) []byte {
	dst = append(dst, '"')
	dst = appendQuotedBody(dst, s)
	return append(dst, '"')
}

// safe marks the ASCII bytes written as they are inside a JSON string.
var safe = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

const hexDigits = "0123456789abcdef"

// appendQuotedBody appends s escaped as the inside of a JSON string.
func appendQuotedBody[T ~string | ~[]byte](dst []byte, s T) []byte {
	start := 0 // s[start:i] is pending, to be copied unchanged
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if safe[c] {
				i++
				continue
			}
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
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		var buf [utf8.UTFMax]byte
		n := copy(buf[:], s[i:min(i+utf8.UTFMax, len(s))])
		r, size := utf8.DecodeRune(buf[:n])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	return append(dst, s[start:]...)
}
