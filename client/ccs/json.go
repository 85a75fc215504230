package ccs

import (
	"encoding/json"
	"errors"
	"strconv"
)

// payload is the top level of a server-originated JSON payload, as byte
// slices of the input (strings without their quotes, still escaped when
// the matching esc bit is set).
type payload struct {
	messageType, messageID, from, errCode, desc, regID, controlType, category []byte
	esc                                                                       uint16 // bit i: field i has escapes
	data                                                                      []byte // raw JSON object, nil when absent
	ttl                                                                       int
	hasTTL                                                                    bool
}

// Field indexes into payload.esc.
const (
	fMessageType = iota
	fMessageID
	fFrom
	fError
	fDesc
	fRegID
	fControlType
	fCategory
)

var errJSON = errors.New("ccs: malformed json payload")

// maxJSONDepth bounds nesting while skipping values.
const maxJSONDepth = 32

// parsePayload scans the JSON object b into p without allocating.
func parsePayload(b []byte, p *payload) error {
	*p = payload{}
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return errJSON
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return trailing(b, i+1)
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return errJSON
		}
		kend, _, ok := scanString(b, i)
		if !ok {
			return errJSON
		}
		key := b[i+1 : kend-1]
		i = skipWS(b, kend)
		if i >= len(b) || b[i] != ':' {
			return errJSON
		}
		i = skipWS(b, i+1)
		if i >= len(b) {
			return errJSON
		}
		vstart := i
		if b[i] == '"' {
			vend, esc, ok := scanString(b, i)
			if !ok {
				return errJSON
			}
			p.setString(key, b[vstart+1:vend-1], esc)
			i = vend
		} else {
			vend, ok := skipValue(b, i, 1)
			if !ok {
				return errJSON
			}
			v := b[vstart:vend]
			switch string(key) {
			case "data":
				if v[0] == '{' {
					p.data = v
				}
			case "time_to_live":
				if n, err := strconv.Atoi(string(v)); err == nil {
					p.ttl, p.hasTTL = n, true
				}
			}
			i = vend
		}
		i = skipWS(b, i)
		if i >= len(b) {
			return errJSON
		}
		switch b[i] {
		case ',':
			i = skipWS(b, i+1)
		case '}':
			return trailing(b, i+1)
		default:
			return errJSON
		}
	}
}

func trailing(b []byte, i int) error {
	if skipWS(b, i) != len(b) {
		return errJSON
	}
	return nil
}

func (p *payload) setString(key, v []byte, esc bool) {
	var f int
	switch string(key) {
	case "message_type":
		p.messageType, f = v, fMessageType
	case "message_id":
		p.messageID, f = v, fMessageID
	case "from":
		p.from, f = v, fFrom
	case "error":
		p.errCode, f = v, fError
	case "error_description":
		p.desc, f = v, fDesc
	case "registration_id":
		p.regID, f = v, fRegID
	case "control_type":
		p.controlType, f = v, fControlType
	case "category":
		p.category, f = v, fCategory
	default:
		return
	}
	if esc {
		p.esc |= 1 << f
	} else {
		p.esc &^= 1 << f
	}
}

// str returns field f (whose bytes are v) as a string, unescaping it when
// needed.
func (p *payload) str(f int, v []byte) string {
	if p.esc&(1<<f) == 0 {
		return string(v)
	}
	return unescapeJSON(v)
}

// unescapeJSON decodes the contents of a JSON string (without quotes).
func unescapeJSON(v []byte) string {
	q := make([]byte, 0, len(v)+2)
	q = append(append(append(q, '"'), v...), '"')
	var s string
	if err := json.Unmarshal(q, &s); err != nil {
		return string(v)
	}
	return s
}

func skipWS(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// scanString scans the string starting with the quote at b[i] and returns
// the index after its closing quote and whether it contains escapes.
func scanString(b []byte, i int) (end int, esc bool, ok bool) {
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return j + 1, esc, true
		case c == '\\':
			esc = true
			j++
		case c < 0x20:
			return 0, false, false
		}
	}
	return 0, false, false
}

// skipValue skips the non-string JSON value at b[i].
func skipValue(b []byte, i, depth int) (int, bool) {
	if i >= len(b) {
		return 0, false
	}
	switch b[i] {
	case '"':
		end, _, ok := scanString(b, i)
		return end, ok
	case '{', '[':
		if depth > maxJSONDepth {
			return 0, false
		}
		closer := byte('}')
		if b[i] == '[' {
			closer = ']'
		}
		obj := b[i] == '{'
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == closer {
			return i + 1, true
		}
		for {
			if obj {
				if i >= len(b) || b[i] != '"' {
					return 0, false
				}
				end, _, ok := scanString(b, i)
				if !ok {
					return 0, false
				}
				i = skipWS(b, end)
				if i >= len(b) || b[i] != ':' {
					return 0, false
				}
				i = skipWS(b, i+1)
			}
			end, ok := skipValue(b, i, depth+1)
			if !ok {
				return 0, false
			}
			i = skipWS(b, end)
			if i >= len(b) {
				return 0, false
			}
			if b[i] == closer {
				return i + 1, true
			}
			if b[i] != ',' {
				return 0, false
			}
			i = skipWS(b, i+1)
		}
	default:
		j := i
		for j < len(b) {
			c := b[j]
			if c == ',' || c == '}' || c == ']' || c == ' ' || c == '\t' || c == '\n' || c == '\r' {
				break
			}
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c == '-' || c == '+' || c == '.' || c == 'E') {
				return 0, false
			}
			j++
		}
		if j == i {
			return 0, false
		}
		return j, true
	}
}

// dataMap decodes a raw JSON data object into string pairs; non-string
// values keep their JSON text.
func dataMap(raw []byte) map[string]string {
	if raw == nil {
		return nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		var s string
		if len(v) > 0 && v[0] == '"' && json.Unmarshal(v, &s) == nil {
			out[k] = s
		} else {
			out[k] = string(v)
		}
	}
	return out
}
