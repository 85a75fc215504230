package mcs

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// Writing frames
//
// Callers must hand each frame to the connection in exactly one Write call,
// and never put several frames in one Write (mcs.md §2.3 rule 1): EN's
// parser crashes when a TLS record ends inside a length varint, and Go's
// tls.Conn starts a new record on every Write. The first packet of the
// server is AppendVersionedFrame's output, the version byte and the
// LoginResponse together in one Write.
//
// Every proto2 required field must be set (mcs.md §2.3 rule 2): AppendFrame
// refuses a message with a missing required field, because protobufjs and
// Wire clients crash or drop the link on it.

// ErrTagMismatch is returned by AppendFrame when the message is not the
// type that the tag carries.
var ErrTagMismatch = errors.New("message type does not match tag")

var marshalOptions = proto.MarshalOptions{UseCachedSize: true}

// AppendFrame appends [tag][varint32 length][m] to dst. m must be the
// message type of tag (see TagOf) with every required field set. On error
// dst is returned unchanged.
func AppendFrame(dst []byte, tag byte, m proto.Message) ([]byte, error) {
	if t, ok := TagOf(m); !ok || t != tag {
		return dst, fmt.Errorf("mcs: appending %s frame with %T: %w", TagName(tag), m, ErrTagMismatch)
	}
	n := proto.Size(m)
	orig := len(dst)
	dst = append(dst, tag)
	dst = protowire.AppendVarint(dst, uint64(n))
	out, err := marshalOptions.MarshalAppend(dst, m)
	if err != nil {
		return dst[:orig], fmt.Errorf("mcs: encoding %s: %w", TagName(tag), err)
	}
	if len(out)-len(dst) != n {
		return dst[:orig], fmt.Errorf("mcs: %s changed while being encoded", TagName(tag))
	}
	return out, nil
}

// AppendVersionedFrame appends the version byte and then the frame of m:
// the first packet of either side of a stream.
func AppendVersionedFrame(dst []byte, tag byte, m proto.Message) ([]byte, error) {
	orig := len(dst)
	out, err := AppendFrame(append(dst, Version), tag, m)
	if err != nil {
		return dst[:orig], err
	}
	return out, nil
}

// FrameSize returns the encoded size of m's frame without the version byte.
func FrameSize(m proto.Message) int {
	n := proto.Size(m)
	return 1 + protowire.SizeVarint(uint64(n)) + n
}
