package xmpp

import (
	"strconv"

	"github.com/ccsd/ccsd/internal/xmltok"
)

// Writers append complete wire bytes to dst. Attribute values go through
// xmltok.AppendAttr, text through xmltok.AppendText (JSON quotes stay raw).
// None allocates beyond growing dst.

func appendAttrBytes(dst []byte, name string, v []byte) []byte {
	dst = append(dst, ' ')
	dst = append(dst, name...)
	dst = append(dst, `="`...)
	dst = xmltok.AppendAttrBytes(dst, v)
	return append(dst, '"')
}

func appendAttrString(dst []byte, name, v string) []byte {
	dst = append(dst, ' ')
	dst = append(dst, name...)
	dst = append(dst, `="`...)
	dst = xmltok.AppendAttr(dst, v)
	return append(dst, '"')
}

func appendStreamHeader(dst []byte, from, id string) []byte {
	dst = append(dst, `<?xml version='1.0'?><stream:stream`...)
	dst = appendAttrString(dst, "from", from)
	dst = appendAttrString(dst, "id", id)
	return append(dst, ` version="1.0" xmlns:stream="`+NSStream+`" xmlns="`+NSClient+`">`...)
}

func appendFeaturesSASL(dst []byte, mechs []string) []byte {
	dst = append(dst, `<stream:features><mechanisms xmlns="`+NSSASL+`">`...)
	for _, m := range mechs {
		dst = append(dst, "<mechanism>"...)
		dst = xmltok.AppendTextString(dst, m)
		dst = append(dst, "</mechanism>"...)
	}
	return append(dst, "</mechanisms></stream:features>"...)
}

func appendFeaturesBind(dst []byte) []byte {
	return append(dst, `<stream:features><bind xmlns="`+NSBind+`"/><session xmlns="`+NSSession+`"/></stream:features>`...)
}

func appendSASLSuccess(dst []byte) []byte {
	return append(dst, `<success xmlns="`+NSSASL+`"/>`...)
}

func appendSASLFailure(dst []byte, condition string) []byte {
	dst = append(dst, `<failure xmlns="`+NSSASL+`"><`...)
	dst = append(dst, condition...)
	return append(dst, "/></failure>"...)
}

// appendIQStart appends `<iq type="T"[ id=".."][ from=".."][ to=".."]`.
func appendIQStart(dst []byte, typ string, id []byte, from, to string) []byte {
	dst = append(dst, `<iq type="`...)
	dst = append(dst, typ...)
	dst = append(dst, '"')
	if id != nil {
		dst = appendAttrBytes(dst, "id", id)
	}
	if from != "" {
		dst = appendAttrString(dst, "from", from)
	}
	if to != "" {
		dst = appendAttrString(dst, "to", to)
	}
	return dst
}

func appendBindResult(dst, id []byte, jid string) []byte {
	dst = appendIQStart(dst, "result", id, "", "")
	dst = append(dst, `><bind xmlns="`+NSBind+`"><jid>`...)
	dst = xmltok.AppendTextString(dst, jid)
	return append(dst, "</jid></bind></iq>"...)
}

func appendIQResult(dst, id []byte, from, to string) []byte {
	dst = appendIQStart(dst, "result", id, from, to)
	return append(dst, "/>"...)
}

func appendIQError(dst, id []byte, from, to string, e *StanzaError) []byte {
	dst = appendIQStart(dst, "error", id, from, to)
	dst = append(dst, '>')
	dst = appendStanzaError(dst, e)
	return append(dst, "</iq>"...)
}

// appendStanzaError appends <error [code=".."] type=".."><COND .../>[<text>..</text>]</error>.
func appendStanzaError(dst []byte, e *StanzaError) []byte {
	dst = append(dst, "<error"...)
	if e.Code != 0 {
		dst = append(dst, ` code="`...)
		dst = strconv.AppendInt(dst, int64(e.Code), 10)
		dst = append(dst, '"')
	}
	dst = appendAttrString(dst, "type", e.Type)
	dst = append(dst, "><"...)
	dst = append(dst, e.Condition...)
	dst = append(dst, ` xmlns="`+NSStanzas+`"/>`...)
	if e.Text != "" {
		dst = append(dst, `<text xmlns="`+NSStanzas+`">`...)
		dst = xmltok.AppendTextString(dst, e.Text)
		dst = append(dst, "</text>"...)
	}
	return append(dst, "</error>"...)
}

func appendStreamError(dst []byte, e *StreamError) []byte {
	dst = append(dst, "<stream:error><"...)
	dst = append(dst, e.Condition...)
	dst = append(dst, ` xmlns="`+NSStreams+`"/>`...)
	if e.Text != "" {
		dst = append(dst, `<text xmlns="`+NSStreams+`">`...)
		dst = xmltok.AppendTextString(dst, e.Text)
		dst = append(dst, "</text>"...)
	}
	return append(dst, "</stream:error></stream:stream>"...)
}

func appendGCM(dst []byte, env Envelope, to string, json []byte) []byte {
	if env == EnvelopeNormal {
		dst = append(dst, "<message"...)
		dst = appendAttrString(dst, "to", to)
		dst = append(dst, ` from="`+DevicesJID+`" type="normal"><gcm xmlns="`+NSGCM+`">`...)
		dst = xmltok.AppendText(dst, json)
		return append(dst, "</gcm></message>"...)
	}
	dst = append(dst, `<message><data:gcm xmlns:data="`+NSGCM+`">`...)
	dst = xmltok.AppendText(dst, json)
	return append(dst, "</data:gcm></message>"...)
}

func appendMessageError(dst, id []byte, to string, gcmRaw []byte, e *StanzaError) []byte {
	dst = append(dst, "<message"...)
	if id != nil {
		dst = appendAttrBytes(dst, "id", id)
	}
	dst = append(dst, ` type="error"`...)
	if to != "" {
		dst = appendAttrString(dst, "to", to)
	}
	dst = append(dst, '>')
	dst = append(dst, gcmRaw...)
	dst = appendStanzaError(dst, e)
	return append(dst, "</message>"...)
}

// Client side.

func appendClientStreamHeader(dst []byte, to string) []byte {
	dst = append(dst, `<?xml version='1.0'?><stream:stream`...)
	dst = appendAttrString(dst, "to", to)
	return append(dst, ` version="1.0" xmlns="`+NSClient+`" xmlns:stream="`+NSStream+`">`...)
}

func appendAuthPlain(dst []byte, authzid, authcid, password string) []byte {
	dst = append(dst, `<auth xmlns="`+NSSASL+`" mechanism="PLAIN">`...)
	dst = appendBase64(dst, authzid, "\x00", authcid, "\x00", password)
	return append(dst, "</auth>"...)
}

func appendBindRequest(dst []byte, id, resource string) []byte {
	dst = append(dst, `<iq type="set"`...)
	dst = appendAttrString(dst, "id", id)
	if resource == "" {
		return append(dst, `><bind xmlns="`+NSBind+`"/></iq>`...)
	}
	dst = append(dst, `><bind xmlns="`+NSBind+`"><resource>`...)
	dst = xmltok.AppendTextString(dst, resource)
	return append(dst, "</resource></bind></iq>"...)
}

func appendSessionRequest(dst []byte, id string) []byte {
	dst = append(dst, `<iq type="set"`...)
	dst = appendAttrString(dst, "id", id)
	return append(dst, `><session xmlns="`+NSSession+`"/></iq>`...)
}

func appendPing(dst []byte, id, to string) []byte {
	dst = append(dst, `<iq type="get"`...)
	dst = appendAttrString(dst, "id", id)
	if to != "" {
		dst = appendAttrString(dst, "to", to)
	}
	return append(dst, `><ping xmlns="`+NSPing+`"/></iq>`...)
}

func appendClientGCM(dst []byte, json []byte) []byte {
	dst = append(dst, `<message id=""><gcm xmlns="`+NSGCM+`">`...)
	dst = xmltok.AppendText(dst, json)
	return append(dst, "</gcm></message>"...)
}
