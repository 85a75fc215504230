package gcm

import (
	"fmt"
	"unicode/utf8"
)

// field names a top-level member of an app-server payload that
// DecodeInbound looks at.
type field uint8

const (
	fUnknown field = iota
	fMessageID
	fTo
	fMessageType
	fCollapseKey
	fTTL
	fDelayWhileIdle
	fDryRun
	fDeliveryReceipt
	fContentAvailable
	fMutableContent
	fPriority
	fRestrictedPackageName
	fData
	fNotification
	fCondition
	fRegistrationIDs
	fNotificationKey
	nFields
)

// fieldNames are the JSON names of the fields, for error descriptions.
var fieldNames = [nFields]string{
	fMessageID:             "message_id",
	fTo:                    "to",
	fMessageType:           "message_type",
	fCollapseKey:           "collapse_key",
	fTTL:                   "time_to_live",
	fDelayWhileIdle:        "delay_while_idle",
	fDryRun:                "dry_run",
	fDeliveryReceipt:       "delivery_receipt_requested",
	fContentAvailable:      "content_available",
	fMutableContent:        "mutable_content",
	fPriority:              "priority",
	fRestrictedPackageName: "restricted_package_name",
	fData:                  "data",
	fNotification:          "notification",
	fCondition:             "condition",
	fRegistrationIDs:       "registration_ids",
	fNotificationKey:       "notification_key",
}

// lookupField maps a decoded key to its field (fUnknown when ignored).
func lookupField(key []byte) field {
	switch string(key) {
	case "message_id":
		return fMessageID
	case "to":
		return fTo
	case "message_type":
		return fMessageType
	case "collapse_key":
		return fCollapseKey
	case "time_to_live":
		return fTTL
	case "delay_while_idle":
		return fDelayWhileIdle
	case "dry_run":
		return fDryRun
	case "delivery_receipt_requested":
		return fDeliveryReceipt
	case "content_available":
		return fContentAvailable
	case "mutable_content":
		return fMutableContent
	case "priority":
		return fPriority
	case "restricted_package_name":
		return fRestrictedPackageName
	case "data":
		return fData
	case "notification":
		return fNotification
	case "condition":
		return fCondition
	case "registration_ids":
		return fRegistrationIDs
	case "notification_key":
		return fNotificationKey
	}
	return fUnknown
}

// fieldValue is the last occurrence of a field: its kind and either its
// decoded string (kindString) or the raw JSON text of the value.
type fieldValue struct {
	kind kind
	v    []byte
}

// payload is what one pass over the top-level object found. It lives on
// the stack of decodeInbound.
type payload struct {
	f [nFields]fieldValue
	// data facts, of the last "data" object
	dataSize   int    // decoded bytes of keys plus values
	dataBadKey []byte // raw (escaped) text of the first reserved key, nil if none
}

// Description prefixes, in the wording of the real service.
const (
	prefixParse   = "InvalidJson: JSON_PARSING_ERROR : "
	prefixType    = "InvalidJson: JSON_TYPE_ERROR : "
	prefixTTL     = "InvalidJson: INVALID_TTL : "
	prefixTooBig  = "InvalidJson: MESSAGE_TOO_BIG : "
	prefixDataKey = "InvalidDataKey: "
)

func decodeInbound(js []byte, in *Inbound) error {
	*in = Inbound{}
	var p payload
	s := scanner{b: js}
	if !scanPayload(&s, &p) {
		return &DecodeError{
			Code:        InvalidJSON,
			Description: fmt.Sprintf("%s%s at offset %d", prefixParse, s.err, s.errAt),
			StanzaError: true,
		}
	}

	id := &p.f[fMessageID]
	switch mt := &p.f[fMessageType]; {
	case mt.kind == kindAbsent, mt.kind == kindNull:
		// A downstream send.
	case mt.kind == kindString && string(mt.v) == "ack":
		return decodeAck(&p, in)
	default:
		if err := requireMessageID(id); err != nil {
			return err
		}
		e := &DecodeError{Code: InvalidJSON, MessageID: id.v}
		if mt.kind == kindString {
			e.Description = fmt.Sprintf("%smessage_type %q is not accepted from app servers", prefixParse, clip(mt.v))
		} else {
			e.Description = typeError(fMessageType, "java.lang.String", mt)
		}
		if to := &p.f[fTo]; to.kind == kindString {
			e.To = to.v
		}
		return e
	}

	if err := requireMessageID(id); err != nil {
		return err
	}
	if why := validateSend(&p, in); why != "" {
		e := &DecodeError{Code: InvalidJSON, Description: why, MessageID: id.v}
		if to := &p.f[fTo]; to.kind == kindString {
			e.To = to.v
		}
		return e
	}
	in.Kind = InboundSend
	in.MessageID = id.v
	return nil
}

// scanPayload scans the top-level object of js into p. String values of
// known fields and all top-level keys are unescaped in place; every other
// value (including the members of data and notification) is left as it is.
func scanPayload(s *scanner, p *payload) bool {
	if s.peek() != '{' {
		if s.i >= len(s.b) {
			return s.fail("empty payload")
		}
		return s.fail("the payload is not a JSON object")
	}
	s.i++
	if s.peek() == '}' {
		s.i++
		return s.end()
	}
	for {
		if s.peek() != '"' {
			return s.fail("expected a string key")
		}
		key, _, ok := s.str(true, nil)
		if !ok {
			return false
		}
		if !s.expect(':', "expected ':'") {
			return false
		}
		f := lookupField(key)
		c := s.peek()
		start := s.i
		switch {
		case f == fUnknown:
			if _, ok := s.value(1); !ok {
				return false
			}
		case c == '"':
			v, _, ok := s.str(true, nil)
			if !ok {
				return false
			}
			p.f[f] = fieldValue{kind: kindString, v: v}
		case f == fData && c == '{':
			size, bad, ok := scanData(s, 2)
			if !ok {
				return false
			}
			p.dataSize, p.dataBadKey = size, bad
			p.f[f] = fieldValue{kind: kindObject, v: s.b[start:s.i]}
		default:
			k, ok := s.value(1)
			if !ok {
				return false
			}
			p.f[f] = fieldValue{kind: k, v: s.b[start:s.i]}
		}
		switch s.peek() {
		case ',':
			s.i++
		case '}':
			s.i++
			return s.end()
		default:
			return s.fail("expected ',' or '}'")
		}
	}
}

// requireMessageID checks that message_id is a non-empty string; otherwise
// the payload can only be answered with a stanza error.
func requireMessageID(id *fieldValue) error {
	switch {
	case id.kind == kindString && len(id.v) > 0:
		return nil
	case id.kind == kindAbsent, id.kind == kindNull, id.kind == kindString:
		return &DecodeError{
			Code:        InvalidJSON,
			Description: prefixParse + "Missing Required Field: message_id",
			StanzaError: true,
		}
	default:
		return &DecodeError{
			Code:        InvalidJSON,
			Description: typeError(fMessageID, "java.lang.String", id),
			StanzaError: true,
		}
	}
}

// decodeAck finishes an app server's ACK: message_id is required (else
// BAD_ACK), to is optional (receipt ACKs carry anything there).
func decodeAck(p *payload, in *Inbound) error {
	id, to := &p.f[fMessageID], &p.f[fTo]
	var why string
	switch {
	case id.kind == kindString && len(id.v) > 0:
	case id.kind == kindAbsent, id.kind == kindNull, id.kind == kindString:
		why = "Missing Required Field: message_id"
	default:
		why = fmt.Sprintf("Field \"message_id\" must be a JSON java.lang.String: %s", clip(id.v))
	}
	switch to.kind {
	case kindString, kindAbsent, kindNull:
	default:
		if why == "" {
			why = fmt.Sprintf("Field \"to\" must be a JSON java.lang.String: %s", clip(to.v))
		}
	}
	if why != "" {
		e := &DecodeError{Code: BadAck, Description: why}
		if id.kind == kindString {
			e.MessageID = id.v
		}
		if to.kind == kindString {
			e.To = to.v
		}
		return e
	}
	in.Kind = InboundAck
	in.MessageID = id.v
	if to.kind == kindString {
		in.To = to.v
	}
	return nil
}

// validateSend checks the downstream fields of p (protocol.md §4) and fills
// in. It returns the INVALID_JSON description of the first problem, or "".
// A JSON null is taken as an absent optional field.
func validateSend(p *payload, in *Inbound) string {
	for _, f := range [...]field{fRegistrationIDs, fNotificationKey, fCondition} {
		if k := p.f[f].kind; k != kindAbsent && k != kindNull {
			return fmt.Sprintf("%sField %q is not supported over XMPP: send to one registration with \"to\"", prefixParse, fieldNames[f])
		}
	}

	switch to := &p.f[fTo]; {
	case to.kind == kindString && len(to.v) > 0:
		in.To = to.v
	case to.kind == kindAbsent, to.kind == kindNull, to.kind == kindString:
		return prefixParse + "Missing Required Field: to"
	default:
		return typeError(fTo, "java.lang.String", to)
	}

	for _, f := range [...]field{fCollapseKey, fRestrictedPackageName} {
		v := &p.f[f]
		switch v.kind {
		case kindString:
			if f == fCollapseKey {
				in.CollapseKey = v.v
			} else {
				in.RestrictedPackageName = v.v
			}
		case kindAbsent, kindNull:
		default:
			return typeError(f, "java.lang.String", v)
		}
	}

	in.TTL = MaxTTL
	switch v := &p.f[fTTL]; v.kind {
	case kindNumber:
		ttl, ok := parseTTL(v.v)
		if !ok {
			return fmt.Sprintf("%sInvalid value (%s) for \"time_to_live\": must be between 0 and %d", prefixTTL, clip(v.v), MaxTTL)
		}
		in.TTL = ttl
	case kindAbsent, kindNull:
	default:
		return typeError(fTTL, "java.lang.Number", v)
	}

	for _, f := range [...]field{fDelayWhileIdle, fDryRun, fDeliveryReceipt, fContentAvailable, fMutableContent} {
		v := &p.f[f]
		var b bool
		switch v.kind {
		case kindTrue:
			b = true
		case kindFalse, kindAbsent, kindNull:
		default:
			return typeError(f, "java.lang.Boolean", v)
		}
		switch f {
		case fDelayWhileIdle:
			in.DelayWhileIdle = b
		case fDryRun:
			in.DryRun = b
		case fDeliveryReceipt:
			in.DeliveryReceipt = b
		case fContentAvailable:
			in.ContentAvailable = b
		case fMutableContent:
			in.MutableContent = b
		}
	}

	switch v := &p.f[fPriority]; v.kind {
	case kindString:
		switch string(v.v) {
		case "normal":
			in.Priority = PriorityNormal
		case "high":
			in.Priority = PriorityHigh
		default:
			return fmt.Sprintf("%sInvalid value (%s) for \"priority\": must be \"normal\" or \"high\"", prefixParse, clip(v.v))
		}
	case kindAbsent, kindNull:
	default:
		return typeError(fPriority, "java.lang.String", v)
	}

	switch v := &p.f[fData]; v.kind {
	case kindObject:
		if p.dataBadKey != nil {
			return fmt.Sprintf("%sdata key %q is reserved (\"from\", \"gcm\" and keys starting with \"google\" are)", prefixDataKey, clip(decodeString(p.dataBadKey)))
		}
		if p.dataSize > MaxDataBytes {
			return fmt.Sprintf("%sdata has %d bytes of keys and values; the limit is %d", prefixTooBig, p.dataSize, MaxDataBytes)
		}
		in.Data = v.v
	case kindAbsent, kindNull:
	default:
		return typeError(fData, "object", v)
	}

	switch v := &p.f[fNotification]; v.kind {
	case kindObject:
		in.Notification = v.v
	case kindAbsent, kindNull:
	default:
		return typeError(fNotification, "object", v)
	}
	return ""
}

// parseTTL parses the text of a JSON number as a time_to_live: an integer
// (no fraction, no exponent) in 0..MaxTTL.
func parseTTL(num []byte) (int32, bool) {
	if len(num) == 0 || len(num) > 7 {
		return 0, false // 2419200 has 7 digits; longer is out of range or not an integer
	}
	var n int32
	for _, c := range num {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int32(c-'0')
	}
	if n > MaxTTL || (len(num) > 1 && num[0] == '0') {
		return 0, false
	}
	return n, true
}

// typeError describes a field of the wrong JSON type.
func typeError(f field, want string, v *fieldValue) string {
	return fmt.Sprintf("%sField %q must be a JSON %s: %s", prefixType, fieldNames[f], want, clip(v.v))
}

// maxQuoted bounds how much of a client's value an error description
// repeats.
const maxQuoted = 100

// clip returns v as a string, cut to maxQuoted bytes at a rune boundary.
func clip(v []byte) string {
	if len(v) <= maxQuoted {
		return string(v)
	}
	n := maxQuoted
	for n > 0 && !utf8.RuneStart(v[n]) {
		n--
	}
	return string(v[:n]) + "..."
}

// decodeString decodes the JSON string text raw (without its quotes,
// already validated) into a new slice, leaving raw untouched.
func decodeString(raw []byte) []byte {
	buf := make([]byte, 0, len(raw)+2)
	buf = append(buf, '"')
	buf = append(buf, raw...)
	buf = append(buf, '"')
	s := scanner{b: buf}
	dec, _, ok := s.str(true, nil)
	if !ok {
		return raw
	}
	return dec
}
