package gcm

import "strings"

// HTTPError is an "error" value of the GCM HTTP connection server, reported
// per recipient in a results entry (protocol.md §8.7).
type HTTPError string

// The HTTP error strings. Their names carry an HTTP prefix because some
// coincide with CCS error codes (InternalServerError and the rate limits).
const (
	// HTTPMissingRegistration: no target was given. CCS: INVALID_JSON.
	HTTPMissingRegistration HTTPError = "MissingRegistration"
	// HTTPInvalidRegistration: the token is malformed. CCS: BAD_REGISTRATION.
	HTTPInvalidRegistration HTTPError = "InvalidRegistration"
	// HTTPNotRegistered: the app was unregistered from the device; delete
	// the token. CCS: DEVICE_UNREGISTERED.
	HTTPNotRegistered HTTPError = "NotRegistered"
	// HTTPInvalidPackageName: restricted_package_name does not match the
	// registration. No CCS equivalent.
	HTTPInvalidPackageName HTTPError = "InvalidPackageName"
	// HTTPMismatchSenderID: the token was not made for this sender.
	// CCS: BAD_REGISTRATION.
	HTTPMismatchSenderID HTTPError = "MismatchSenderId"
	// HTTPMessageTooBig: data exceeds MaxDataBytes. CCS: INVALID_JSON.
	HTTPMessageTooBig HTTPError = "MessageTooBig"
	// HTTPInvalidDataKey: data uses a reserved key. CCS: INVALID_JSON.
	HTTPInvalidDataKey HTTPError = "InvalidDataKey"
	// HTTPInvalidTTL: time_to_live is not an integer in 0..MaxTTL.
	// CCS: INVALID_JSON.
	HTTPInvalidTTL HTTPError = "InvalidTtl"
	// HTTPUnavailable: retry with back-off, honouring Retry-After.
	// CCS: SERVICE_UNAVAILABLE.
	HTTPUnavailable HTTPError = "Unavailable"
	// HTTPInternalServerError: retry with back-off.
	// CCS: INTERNAL_SERVER_ERROR.
	HTTPInternalServerError HTTPError = "InternalServerError"
	// HTTPDeviceMessageRateExceeded: too many messages to one device.
	// CCS: DEVICE_MESSAGE_RATE_EXCEEDED.
	HTTPDeviceMessageRateExceeded HTTPError = "DeviceMessageRateExceeded"
	// HTTPTopicsMessageRateExceeded: too many messages to one topic.
	// CCS: TOPICS_MESSAGE_RATE_EXCEEDED.
	HTTPTopicsMessageRateExceeded HTTPError = "TopicsMessageRateExceeded"
)

// CCSCode returns the CCS NACK code that corresponds to e (protocol.md
// §8.7), and false for HTTPInvalidPackageName, which has none.
func (e HTTPError) CCSCode() (ErrorCode, bool) {
	switch e {
	case HTTPMissingRegistration, HTTPMessageTooBig, HTTPInvalidDataKey, HTTPInvalidTTL:
		return InvalidJSON, true
	case HTTPInvalidRegistration, HTTPMismatchSenderID:
		return BadRegistration, true
	case HTTPNotRegistered:
		return DeviceUnregistered, true
	case HTTPUnavailable:
		return ServiceUnavailable, true
	case HTTPInternalServerError:
		return InternalServerError, true
	case HTTPDeviceMessageRateExceeded:
		return DeviceMessageRateExceeded, true
	case HTTPTopicsMessageRateExceeded:
		return TopicsMessageRateExceeded, true
	}
	return "", false
}

// HTTPError returns the per-recipient HTTP error string for a refusal by
// DecodeInbound that the HTTP API reports in a results entry
// (MissingRegistration, MessageTooBig, InvalidDataKey, InvalidTtl), and
// false for refusals the HTTP API answers with status 400 (unparseable
// JSON, wrong types, bad ACKs).
func (e *DecodeError) HTTPError() (HTTPError, bool) {
	if e.Code != InvalidJSON {
		return "", false
	}
	d := e.Description
	switch {
	case d == prefixParse+"Missing Required Field: to":
		return HTTPMissingRegistration, true
	case strings.HasPrefix(d, prefixTooBig):
		return HTTPMessageTooBig, true
	case strings.HasPrefix(d, prefixDataKey):
		return HTTPInvalidDataKey, true
	case strings.HasPrefix(d, prefixTTL):
		return HTTPInvalidTTL, true
	}
	return "", false
}
