package queue

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// leaderGet reads a key's latest value from its bucket's stream leader
// ($JS.API.STREAM.MSG.GET, not a direct get). KV reads are direct gets that
// any replica may answer, so in a cluster a key written a moment ago on
// another node can still be missing there: the device that just checked in
// on node 1 and registers on node 2. Callers use this after a miss, so a
// write is always visible to the next read, wherever it runs.
func (q *Queue) leaderGet(ctx context.Context, bucket, key string) ([]byte, error) {
	req, err := json.Marshal(struct {
		LastBySubj string `json:"last_by_subj"`
	}{"$KV." + bucket + "." + key})
	if err != nil {
		return nil, err
	}
	msg, err := q.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET.KV_"+bucket, req)
	if err != nil {
		return nil, fmt.Errorf("reading %s/%s from the leader: %w", bucket, key, err)
	}
	var resp struct {
		Error *struct {
			Code        int    `json:"code"`
			Description string `json:"description"`
		} `json:"error"`
		Message struct {
			Hdrs []byte `json:"hdrs"`
			Data []byte `json:"data"`
		} `json:"message"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return nil, fmt.Errorf("decoding %s/%s from the leader: %w", bucket, key, err)
	}
	if resp.Error != nil {
		if resp.Error.Code == 404 {
			return nil, ErrNotFound
		}
		return nil, fmt.Errorf("reading %s/%s from the leader: %s", bucket, key, resp.Error.Description)
	}
	if bytes.Contains(resp.Message.Hdrs, []byte("KV-Operation: DEL")) || bytes.Contains(resp.Message.Hdrs, []byte("KV-Operation: PURGE")) {
		return nil, ErrNotFound
	}
	return resp.Message.Data, nil
}

// kvGet reads key from kv (bucket is its name). On a miss it asks the
// stream leader before answering ErrNotFound (see leaderGet).
func (q *Queue) kvGet(ctx context.Context, kv jetstream.KeyValue, bucket, key string) ([]byte, error) {
	e, err := kv.Get(ctx, key)
	if err == nil {
		return e.Value(), nil
	}
	if !errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, fmt.Errorf("reading %s/%s: %w", bucket, key, err)
	}
	return q.leaderGet(ctx, bucket, key)
}
