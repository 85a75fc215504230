package xmpp

import "github.com/ccsd/ccsd/internal/xmltok"

func parseStreamHeader(tk *xmltok.Tokenizer, raw []byte) (StreamHeader, error) {
	var h StreamHeader
	tk.Reset(raw)
	tok, err := tk.Next()
	if err != nil {
		return h, err
	}
	if tok.Kind != xmltok.StartElement || tok.SelfClosing {
		return h, &StreamError{Condition: "bad-format", Text: "stream header is not a start tag"}
	}
	if string(tok.Local) != "stream" {
		return h, &StreamError{Condition: "bad-format", Text: "root element is not stream"}
	}
	if tok.Prefix == nil {
		return h, &StreamError{Condition: "invalid-namespace", Text: "stream element without a prefix"}
	}
	var streamNS, defaultNS []byte
	var haveStream, haveDefault bool
	for _, a := range tok.Attrs {
		switch {
		case a.Prefix == nil && string(a.Local) == "xmlns":
			defaultNS, haveDefault = a.Value, true
		case string(a.Prefix) == "xmlns" && string(a.Local) == string(tok.Prefix):
			streamNS, haveStream = a.Value, true
		case a.Prefix == nil:
			var dst *string
			switch string(a.Local) {
			case "to":
				dst = &h.To
			case "from":
				dst = &h.From
			case "id":
				dst = &h.ID
			case "version":
				dst = &h.Version
			default:
				continue
			}
			v, err := xmltok.Unescape(nil, a.Value)
			if err != nil {
				return h, err
			}
			*dst = string(v)
		case string(a.Prefix) == "xml" && string(a.Local) == "lang":
			v, err := xmltok.Unescape(nil, a.Value)
			if err != nil {
				return h, err
			}
			h.Lang = string(v)
		}
	}
	if !haveStream {
		return h, &StreamError{Condition: "bad-namespace-prefix", Text: "stream prefix not declared"}
	}
	if ns, err := xmltok.Unescape(nil, streamNS); err != nil || string(ns) != NSStream {
		return h, &StreamError{Condition: "invalid-namespace", Text: "stream namespace is not " + NSStream}
	}
	if ns, err := xmltok.Unescape(nil, defaultNS); !haveDefault || err != nil || string(ns) != NSClient {
		return h, &StreamError{Condition: "invalid-namespace", Text: "content namespace is not " + NSClient}
	}
	return h, nil
}
