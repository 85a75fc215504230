package xmpp

import (
	"bytes"
	"encoding/base64"
	"errors"
)

// SASL PLAIN (RFC 4616): the message is authzid NUL authcid NUL passwd,
// base64-encoded in the <auth> element.

// strictB64 rejects non-canonical padding bits; it is read-only.
var strictB64 = base64.StdEncoding.Strict()

var (
	errPlainBase64 = errors.New("sasl plain: bad base64")
	errPlainFormat = errors.New("sasl plain: want authzid NUL authcid NUL password")
)

func parsePlain(b64 []byte, scratch []byte) (authzid, authcid, password []byte, err error) {
	b64 = bytes.TrimSpace(b64)
	if string(b64) == "=" {
		b64 = nil // RFC 6120 §6.4.2: "=" is an empty response
	}
	n := strictB64.DecodedLen(len(b64))
	if cap(scratch) < n {
		scratch = make([]byte, n)
	}
	scratch = scratch[:n]
	n, err = strictB64.Decode(scratch, b64)
	if err != nil {
		return nil, nil, nil, errPlainBase64
	}
	msg := scratch[:n:n]
	i := bytes.IndexByte(msg, 0)
	if i < 0 {
		return nil, nil, nil, errPlainFormat
	}
	j := bytes.IndexByte(msg[i+1:], 0)
	if j < 0 {
		return nil, nil, nil, errPlainFormat
	}
	j += i + 1
	if bytes.IndexByte(msg[j+1:], 0) >= 0 {
		return nil, nil, nil, errPlainFormat
	}
	return msg[:i:i], msg[i+1 : j : j], msg[j+1:], nil
}

// appendBase64 appends the standard base64 of the concatenation of parts,
// without building the concatenation.
func appendBase64(dst []byte, parts ...string) []byte {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	var acc uint32
	n := 0
	for _, p := range parts {
		for i := 0; i < len(p); i++ {
			acc = acc<<8 | uint32(p[i])
			if n++; n == 3 {
				dst = append(dst, alphabet[acc>>18&63], alphabet[acc>>12&63], alphabet[acc>>6&63], alphabet[acc&63])
				acc, n = 0, 0
			}
		}
	}
	switch n {
	case 1:
		acc <<= 16
		dst = append(dst, alphabet[acc>>18&63], alphabet[acc>>12&63], '=', '=')
	case 2:
		acc <<= 8
		dst = append(dst, alphabet[acc>>18&63], alphabet[acc>>12&63], alphabet[acc>>6&63], '=')
	}
	return dst
}
