package mcs

import (
	"strconv"

	"google.golang.org/protobuf/proto"

	"github.com/ccsd/ccsd/internal/mcs/mcspb"
)

// Version bytes (mcs.md §2.1).
const (
	// Version is the version byte every client sends and the only one the
	// server sends.
	Version = 41
	// MinClientVersion is the lowest version byte a Reader accepts. Bytes
	// MinClientVersion..Version are accepted, every other byte is refused.
	MinClientVersion = 38
)

// Tags of MCS frames (mcs.md §2.2). The order is fixed by the protocol.
const (
	TagHeartbeatPing       = 0
	TagHeartbeatAck        = 1
	TagLoginRequest        = 2
	TagLoginResponse       = 3
	TagClose               = 4
	TagMessageStanza       = 5
	TagPresenceStanza      = 6
	TagIqStanza            = 7
	TagDataMessageStanza   = 8
	TagBatchPresenceStanza = 9
	TagStreamErrorStanza   = 10
	TagHTTPRequest         = 11
	TagHTTPResponse        = 12
	TagBindAccountRequest  = 13
	TagBindAccountResponse = 14
	TagTalkMetadata        = 15

	// NumTags is the number of defined tags; a tag byte >= NumTags is invalid.
	NumTags = 16
)

var tagNames = [NumTags]string{
	"HeartbeatPing", "HeartbeatAck", "LoginRequest", "LoginResponse", "Close",
	"MessageStanza", "PresenceStanza", "IqStanza", "DataMessageStanza",
	"BatchPresenceStanza", "StreamErrorStanza", "HttpRequest", "HttpResponse",
	"BindAccountRequest", "BindAccountResponse", "TalkMetadata",
}

// TagName returns the protocol name of tag, or "tag(N)" for invalid tags.
func TagName(tag byte) string {
	if int(tag) < NumTags {
		return tagNames[tag]
	}
	return "tag(" + strconv.Itoa(int(tag)) + ")"
}

// TagSet is a set of tags, bit i for tag i.
type TagSet uint16

// Sets of tags.
const (
	// ServerSendTags are the only tags the server may send (mcs.md §2.2):
	// every client understands them. Tag 10 is left out because microG
	// drops the link on it.
	ServerSendTags TagSet = 1<<TagHeartbeatPing | 1<<TagHeartbeatAck |
		1<<TagLoginResponse | 1<<TagClose | 1<<TagIqStanza | 1<<TagDataMessageStanza

	// ClientSendTags are the tags a device client sends: ping, ack, login,
	// close, IQ and data. A device server reads with this set.
	ClientSendTags TagSet = 1<<TagHeartbeatPing | 1<<TagHeartbeatAck |
		1<<TagLoginRequest | 1<<TagClose | 1<<TagIqStanza | 1<<TagDataMessageStanza

	// DecodableTags are the tags with an open-source message type, the ones
	// Decode and NewMessage know. It is a Reader's default.
	DecodableTags TagSet = ClientSendTags | 1<<TagLoginResponse | 1<<TagStreamErrorStanza
)

// Has reports whether tag is in s.
func (s TagSet) Has(tag byte) bool {
	return tag < NumTags && s&(1<<tag) != 0
}

// Extension ids carried in IqStanza.extension (mcs.md §3).
const (
	ExtensionSelectiveAck = 12
	ExtensionStreamAck    = 13
)

// IqType values of IqStanza.type.
const (
	IqGet    = mcspb.IqStanza_GET
	IqSet    = mcspb.IqStanza_SET
	IqResult = mcspb.IqStanza_RESULT
	IqError  = mcspb.IqStanza_IQ_ERROR
)

// Values clients put in LoginRequest (mcs.md §3, §4.1).
const (
	LoginDomain     = "mcs.android.com"
	AuthServiceID   = mcspb.LoginRequest_ANDROID_ID
	SettingNewVC    = "new_vc"
	SettingHbPing   = "hbping"
	DeviceIDPrefix  = "android-"
	IdleCategory    = "com.google.android.gsf.gtalkservice"
	IdleNotifyKey   = "IdleNotification"
	NoCollapseToken = "do_not_collapse"
)

// NewMessage returns a new empty message of the type carried by tag, or nil
// when the tag has no open-source message type (5, 6, 9, 11..15) or is
// invalid.
func NewMessage(tag byte) proto.Message {
	switch tag {
	case TagHeartbeatPing:
		return new(mcspb.HeartbeatPing)
	case TagHeartbeatAck:
		return new(mcspb.HeartbeatAck)
	case TagLoginRequest:
		return new(mcspb.LoginRequest)
	case TagLoginResponse:
		return new(mcspb.LoginResponse)
	case TagClose:
		return new(mcspb.Close)
	case TagIqStanza:
		return new(mcspb.IqStanza)
	case TagDataMessageStanza:
		return new(mcspb.DataMessageStanza)
	case TagStreamErrorStanza:
		return new(mcspb.StreamErrorStanza)
	}
	return nil
}

// TagOf returns the tag that carries m, and false when m is not a frame
// message (for example an Extension or a checkin message).
func TagOf(m proto.Message) (byte, bool) {
	switch m.(type) {
	case *mcspb.HeartbeatPing:
		return TagHeartbeatPing, true
	case *mcspb.HeartbeatAck:
		return TagHeartbeatAck, true
	case *mcspb.LoginRequest:
		return TagLoginRequest, true
	case *mcspb.LoginResponse:
		return TagLoginResponse, true
	case *mcspb.Close:
		return TagClose, true
	case *mcspb.IqStanza:
		return TagIqStanza, true
	case *mcspb.DataMessageStanza:
		return TagDataMessageStanza, true
	case *mcspb.StreamErrorStanza:
		return TagStreamErrorStanza, true
	}
	return 0, false
}
