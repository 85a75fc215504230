package xmpp

import (
	"errors"

	"github.com/ccsd/ccsd/internal/xmltok"
)

var errNotImplemented = errors.New("xmpp: not implemented")

func parseStreamHeader(tk *xmltok.Tokenizer, raw []byte) (StreamHeader, error) {
	return StreamHeader{}, errNotImplemented
}

func (s *Stanza) parse(tk *xmltok.Tokenizer, raw []byte) error { return errNotImplemented }

func parsePlain(b64 []byte, scratch []byte) (authzid, authcid, password []byte, err error) {
	return nil, nil, nil, errNotImplemented
}

func appendStreamHeader(dst []byte, from, id string) []byte                { return dst }
func appendFeaturesSASL(dst []byte, mechs []string) []byte                 { return dst }
func appendFeaturesBind(dst []byte) []byte                                 { return dst }
func appendSASLSuccess(dst []byte) []byte                                  { return dst }
func appendSASLFailure(dst []byte, condition string) []byte                { return dst }
func appendBindResult(dst, id []byte, jid string) []byte                   { return dst }
func appendIQResult(dst, id []byte, from, to string) []byte                { return dst }
func appendIQError(dst, id []byte, from, to string, e *StanzaError) []byte { return dst }
func appendStreamError(dst []byte, e *StreamError) []byte                  { return dst }
func appendGCM(dst []byte, env Envelope, to string, json []byte) []byte    { return dst }
func appendMessageError(dst, id []byte, to string, gcmRaw []byte, e *StanzaError) []byte {
	return dst
}
func appendClientStreamHeader(dst []byte, to string) []byte                { return dst }
func appendAuthPlain(dst []byte, authzid, authcid, password string) []byte { return dst }
func appendBindRequest(dst []byte, id, resource string) []byte             { return dst }
func appendSessionRequest(dst []byte, id string) []byte                    { return dst }
func appendPing(dst []byte, id, to string) []byte                          { return dst }
func appendClientGCM(dst []byte, json []byte) []byte                       { return dst }
