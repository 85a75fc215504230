package xmpp

import (
	"io"

	"github.com/ccsd/ccsd/internal/xmltok"
)

// NSTLS is the STARTTLS namespace (a feature CCS must not offer; the client
// side records whether a server offers it).
const NSTLS = "urn:ietf:params:xml:ns:xmpp-tls"

// capture fields: which Stanza field a run of text goes to.
const (
	capGCM uint8 = iota + 1
	capResource
	capJID
	capText
	capMechanism
)

// textCapture collects the direct character data of one element. The first
// segment is aliased when it needs no unescaping; otherwise the text is built
// contiguously in Stanza.scratch.
type textCapture struct {
	field uint8 // 0 when nothing is captured
	depth int
	alias []byte
	start int // index in scratch where the text begins; -1 while aliased
	segs  int
}

func (s *Stanza) reset() {
	*s = Stanza{
		scratch: s.scratch[:0],
		mechs:   s.mechs[:0],
		decls:   s.decls[:0],
		nsbuf:   s.nsbuf[:0],
	}
}

func (s *Stanza) parse(tk *xmltok.Tokenizer, raw []byte) error {
	s.reset()
	tk.Reset(raw)
	var (
		depth     int
		capt      textCapture
		gcmDepth  int // depth of the open <gcm> child, 0 when none
		gcmStart  int
		childOpen bool // iq: the first child is open
		inBind    bool // iq: the first child is <bind> and open
		inMechs   bool // features: inside <mechanisms>
		children  int  // elements seen at depth 2
	)
	for {
		off := tk.Offset()
		tok, err := tk.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		switch tok.Kind {
		case xmltok.StartElement:
			depth++
			if err := s.pushDecls(tok.Attrs, depth); err != nil {
				return err
			}
			ns, ok := s.resolve(tok.Prefix)
			if !ok {
				return &StreamError{Condition: "bad-namespace-prefix", Text: "unbound element prefix"}
			}
			if err := s.checkAttrPrefixes(tok.Attrs); err != nil {
				return err
			}
			if depth == 1 {
				s.Local, s.NS = tok.Local, ns
				s.Kind = classify(tok.Local, ns)
				if err := s.rootAttrs(tok.Attrs); err != nil {
					return err
				}
				switch s.Kind {
				case KindAuth, KindSASLOther, KindSuccess:
					capt.begin(capText, 1)
				}
				continue
			}
			if depth == 2 {
				children++
			}
			switch s.Kind {
			case KindMessage:
				if depth == 2 && !s.HasGCM && string(tok.Local) == "gcm" && string(ns) == NSGCM {
					s.HasGCM = true
					gcmDepth, gcmStart = 2, off
					capt.begin(capGCM, 2)
				}
			case KindIQ:
				switch {
				case depth == 2 && children == 1:
					s.ChildLocal, s.ChildNS = tok.Local, ns
					childOpen = true
					inBind = string(tok.Local) == "bind" && string(ns) == NSBind
				case depth == 3 && inBind && string(ns) == NSBind && capt.field == 0:
					switch string(tok.Local) {
					case "resource":
						if s.BindResource == nil {
							capt.begin(capResource, 3)
						}
					case "jid":
						if s.BindJID == nil {
							capt.begin(capJID, 3)
						}
					}
				}
			case KindFailure, KindStreamError:
				if depth != 2 {
					break
				}
				if string(tok.Local) == "text" {
					if s.Text == nil {
						capt.begin(capText, 2)
					}
				} else if s.ChildLocal == nil {
					s.ChildLocal, s.ChildNS = tok.Local, ns
				}
			case KindFeatures:
				switch {
				case depth == 2:
					switch {
					case string(tok.Local) == "mechanisms" && string(ns) == NSSASL:
						inMechs = true
					case string(tok.Local) == "bind" && string(ns) == NSBind:
						s.FeatureBind = true
					case string(tok.Local) == "session" && string(ns) == NSSession:
						s.FeatureSession = true
					case string(tok.Local) == "starttls" && string(ns) == NSTLS:
						s.FeatureStartTLS = true
					}
				case depth == 3 && inMechs && string(tok.Local) == "mechanism" && string(ns) == NSSASL:
					capt.begin(capMechanism, 3)
				}
			}

		case xmltok.EndElement:
			if capt.field != 0 && capt.depth == depth {
				s.finish(&capt)
			}
			if depth == gcmDepth {
				s.GCMRaw = raw[gcmStart:tk.Offset():tk.Offset()]
				gcmDepth = 0
			}
			if depth == 2 {
				if childOpen {
					childOpen, inBind = false, false
				}
				inMechs = false
			}
			depth--
			s.popDecls(depth)

		case xmltok.CharData, xmltok.CDATA:
			if capt.field != 0 && capt.depth == depth {
				if err := s.add(&capt, tok); err != nil {
					return err
				}
			}
		}
	}
	if len(s.mechs) > 0 {
		s.Mechanisms = s.mechs
	}
	return nil
}

// classify names the kind of a top-level element.
func classify(local, ns []byte) StanzaKind {
	switch string(ns) {
	case NSClient:
		switch string(local) {
		case "message":
			return KindMessage
		case "iq":
			return KindIQ
		case "presence":
			return KindPresence
		}
	case NSSASL:
		switch string(local) {
		case "auth":
			return KindAuth
		case "response", "abort", "challenge":
			return KindSASLOther
		case "success":
			return KindSuccess
		case "failure":
			return KindFailure
		}
	case NSStream:
		switch string(local) {
		case "features":
			return KindFeatures
		case "error":
			return KindStreamError
		}
	}
	return KindOther
}

// rootAttrs fills the attribute fields from the top-level element.
func (s *Stanza) rootAttrs(attrs []xmltok.Attr) error {
	for _, a := range attrs {
		if a.Prefix != nil {
			continue
		}
		var dst *[]byte
		switch string(a.Local) {
		case "id":
			dst, s.HasID = &s.ID, true
		case "type":
			dst, s.HasType = &s.Type, true
		case "to":
			dst = &s.To
		case "from":
			dst = &s.From
		case "mechanism":
			dst = &s.Mechanism
		default:
			continue
		}
		v, err := s.value(a.Value)
		if err != nil {
			return err
		}
		*dst = v
	}
	return nil
}

// value unescapes an attribute value into scratch, or aliases it when it has
// no references.
func (s *Stanza) value(raw []byte) ([]byte, error) {
	if !hasAmp(raw) {
		return raw, nil
	}
	start := len(s.scratch)
	var err error
	s.scratch, err = xmltok.Unescape(s.scratch, raw)
	if err != nil {
		return nil, err
	}
	return s.scratch[start:len(s.scratch):len(s.scratch)], nil
}

func (c *textCapture) begin(field uint8, depth int) {
	*c = textCapture{field: field, depth: depth, start: -1}
}

// add appends one CharData or CDATA token to the capture.
func (s *Stanza) add(c *textCapture, tok xmltok.Token) error {
	cdata := tok.Kind == xmltok.CDATA
	if c.segs == 0 && (cdata || !hasAmp(tok.Text)) {
		c.alias, c.segs = tok.Text, 1
		return nil
	}
	if c.start < 0 {
		c.start = len(s.scratch)
		s.scratch = append(s.scratch, c.alias...)
	}
	c.segs++
	if cdata {
		s.scratch = append(s.scratch, tok.Text...)
		return nil
	}
	var err error
	s.scratch, err = xmltok.Unescape(s.scratch, tok.Text)
	return err
}

// finish stores the captured text in its field; an element without text
// leaves it nil.
func (s *Stanza) finish(c *textCapture) {
	var v []byte
	switch {
	case c.start >= 0:
		v = s.scratch[c.start:len(s.scratch):len(s.scratch)]
	case c.alias != nil:
		v = c.alias
	}
	switch c.field {
	case capGCM:
		s.GCM = v
	case capResource:
		s.BindResource = v
	case capJID:
		s.BindJID = v
	case capText:
		s.Text = v
	case capMechanism:
		s.mechs = append(s.mechs, v)
	}
	c.field = 0
}
