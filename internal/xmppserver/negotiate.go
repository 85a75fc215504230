package xmppserver

import (
	"bytes"
	"encoding/hex"
	"errors"

	"github.com/ccsd/ccsd/internal/xmpp"
)

// phase is where a connection is in the XMPP session negotiation.
type phase uint8

const (
	phaseHeader   phase = iota // waiting for the first stream header
	phaseAuth                  // SASL features sent; waiting for <auth>
	phaseAuthWait              // credentials handed to the driver; waiting for authDone
	phaseRestart               // <success/> sent; waiting for the restarted stream header
	phaseBind                  // bind features sent; waiting for the bind IQ
	phaseReady                 // bound: messages flow
	phaseClosed                // a closing action was returned; nothing more is accepted
)

// action tells the driver of a negotiator what to do after writing the
// bytes the negotiator appended.
type action uint8

const (
	actNone    action = iota
	actAuth           // call Backend.Authenticate(n.sender, n.password), then n.authDone
	actRestart        // call xmltok.Reader.Restart: a new stream header follows
	actBound          // the session is bound to n.jid: attach the feed, start messages
	actClose          // write the output, then close the connection with n.reason
)

// Static stanza errors (no allocation when answering IQs).
var (
	errIQServiceUnavailable = &xmpp.StanzaError{Type: "cancel", Condition: "service-unavailable", Code: 503}
	errIQBadRequest         = &xmpp.StanzaError{Type: "modify", Condition: "bad-request", Code: 400, Text: "invalid resource"}
	errIQNotAllowed         = &xmpp.StanzaError{Type: "cancel", Condition: "not-allowed", Code: 405, Text: "already bound"}
)

// maxResource bounds a requested resource (RFC 7622 allows 1023 bytes).
const maxResource = 1023

// negotiator is the XMPP session negotiation of one connection as a plain
// state machine: it consumes parsed frames, appends the server's answers to
// a caller buffer and returns what the driver must do next. It does no I/O;
// randomness is injected. It is owned by the connection's reader goroutine.
type negotiator struct {
	// immutable after init
	domain string
	random func([]byte) // fills b with random bytes

	phase      phase
	headerSent bool   // a server stream header has been written on this stream
	streamID   string // id of the current server stream header
	sender     string // authenticated (or, in phaseAuthWait, claimed) sender id
	password   []byte // phaseAuthWait only: aliases scratch
	jid        string // bound full JID (phaseReady)
	reason     string // close reason, set with actClose
	scratch    []byte // SASL decode buffer
}

func (n *negotiator) init(domain string, random func([]byte)) {
	n.domain = domain
	n.random = random
	n.phase = phaseHeader
	n.scratch = make([]byte, 0, 512)
}

// hexID returns k random bytes as upper-case hex.
func (n *negotiator) hexID(k int) string {
	var b [16]byte
	n.random(b[:k])
	var h [32]byte
	hex.Encode(h[:], b[:k])
	return string(bytes.ToUpper(h[:2*k]))
}

// header handles a StreamStart frame, parsed into h (or perr when the
// header was malformed).
func (n *negotiator) header(dst []byte, h xmpp.StreamHeader, perr error) ([]byte, action) {
	if perr != nil {
		var se *xmpp.StreamError
		if errors.As(perr, &se) {
			return n.streamError(dst, se.Condition, se.Text)
		}
		return n.streamError(dst, "bad-format", "malformed stream header")
	}
	switch n.phase {
	case phaseHeader:
		dst = n.openStream(dst)
		dst = xmpp.AppendFeaturesSASL(dst, "PLAIN")
		n.phase = phaseAuth
		return dst, actNone
	case phaseRestart:
		dst = n.openStream(dst)
		dst = xmpp.AppendFeaturesBind(dst)
		n.phase = phaseBind
		return dst, actNone
	default:
		return n.streamError(dst, "bad-format", "unexpected stream header")
	}
}

func (n *negotiator) openStream(dst []byte) []byte {
	n.streamID = n.hexID(8)
	n.headerSent = true
	return xmpp.AppendStreamHeader(dst, n.domain, n.streamID)
}

// stanza handles a Stanza frame other than a bound <message>.
func (n *negotiator) stanza(dst []byte, st *xmpp.Stanza) ([]byte, action) {
	switch n.phase {
	case phaseHeader, phaseRestart:
		return n.streamError(dst, "bad-format", "stanza before stream header")
	case phaseAuth:
		return n.auth(dst, st)
	case phaseBind:
		switch st.Kind {
		case xmpp.KindIQ:
			return n.iq(dst, st)
		case xmpp.KindPresence:
			return dst, actNone
		}
		return n.streamError(dst, "not-authorized", "resource binding required")
	case phaseReady:
		switch st.Kind {
		case xmpp.KindIQ:
			return n.iq(dst, st)
		case xmpp.KindPresence:
			return dst, actNone
		}
		return n.streamError(dst, "unsupported-stanza-type", "")
	}
	return dst, actNone
}

// auth handles a stanza while SASL is expected.
func (n *negotiator) auth(dst []byte, st *xmpp.Stanza) ([]byte, action) {
	switch st.Kind {
	case xmpp.KindAuth:
	case xmpp.KindSASLOther:
		dst = xmpp.AppendSASLFailure(dst, "aborted")
		return n.close(xmpp.AppendStreamEnd(dst), "sasl-aborted")
	default:
		return n.streamError(dst, "not-authorized", "authenticate first")
	}
	if string(st.Mechanism) != "PLAIN" {
		dst = xmpp.AppendSASLFailure(dst, "invalid-mechanism")
		return n.close(xmpp.AppendStreamEnd(dst), "invalid-mechanism")
	}
	authzid, authcid, password, err := xmpp.ParsePlain(st.Text, n.scratch[:0])
	if err != nil {
		dst = xmpp.AppendSASLFailure(dst, "malformed-request")
		return n.close(xmpp.AppendStreamEnd(dst), "auth-malformed")
	}
	sender, ok := plainSender(authzid, authcid)
	if !ok {
		clear(password)
		dst = xmpp.AppendSASLFailure(dst, "not-authorized")
		return n.close(xmpp.AppendStreamEnd(dst), "auth-failed")
	}
	n.sender = sender
	n.password = password
	n.phase = phaseAuthWait
	return dst, actAuth
}

// authDone takes the result of Backend.Authenticate for the credentials of
// the last actAuth.
func (n *negotiator) authDone(dst []byte, err error) ([]byte, action) {
	clear(n.password)
	n.password = nil
	if n.phase != phaseAuthWait {
		return dst, actNone
	}
	switch {
	case err == nil:
		n.phase = phaseRestart
		n.headerSent = false
		return xmpp.AppendSASLSuccess(dst), actRestart
	case errors.Is(err, ErrUnauthorized):
		dst = xmpp.AppendSASLFailure(dst, "not-authorized")
		return n.close(xmpp.AppendStreamEnd(dst), "auth-failed")
	default:
		dst = xmpp.AppendSASLFailure(dst, "temporary-auth-failure")
		return n.close(xmpp.AppendStreamEnd(dst), "auth-error")
	}
}

// iq answers an IQ after authentication: bind, session, ping, anything
// else with service-unavailable. Results and errors from the client are
// ignored.
func (n *negotiator) iq(dst []byte, st *xmpp.Stanza) ([]byte, action) {
	typ := string(st.Type)
	if typ != "get" && typ != "set" {
		return dst, actNone
	}
	child, ns := string(st.ChildLocal), string(st.ChildNS)
	switch {
	case typ == "set" && child == "bind" && ns == xmpp.NSBind:
		if n.phase == phaseReady {
			return xmpp.AppendIQError(dst, st.ID, n.domain, n.jid, errIQNotAllowed), actNone
		}
		res, ok := n.resource(st.BindResource)
		if !ok {
			return xmpp.AppendIQError(dst, st.ID, "", "", errIQBadRequest), actNone
		}
		n.jid = n.sender + "@" + n.domain + "/" + res
		n.phase = phaseReady
		return xmpp.AppendBindResult(dst, st.ID, n.jid), actBound
	case typ == "set" && child == "session" && ns == xmpp.NSSession:
		return xmpp.AppendIQResult(dst, st.ID, "", ""), actNone
	case typ == "get" && child == "ping" && ns == xmpp.NSPing:
		return xmpp.AppendIQResult(dst, st.ID, n.domain, n.jid), actNone
	}
	return xmpp.AppendIQError(dst, st.ID, n.domain, n.jid, errIQServiceUnavailable), actNone
}

// resource returns the resource to bind: the requested one followed by 8
// random upper-case hex digits (as real CCS did), or 16 random hex digits
// when none was requested.
func (n *negotiator) resource(req []byte) (string, bool) {
	if len(req) == 0 {
		return n.hexID(8), true
	}
	if len(req) > maxResource-8 {
		return "", false
	}
	for _, c := range req {
		if c < 0x20 || c == 0x7f {
			return "", false
		}
	}
	return string(req) + n.hexID(4), true
}

// streamEnd handles the client's </stream:stream>.
func (n *negotiator) streamEnd(dst []byte) ([]byte, action) {
	if !n.headerSent {
		dst = n.openStream(dst)
	}
	return n.close(xmpp.AppendStreamEnd(dst), "client-closed")
}

// streamError appends a stream error (after a stream header when none was
// sent yet on this stream) and closes. The condition is the close reason.
func (n *negotiator) streamError(dst []byte, condition, text string) ([]byte, action) {
	if n.phase == phaseClosed {
		return dst, actNone
	}
	if !n.headerSent {
		dst = n.openStream(dst)
	}
	dst = xmpp.AppendStreamError(dst, &xmpp.StreamError{Condition: condition, Text: text})
	return n.close(dst, condition)
}

func (n *negotiator) close(dst []byte, reason string) ([]byte, action) {
	n.phase = phaseClosed
	n.reason = reason
	return dst, actClose
}

// plainSender extracts the sender id from lenient SASL PLAIN credentials
// (protocol.md §2.3): authcid is "<sender>" or "<sender>@<anything>";
// authzid is empty or names the same sender, bare or qualified.
func plainSender(authzid, authcid []byte) (string, bool) {
	local := localPart(authcid)
	if len(local) == 0 || len(local) > 256 {
		return "", false
	}
	for _, c := range local {
		if c <= ' ' || c >= 0x7f || c == '/' || c == '<' || c == '>' || c == '&' || c == '"' || c == '\'' {
			return "", false
		}
	}
	if len(authzid) > 0 && !bytes.Equal(localPart(authzid), local) {
		return "", false
	}
	return string(local), true
}

func localPart(id []byte) []byte {
	if i := bytes.IndexByte(id, '@'); i >= 0 {
		return id[:i]
	}
	return id
}
