// Package mcs is the MCS wire format: framing, protobuf messages generated
// from our own .proto, and constants.
//
// MCS is the device protocol of GCM/FCM (mcs.md in the shared spec). Each
// side sends one version byte, then frames of
//
//	[tag byte][varint32 length, 1..5 bytes][protobuf payload]
//
// Reader parses the incoming half of a stream, AppendFrame and
// AppendVersionedFrame build outgoing frames, Session keeps the stream-id
// and acknowledgement bookkeeping of one connection, and the builders in
// build.go make the server's fixed messages with every required field set.
// The package does no I/O beyond the io.Reader given to NewReader.
//
// Tags: a Reader always refuses tag bytes of 16 and more, and refuses tags
// outside its ReaderConfig.Tags, by default DecodableTags (0-4, 7, 8, 10:
// the tags with an open-source message type). The device server reads with
// ClientSendTags (0, 1, 2, 4, 7, 8) and sends only ServerSendTags
// (0, 1, 3, 4, 7, 8).
//
// The messages live in package mcspb, generated from proto/mcs.proto and
// proto/checkin.proto. Regenerate with protoc and protoc-gen-go v1.36.12 on
// PATH (go generate ./internal/mcs).
package mcs

//go:generate protoc --go_out=../.. --go_opt=module=github.com/ccsd/ccsd --proto_path=proto mcs.proto checkin.proto
