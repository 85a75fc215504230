package gcm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// A record is how the queue stores a downstream message. Layout, version 1:
//
//	version  1 byte, recordVersion
//	flags    1 byte, the flag* bits below
//	ttl      uvarint, seconds
//	accepted varint (zig-zag), ms since the epoch
//	then seven byte strings, each a uvarint length and the bytes:
//	sender, to, message_id, collapse_key, restricted_package_name,
//	data, notification
//
// data and notification are present (flagData, flagNotification) even when
// empty, so a nil field survives the round trip as nil. dry_run is not
// stored: a dry run is never queued.
const recordVersion = 1

const (
	flagDelayWhileIdle = 1 << iota
	flagDeliveryReceipt
	flagContentAvailable
	flagMutableContent
	flagPriorityHigh
	flagData
	flagNotification

	flagsKnown = 1<<iota - 1
)

func appendRecord(dst []byte, sender []byte, in *Inbound, acceptedMs int64) []byte {
	var flags byte
	if in.DelayWhileIdle {
		flags |= flagDelayWhileIdle
	}
	if in.DeliveryReceipt {
		flags |= flagDeliveryReceipt
	}
	if in.ContentAvailable {
		flags |= flagContentAvailable
	}
	if in.MutableContent {
		flags |= flagMutableContent
	}
	if in.Priority == PriorityHigh {
		flags |= flagPriorityHigh
	}
	if in.Data != nil {
		flags |= flagData
	}
	if in.Notification != nil {
		flags |= flagNotification
	}
	dst = append(dst, recordVersion, flags)
	ttl := in.TTL
	if ttl < 0 {
		ttl = 0
	}
	dst = binary.AppendUvarint(dst, uint64(ttl))
	dst = binary.AppendVarint(dst, acceptedMs)
	for _, f := range [...][]byte{sender, in.To, in.MessageID, in.CollapseKey, in.RestrictedPackageName, in.Data, in.Notification} {
		dst = binary.AppendUvarint(dst, uint64(len(f)))
		dst = append(dst, f...)
	}
	return dst
}

var (
	errRecordTruncated = errors.New("decode record: truncated")
	errRecordTrailing  = errors.New("decode record: trailing bytes")
)

func decodeRecord(b []byte, m *Message) error {
	if len(b) < 2 {
		return errRecordTruncated
	}
	if b[0] != recordVersion {
		return fmt.Errorf("decode record: unknown version %d", b[0])
	}
	flags := b[1]
	if flags&^flagsKnown != 0 {
		return fmt.Errorf("decode record: unknown flags %#x", flags)
	}
	i := 2
	ttl, n := binary.Uvarint(b[i:])
	if n <= 0 {
		return errRecordTruncated
	}
	if ttl > math.MaxInt32 {
		return fmt.Errorf("decode record: time_to_live %d out of range", ttl)
	}
	i += n
	accepted, n := binary.Varint(b[i:])
	if n <= 0 {
		return errRecordTruncated
	}
	i += n

	// Locate the seven fields before copying anything.
	var span [7][2]int
	for k := range span {
		l, n := binary.Uvarint(b[i:])
		if n <= 0 || l > uint64(len(b)-i-n) {
			return errRecordTruncated
		}
		i += n
		span[k] = [2]int{i, i + int(l)}
		i += int(l)
	}
	if i != len(b) {
		return errRecordTrailing
	}
	if flags&flagData == 0 && span[5][0] != span[5][1] || flags&flagNotification == 0 && span[6][0] != span[6][1] {
		return errors.New("decode record: object present without its flag")
	}

	// One string for the five string fields, one slice for the two raw
	// objects.
	strs := string(b[span[0][0]:span[4][1]])
	str := func(k int) string { return strs[span[k][0]-span[0][0] : span[k][1]-span[0][0]] }
	*m = Message{
		SenderID:              str(0),
		To:                    str(1),
		MessageID:             str(2),
		CollapseKey:           str(3),
		TTL:                   int32(ttl),
		Accepted:              accepted,
		DelayWhileIdle:        flags&flagDelayWhileIdle != 0,
		DeliveryReceipt:       flags&flagDeliveryReceipt != 0,
		ContentAvailable:      flags&flagContentAvailable != 0,
		MutableContent:        flags&flagMutableContent != 0,
		RestrictedPackageName: str(4),
	}
	if flags&flagPriorityHigh != 0 {
		m.Priority = PriorityHigh
	}
	if flags&(flagData|flagNotification) != 0 {
		raw := append([]byte(nil), b[span[5][0]:span[6][1]]...)
		part := func(k int) []byte {
			lo, hi := span[k][0]-span[5][0], span[k][1]-span[5][0]
			return raw[lo:hi:hi]
		}
		if flags&flagData != 0 {
			m.Data = part(5)
		}
		if flags&flagNotification != 0 {
			m.Notification = part(6)
		}
	}
	return nil
}
