package gcm

import "errors"

var errNotImplemented = errors.New("gcm: not implemented")

func decodeInbound(js []byte, in *Inbound) error {
	return &DecodeError{Code: InvalidJSON, Description: "InvalidJson: JSON_PARSING_ERROR : not implemented", StanzaError: true}
}
func appendAck(dst, from, messageID, canonical []byte) []byte { return dst }
func appendNack(dst, from, messageID []byte, code ErrorCode, description string) []byte {
	return dst
}
func appendUpstream(dst []byte, u *Upstream) []byte                                { return dst }
func appendReceipt(dst []byte, r *Receipt) []byte                                  { return dst }
func appendRecord(dst []byte, sender []byte, in *Inbound, acceptedMs int64) []byte { return dst }
func decodeRecord(b []byte, m *Message) error                                      { return errNotImplemented }
func dataPairs(data []byte, fn func(key, value string)) error                      { return errNotImplemented }
