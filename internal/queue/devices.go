package queue

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Device is a checked-in device: an android id and the hash of the
// security token issued with it.
type Device struct {
	AndroidID   uint64    `json:"android_id"`
	TokenHash   string    `json:"token_hash"`
	Created     time.Time `json:"created"`
	LastCheckin time.Time `json:"last_checkin"`
}

// Checkin returns the device's android id and security token. A device that
// presents a known id with its token keeps them; any other request (first
// check-in, unknown id, wrong token) gets a fresh pair. Both are in
// 1..2^63-1 (clients hold them as signed 64-bit numbers).
func (q *Queue) Checkin(ctx context.Context, androidID, token uint64) (Device, uint64, error) {
	if androidID != 0 && token != 0 {
		d, err := q.device(ctx, androidID)
		if err == nil && d.verify(token) {
			d.LastCheckin = time.Now().UTC()
			if b, err := json.Marshal(&d); err == nil {
				_, _ = q.devices.Put(ctx, deviceKey(androidID), b)
			}
			return d, token, nil
		}
		if err != nil && !errors.Is(err, ErrNotFound) {
			return Device{}, 0, err
		}
	}
	for range 10 {
		id, tok := random63(), random63()
		now := time.Now().UTC()
		d := Device{AndroidID: id, TokenHash: tokenHash(tok), Created: now, LastCheckin: now}
		b, err := json.Marshal(&d)
		if err != nil {
			return Device{}, 0, fmt.Errorf("encoding device: %w", err)
		}
		if _, err := q.devices.Create(ctx, deviceKey(id), b); errors.Is(err, jetstream.ErrKeyExists) {
			continue
		} else if err != nil {
			return Device{}, 0, fmt.Errorf("storing device: %w", err)
		}
		return d, tok, nil
	}
	return Device{}, 0, errors.New("checkin: no free android id after 10 draws")
}

// VerifyDevice reports whether token is androidID's security token. An
// unknown device is ErrNotFound.
func (q *Queue) VerifyDevice(ctx context.Context, androidID, token uint64) error {
	d, err := q.device(ctx, androidID)
	if err != nil {
		return err
	}
	if !d.verify(token) {
		return ErrBadToken
	}
	return nil
}

// ErrBadToken is returned for a security token that does not match.
var ErrBadToken = errors.New("bad security token")

func (q *Queue) device(ctx context.Context, androidID uint64) (Device, error) {
	if androidID == 0 {
		return Device{}, ErrNotFound
	}
	b, err := q.kvGet(ctx, q.devices, BucketDevices, deviceKey(androidID))
	if err != nil {
		return Device{}, err
	}
	var d Device
	if err := json.Unmarshal(b, &d); err != nil {
		return Device{}, fmt.Errorf("decoding device: %w", err)
	}
	return d, nil
}

func (d *Device) verify(token uint64) bool {
	want, err := hex.DecodeString(d.TokenHash)
	if err != nil {
		return false
	}
	got := sha256.Sum256([]byte(strconv.FormatUint(token, 10)))
	return subtle.ConstantTimeCompare(got[:], want) == 1
}

func tokenHash(token uint64) string {
	sum := sha256.Sum256([]byte(strconv.FormatUint(token, 10)))
	return hex.EncodeToString(sum[:])
}

func deviceKey(androidID uint64) string { return strconv.FormatUint(androidID, 10) }

// random63 draws a uniformly random number in 1..2^63-1.
func random63() uint64 {
	var b [8]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			panic(err)
		}
		if v := binary.BigEndian.Uint64(b[:]) >> 1; v != 0 {
			return v
		}
	}
}
