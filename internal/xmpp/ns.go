package xmpp

import "github.com/ccsd/ccsd/internal/xmltok"

// Namespace resolution for stanza views. A stanza is parsed on its own, so
// the stream header's declarations are assumed: the default namespace is
// jabber:client and the prefix "stream" is the streams namespace.

const nsXML = "http://www.w3.org/XML/1998/namespace"

// Read-only byte forms of the namespaces a Stanza may report without a
// declaration in the stanza itself.
var (
	nsClientBytes = []byte(NSClient)
	nsStreamBytes = []byte(NSStream)
	nsXMLBytes    = []byte(nsXML)
)

// nsDecl is one xmlns or xmlns:prefix attribute in scope.
type nsDecl struct {
	prefix []byte // empty for the default namespace
	uri    []byte
	depth  int // depth of the element that declared it
}

// pushDecls records the namespace declarations among attrs, declared on an
// element at depth.
func (s *Stanza) pushDecls(attrs []xmltok.Attr, depth int) error {
	for _, a := range attrs {
		var prefix []byte
		switch {
		case a.Prefix == nil && string(a.Local) == "xmlns":
			prefix = a.Local[:0]
		case string(a.Prefix) == "xmlns":
			prefix = a.Local
			if len(a.Value) == 0 {
				return &StreamError{Condition: "bad-namespace-prefix", Text: "empty namespace for a prefix"}
			}
		default:
			continue
		}
		uri := a.Value
		if hasAmp(uri) {
			start := len(s.nsbuf)
			var err error
			if s.nsbuf, err = xmltok.Unescape(s.nsbuf, uri); err != nil {
				return err
			}
			uri = s.nsbuf[start:len(s.nsbuf):len(s.nsbuf)]
		}
		s.decls = append(s.decls, nsDecl{prefix: prefix, uri: uri, depth: depth})
	}
	return nil
}

// popDecls drops the declarations of elements deeper than depth.
func (s *Stanza) popDecls(depth int) {
	n := len(s.decls)
	for n > 0 && s.decls[n-1].depth > depth {
		n--
	}
	s.decls = s.decls[:n]
}

// resolve returns the namespace bound to prefix (nil for "no namespace"
// after xmlns=""), and false for an unbound prefix.
func (s *Stanza) resolve(prefix []byte) ([]byte, bool) {
	for i := len(s.decls) - 1; i >= 0; i-- {
		if string(s.decls[i].prefix) == string(prefix) {
			return s.decls[i].uri, true
		}
	}
	switch string(prefix) {
	case "":
		return nsClientBytes, true
	case "stream":
		return nsStreamBytes, true
	case "xml":
		return nsXMLBytes, true
	}
	return nil, false
}

// checkAttrPrefixes fails on an attribute whose prefix is not bound.
func (s *Stanza) checkAttrPrefixes(attrs []xmltok.Attr) error {
	for _, a := range attrs {
		if a.Prefix == nil || string(a.Prefix) == "xmlns" {
			continue
		}
		if _, ok := s.resolve(a.Prefix); !ok {
			return &StreamError{Condition: "bad-namespace-prefix", Text: "unbound attribute prefix"}
		}
	}
	return nil
}

func hasAmp(b []byte) bool {
	for _, c := range b {
		if c == '&' {
			return true
		}
	}
	return false
}
