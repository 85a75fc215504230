package mcs

import (
	"fmt"
	"strconv"

	"google.golang.org/protobuf/proto"

	"github.com/ccsd/ccsd/internal/mcs/mcspb"
)

// Builders of the messages the server sends (mcs.md §4). Each result has
// every proto2 required field set, so AppendFrame accepts it.

// LoginResponse is the successful answer to a LoginRequest whose id was
// reqID: the id echoed, last_stream_id_received 1 and the server time in
// milliseconds.
func LoginResponse(reqID string, nowMs int64) *mcspb.LoginResponse {
	return &mcspb.LoginResponse{
		Id:                   proto.String(reqID),
		LastStreamIdReceived: proto.Int32(1),
		ServerTimestamp:      proto.Int64(nowMs),
	}
}

// LoginErrorResponse is a failed login: the id echoed and error{code,
// message}. code must be non-zero (Chromium treats 0 as success); 0 becomes
// 401. The server closes the connection after sending it.
func LoginErrorResponse(reqID string, code int32, message string) *mcspb.LoginResponse {
	if code == 0 {
		code = 401
	}
	return &mcspb.LoginResponse{
		Id:                   proto.String(reqID),
		LastStreamIdReceived: proto.Int32(1),
		Error: &mcspb.ErrorInfo{
			Code:    proto.Int32(code),
			Message: proto.String(message),
		},
	}
}

// SelectiveAckIQ is IqStanza{type: SET, id: "", extension: {12,
// SelectiveAck{ids}}}, sent after the LoginResponse to confirm upstream
// messages already taken from the device. With no ids it is the 10 bytes
// Google sends.
func SelectiveAckIQ(ids []string) *mcspb.IqStanza {
	var data []byte
	if len(ids) > 0 {
		// A SelectiveAck of strings always encodes.
		data, _ = proto.Marshal(&mcspb.SelectiveAck{Id: ids})
	}
	if data == nil {
		data = []byte{}
	}
	return &mcspb.IqStanza{
		Type:      IqSet.Enum(),
		Id:        proto.String(""),
		Extension: &mcspb.Extension{Id: proto.Int32(ExtensionSelectiveAck), Data: data},
	}
}

// StreamAckIQ is IqStanza{type: SET, id, extension: {13, ""},
// last_stream_id_received}: the server's answer to a client's StreamAck
// and, with id "", the StreamAck a client sends.
func StreamAckIQ(id string, lastStreamIDReceived int32) *mcspb.IqStanza {
	return &mcspb.IqStanza{
		Type:                 IqSet.Enum(),
		Id:                   proto.String(id),
		Extension:            &mcspb.Extension{Id: proto.Int32(ExtensionStreamAck), Data: []byte{}},
		LastStreamIdReceived: proto.Int32(lastStreamIDReceived),
	}
}

// SelectiveAckIDs returns the persistent ids of a SelectiveAck IQ; ok is
// false when iq carries no extension 12. Data that does not decode is an
// error.
func SelectiveAckIDs(iq *mcspb.IqStanza) (ids []string, ok bool, err error) {
	ext := iq.GetExtension()
	if ext == nil || ext.GetId() != ExtensionSelectiveAck {
		return nil, false, nil
	}
	var sa mcspb.SelectiveAck
	if err := unmarshalOptions.Unmarshal(ext.GetData(), &sa); err != nil {
		return nil, true, fmt.Errorf("decoding selective ack: %w", err)
	}
	return sa.Id, true, nil
}

// IsStreamAck reports whether iq carries a StreamAck (extension 13).
func IsStreamAck(iq *mcspb.IqStanza) bool {
	ext := iq.GetExtension()
	return ext != nil && ext.GetId() == ExtensionStreamAck
}

// HeartbeatAck answers a client's HeartbeatPing.
func HeartbeatAck(lastStreamIDReceived int32) *mcspb.HeartbeatAck {
	return &mcspb.HeartbeatAck{LastStreamIdReceived: proto.Int32(lastStreamIDReceived)}
}

// HeartbeatPing is a server ping. It never carries status (mcs.md §2.3
// rule 3: EN refuses to ack a ping with status).
func HeartbeatPing(lastStreamIDReceived int32) *mcspb.HeartbeatPing {
	return &mcspb.HeartbeatPing{LastStreamIdReceived: proto.Int32(lastStreamIDReceived)}
}

// Close is the empty Close message (tag 4); the sender closes the
// connection after it.
func Close() *mcspb.Close { return &mcspb.Close{} }

// DeviceID is the LoginRequest.device_id of an android id: "android-" and
// the id in lower-case hex without padding.
func DeviceID(androidID uint64) string {
	return DeviceIDPrefix + strconv.FormatUint(androidID, 16)
}

// LoginRequest is the login a device client sends: clientID (for example
// "chrome-63.0.3234.0"), the checkin credentials in decimal, the
// persistent ids received since the last login, and the settings every
// client sends (new_vc=1, use_rmq2, auth_service ANDROID_ID).
func LoginRequest(clientID string, androidID, securityToken uint64, receivedIDs []string) *mcspb.LoginRequest {
	aid := strconv.FormatUint(androidID, 10)
	return &mcspb.LoginRequest{
		Id:                   proto.String(clientID),
		Domain:               proto.String(LoginDomain),
		User:                 proto.String(aid),
		Resource:             proto.String(aid),
		AuthToken:            proto.String(strconv.FormatUint(securityToken, 10)),
		DeviceId:             proto.String(DeviceID(androidID)),
		Setting:              []*mcspb.Setting{{Name: proto.String(SettingNewVC), Value: proto.String("1")}},
		ReceivedPersistentId: receivedIDs,
		AdaptiveHeartbeat:    proto.Bool(false),
		UseRmq2:              proto.Bool(true),
		AuthService:          AuthServiceID.Enum(),
		NetworkType:          proto.Int32(1),
	}
}

// Persistent ids have Google's shape, 0:<16-digit µs>%<16 hex digits>
// (mcs.md §3): the acceptance time in microseconds and a sequence number.
const persistentIDLen = 2 + 16 + 1 + 16

// NewPersistentID returns "0:<acceptedMicros, 16 digits>%<seq, 16 hex>".
// Negative times become 0; times past 16 digits are cut to the low 16.
func NewPersistentID(acceptedMicros int64, seq uint64) string {
	if acceptedMicros < 0 {
		acceptedMicros = 0
	}
	const tenTo16 = 1e16
	us := uint64(acceptedMicros) % tenTo16
	var b [persistentIDLen]byte
	b[0], b[1], b[18] = '0', ':', '%'
	for i := 17; i >= 2; i-- {
		b[i] = byte('0' + us%10)
		us /= 10
	}
	const hex = "0123456789abcdef"
	for i := persistentIDLen - 1; i >= 19; i-- {
		b[i] = hex[seq&0xf]
		seq >>= 4
	}
	return string(b[:])
}

// ParsePersistentID returns the sequence number of an id made by
// NewPersistentID; ok is false for any other string.
func ParsePersistentID(s string) (seq uint64, ok bool) {
	if len(s) != persistentIDLen || s[0] != '0' || s[1] != ':' || s[18] != '%' {
		return 0, false
	}
	for i := 2; i < 18; i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	for i := 19; i < persistentIDLen; i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			seq = seq<<4 | uint64(c-'0')
		case c >= 'a' && c <= 'f':
			seq = seq<<4 | uint64(c-'a'+10)
		default:
			return 0, false
		}
	}
	return seq, true
}
