package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/ccsd/ccsd/client/ccs"
	"github.com/ccsd/ccsd/internal/certs"
)

func cmdSend(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("send", stderr)
	dataDir := fs.String("data-dir", "./ccsd-data", "data directory of the running server (endpoints, CA, dev sender)")
	to := fs.String("to", "", "registration id to send to (required)")
	payload := fs.String("json", "{}", `message JSON, e.g. '{"data":{"k":"v"}}'; "to" and "message_id" are filled in when missing`)
	addr := fs.String("addr", "", "CCS address (default: from DATA_DIR/endpoints.json)")
	caFile := fs.String("ca-file", "", "CA certificate to trust (default: from DATA_DIR/endpoints.json)")
	sender := fs.String("sender", "", "sender id (default: the development sender of DATA_DIR)")
	apiKey := fs.String("api-key", "", "API key (default: the development sender's; or $CCSD_API_KEY)")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	if pos, err := parseFlags(fs, args); err != nil {
		return err
	} else if len(pos) != 0 {
		return usageError("send takes no positional arguments")
	}
	if *to == "" {
		return usageError("send: --to is required")
	}
	var msg map[string]any
	dec := json.NewDecoder(bytes.NewReader([]byte(*payload)))
	dec.UseNumber()
	if err := dec.Decode(&msg); err != nil || msg == nil {
		return usageError(fmt.Sprintf("send: --json is not a JSON object: %v", err))
	}
	msg["to"] = *to
	if _, ok := msg["message_id"]; !ok {
		msg["message_id"] = "ccsd-send-" + randomHex(8)
	}
	raw, err := json.Marshal(msg)
	if err != nil {
		return err
	}

	ep, err := readEndpoints(*dataDir)
	if (*addr == "" || *caFile == "") && err != nil {
		return fmt.Errorf("is ccsd serve running on %s? %w", *dataDir, err)
	}
	if *addr == "" {
		*addr = ep.CCS
	}
	if *caFile == "" {
		*caFile = ep.CAFile
	}
	if *sender == "" || *apiKey == "" {
		if *apiKey == "" {
			*apiKey = os.Getenv("CCSD_API_KEY")
		}
		if *sender == "" || *apiKey == "" {
			var d devSender
			if err := readJSONFile(filepath.Join(*dataDir, "dev-sender.json"), &d); err != nil {
				return fmt.Errorf("no --sender/--api-key and no development sender: %w", err)
			}
			*sender, *apiKey = d.SenderID, d.APIKey
		}
	}
	pool, err := certs.LoadCA(*caFile)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	host := "localhost"
	c, err := ccs.Dial(ctx, ccs.Config{Addr: *addr, SenderID: *sender, APIKey: *apiKey, TLSConfig: clientTLS(pool, host)})
	if err != nil {
		return fmt.Errorf("connecting to %s: %w", *addr, err)
	}
	defer c.Close()
	id, _ := msg["message_id"].(string)
	resp, err := c.Send(ctx, &ccs.Message{MessageID: id, To: *to, RawJSON: raw})
	if err != nil {
		return err
	}
	out := map[string]string{"message_id": resp.MessageID, "from": resp.From}
	if resp.OK() {
		out["message_type"] = "ack"
		if resp.RegistrationID != "" {
			out["registration_id"] = resp.RegistrationID
		}
	} else {
		out["message_type"] = "nack"
		out["error"] = resp.Error
		out["error_description"] = resp.Description
	}
	if err := json.NewEncoder(stdout).Encode(out); err != nil {
		return err
	}
	if !resp.OK() {
		return fmt.Errorf("message %s NACKed: %s", resp.MessageID, resp.Error)
	}
	return nil
}

func readEndpoints(dir string) (endpoints, error) {
	var ep endpoints
	err := readJSONFile(filepath.Join(dir, "endpoints.json"), &ep)
	return ep, err
}

func readJSONFile(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decoding %s: %w", path, err)
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// clientTLS trusts pool and expects the server certificate for host.
func clientTLS(pool *x509.CertPool, host string) *tls.Config {
	return &tls.Config{RootCAs: pool, ServerName: host, MinVersion: tls.VersionTLS12}
}
