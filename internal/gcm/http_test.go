package gcm

import (
	"strings"
	"testing"
)

func TestHTTPErrorCCSCode(t *testing.T) {
	tests := []struct {
		e    HTTPError
		want ErrorCode
		ok   bool
	}{
		{HTTPMissingRegistration, InvalidJSON, true},
		{HTTPInvalidRegistration, BadRegistration, true},
		{HTTPNotRegistered, DeviceUnregistered, true},
		{HTTPInvalidPackageName, "", false},
		{HTTPMismatchSenderID, BadRegistration, true},
		{HTTPMessageTooBig, InvalidJSON, true},
		{HTTPInvalidDataKey, InvalidJSON, true},
		{HTTPInvalidTTL, InvalidJSON, true},
		{HTTPUnavailable, ServiceUnavailable, true},
		{HTTPInternalServerError, InternalServerError, true},
		{HTTPDeviceMessageRateExceeded, DeviceMessageRateExceeded, true},
		{HTTPTopicsMessageRateExceeded, TopicsMessageRateExceeded, true},
	}
	for _, tt := range tests {
		got, ok := tt.e.CCSCode()
		if got != tt.want || ok != tt.ok {
			t.Errorf("%s.CCSCode() = %q, %v; want %q, %v", tt.e, got, ok, tt.want, tt.ok)
		}
	}
}

func TestDecodeErrorHTTPError(t *testing.T) {
	tests := []struct {
		js   string
		want HTTPError
		ok   bool
	}{
		{`{"message_id":"m-1"}`, HTTPMissingRegistration, true},
		{`{"to":"R","message_id":"m-1","data":{"k":"` + strings.Repeat("v", 5000) + `"}}`, HTTPMessageTooBig, true},
		{`{"to":"R","message_id":"m-1","data":{"from":"x"}}`, HTTPInvalidDataKey, true},
		{`{"to":"R","message_id":"m-1","time_to_live":-1}`, HTTPInvalidTTL, true},
		{`{"to":"R","message_id":"m-1","time_to_live":"x"}`, "", false},
		{`{"to":"R"`, "", false},
		{`{"message_type":"ack"}`, "", false},
	}
	for _, tt := range tests {
		err := DecodeInbound([]byte(tt.js), new(Inbound))
		got, ok := viewDecodeError(t, err).HTTPError()
		if got != tt.want || ok != tt.ok {
			t.Errorf("HTTPError() of %.60s = %q, %v; want %q, %v", tt.js, got, ok, tt.want, tt.ok)
		}
	}
}

func viewDecodeError(t *testing.T, err error) *DecodeError {
	t.Helper()
	e, ok := err.(*DecodeError)
	if !ok {
		t.Fatalf("error %v (%T) is not a *DecodeError", err, err)
	}
	return e
}
