// Package xmpp is the XMPP wire vocabulary that CCS uses: the stream header,
// stream features, SASL PLAIN, resource binding, legacy session, XEP-0199
// ping, <message> envelopes carrying a <gcm xmlns="google:mobile:data">
// payload, and stream and stanza errors, both as Go errors and as wire bytes.
// It does no I/O: it parses frames that xmltok has cut and appends bytes to
// caller buffers. Both the server (xmppserver) and the client SDK
// (client/ccs) use it.
//
// API CONTRACT (other packages are written against these exact signatures).
package xmpp

import "github.com/ccsd/ccsd/internal/xmltok"

// Namespaces.
const (
	NSClient   = "jabber:client"
	NSStream   = "http://etherx.jabber.org/streams"
	NSSASL     = "urn:ietf:params:xml:ns:xmpp-sasl"
	NSBind     = "urn:ietf:params:xml:ns:xmpp-bind"
	NSSession  = "urn:ietf:params:xml:ns:xmpp-session"
	NSPing     = "urn:xmpp:ping"
	NSStreams  = "urn:ietf:params:xml:ns:xmpp-streams"
	NSStanzas  = "urn:ietf:params:xml:ns:xmpp-stanzas"
	NSGCM      = "google:mobile:data"
	DomainGCM  = "gcm.googleapis.com"
	DevicesJID = "devices@gcm.googleapis.com"
)

// StreamHeader is the parsed <stream:stream> start tag.
type StreamHeader struct {
	To, From, ID, Version, Lang string
}

// ParseStreamHeader parses a StreamStart frame. It checks the element is
// stream in the streams namespace with jabber:client as default namespace and
// returns *StreamError (invalid-namespace, bad-format, ...) otherwise.
func ParseStreamHeader(tk *xmltok.Tokenizer, raw []byte) (StreamHeader, error) {
	return parseStreamHeader(tk, raw)
}

// StanzaKind classifies a top-level element by name and namespace.
type StanzaKind uint8

const (
	KindOther       StanzaKind = iota // anything not listed below
	KindMessage                       // <message> in jabber:client
	KindIQ                            // <iq>
	KindPresence                      // <presence>
	KindAuth                          // SASL <auth>
	KindSASLOther                     // other SASL elements: <response>, <abort>
	KindSuccess                       // SASL <success> (client side)
	KindFailure                       // SASL <failure> (client side)
	KindFeatures                      // <stream:features> (client side)
	KindStreamError                   // <stream:error> (client side)
)

// Stanza is a view of one top-level element. All byte slices are unescaped
// and alias either the frame or s's own scratch buffer; they are valid until
// the next Parse. Parse does not allocate once the scratch buffer has grown.
type Stanza struct {
	Kind            StanzaKind
	Local, NS       []byte // name and resolved namespace of the element
	ID, Type        []byte // attributes (unescaped); nil when absent
	To, From        []byte
	HasID, HasType  bool
	HasGCM          bool   // message: a <gcm xmlns="google:mobile:data"> child was found
	GCM             []byte // message: the unescaped text of that child (JSON), surrounding whitespace kept
	GCMRaw          []byte // message: the raw bytes of the whole <gcm>...</gcm> child, for echoing in stanza errors
	ChildLocal      []byte // iq: first child element's local name; failure/stream error: the condition element
	ChildNS         []byte // iq: first child element's namespace
	BindResource    []byte // iq bind: the <resource> text, if any
	BindJID         []byte // iq bind result (client side): the <jid> text
	Mechanism       []byte // auth: mechanism attribute
	Text            []byte // auth: the base64 text; failure/stream error: <text> if any
	Mechanisms      [][]byte
	FeatureBind     bool // features: <bind> offered
	FeatureSession  bool // features: <session> offered
	FeatureStartTLS bool // features: <starttls> offered

	scratch []byte
	mechs   [][]byte
	decls   []nsDecl // namespace declarations in scope while parsing
	nsbuf   []byte   // unescaped namespace names that contained '&'
}

// Parse fills s from one Stanza frame. It returns *xmltok.Error for
// malformed XML and *StreamError for well-formed XML that breaks XMPP rules.
func (s *Stanza) Parse(tk *xmltok.Tokenizer, raw []byte) error { return s.parse(tk, raw) }

// StreamError is a stream-level error: it ends the connection. Condition is
// an RFC 6120 §4.9.3 condition name.
type StreamError struct {
	Condition string
	Text      string
}

func (e *StreamError) Error() string {
	if e.Text == "" {
		return "stream error " + e.Condition
	}
	return "stream error " + e.Condition + ": " + e.Text
}

// StanzaError is a stanza-level error: the connection stays up. Type is one
// of "cancel", "continue", "modify", "auth", "wait"; Condition an RFC 6120
// §8.3.3 condition name; Code the legacy numeric code (0 to omit).
type StanzaError struct {
	Type, Condition, Text string
	Code                  int
}

func (e *StanzaError) Error() string { return "stanza error " + e.Condition + ": " + e.Text }

// ParsePlain decodes the base64 text of a SASL PLAIN <auth> into authzid,
// authcid and password, using scratch for the decoded bytes. It returns an
// error for bad base64 or a message without exactly two NUL separators. "="
// alone means an empty response.
func ParsePlain(b64 []byte, scratch []byte) (authzid, authcid, password []byte, err error) {
	return parsePlain(b64, scratch)
}

// Server-side writers. Each appends complete wire bytes to dst.

// AppendStreamHeader appends the XML declaration and the server's
// <stream:stream from=... id=... version="1.0" xmlns="jabber:client"
// xmlns:stream=...> start tag.
func AppendStreamHeader(dst []byte, from, id string) []byte { return appendStreamHeader(dst, from, id) }

// AppendFeaturesSASL appends <stream:features> with the given SASL mechanisms.
func AppendFeaturesSASL(dst []byte, mechs ...string) []byte { return appendFeaturesSASL(dst, mechs) }

// AppendFeaturesBind appends <stream:features> with <bind/> and <session/>.
func AppendFeaturesBind(dst []byte) []byte { return appendFeaturesBind(dst) }

// AppendSASLSuccess appends <success xmlns="urn:ietf:params:xml:ns:xmpp-sasl"/>.
func AppendSASLSuccess(dst []byte) []byte { return appendSASLSuccess(dst) }

// AppendSASLFailure appends <failure xmlns=...><condition/></failure>.
func AppendSASLFailure(dst []byte, condition string) []byte { return appendSASLFailure(dst, condition) }

// AppendBindResult appends the IQ result of a bind request with the bound JID.
func AppendBindResult(dst, id []byte, jid string) []byte { return appendBindResult(dst, id, jid) }

// AppendIQResult appends an empty <iq type="result" id=... [from=...] [to=...]/>.
// Empty from/to are omitted.
func AppendIQResult(dst, id []byte, from, to string) []byte { return appendIQResult(dst, id, from, to) }

// AppendIQError appends <iq type="error" id=...> with an <error> element.
func AppendIQError(dst, id []byte, from, to string, e *StanzaError) []byte {
	return appendIQError(dst, id, from, to, e)
}

// AppendStreamError appends <stream:error>...</stream:error></stream:stream>.
func AppendStreamError(dst []byte, e *StreamError) []byte { return appendStreamError(dst, e) }

// AppendStreamEnd appends </stream:stream>.
func AppendStreamEnd(dst []byte) []byte { return append(dst, "</stream:stream>"...) }

// Envelope selects how a server-originated GCM message is wrapped (see
// protocol.md §3.1: the type attribute decides which client branch sees it).
type Envelope uint8

const (
	// EnvelopeAnswer is for ACK, NACK and control messages: <message> with
	// no type and no id, child written as <data:gcm xmlns:data="google:mobile:data">.
	EnvelopeAnswer Envelope = iota
	// EnvelopeNormal is for upstream messages and receipts: <message to=...
	// from="devices@gcm.googleapis.com" type="normal"> with an unprefixed
	// <gcm xmlns="google:mobile:data"> child.
	EnvelopeNormal
)

// AppendGCM appends a server-originated <message> whose gcm child holds json
// (escaped as XML text). to is used only by EnvelopeNormal.
func AppendGCM(dst []byte, env Envelope, to string, json []byte) []byte {
	return appendGCM(dst, env, to, json)
}

// AppendMessageError appends <message id=... type="error" to=...>, echoing
// the original gcm child (gcmRaw, already XML) and the <error> element.
func AppendMessageError(dst, id []byte, to string, gcmRaw []byte, e *StanzaError) []byte {
	return appendMessageError(dst, id, to, gcmRaw, e)
}

// Client-side writers (client/ccs).

// AppendClientStreamHeader appends <stream:stream to=... version="1.0" ...>.
func AppendClientStreamHeader(dst []byte, to string) []byte { return appendClientStreamHeader(dst, to) }

// AppendAuthPlain appends a SASL PLAIN <auth> with the base64 of
// authzid NUL authcid NUL password.
func AppendAuthPlain(dst []byte, authzid, authcid, password string) []byte {
	return appendAuthPlain(dst, authzid, authcid, password)
}

// AppendBindRequest appends a bind IQ (resource omitted when empty).
func AppendBindRequest(dst []byte, id, resource string) []byte {
	return appendBindRequest(dst, id, resource)
}

// AppendSessionRequest appends a legacy session IQ.
func AppendSessionRequest(dst []byte, id string) []byte { return appendSessionRequest(dst, id) }

// AppendPing appends a XEP-0199 ping IQ get.
func AppendPing(dst []byte, id, to string) []byte { return appendPing(dst, id, to) }

// AppendClientGCM appends <message id=""><gcm xmlns="google:mobile:data">json</gcm></message>.
func AppendClientGCM(dst []byte, json []byte) []byte { return appendClientGCM(dst, json) }
