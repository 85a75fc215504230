package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	xmpp "github.com/xmppo/go-xmpp"

	"github.com/ccsd/ccsd/internal/certs"
)

// TestGoXMPPClient drives ccsd with an unmodified third-party XMPP client,
// github.com/xmppo/go-xmpp (formerly mattn/go-xmpp, the library Google's
// go-gcm CCS client is built on), the way go-gcm uses it: direct TLS, SASL
// PLAIN as <sender>@gcm.googleapis.com, raw <message><gcm> stanzas with
// SendOrg, answers read with Recv as Chat values whose Other holds the
// JSON, and a XEP-0199 ping.
func TestGoXMPPClient(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	s := startServer(t, dir)
	reg := e2eRegister(t, dir, filepath.Join(dir, "phone.json"), s.dev.SenderID)
	pool, err := certs.LoadCA(s.ep.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	opts := xmpp.Options{
		Host:      s.ep.CCS,
		User:      s.dev.SenderID + "@gcm.googleapis.com",
		Password:  s.dev.APIKey,
		TLSConfig: &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12},
		Mechanism: "PLAIN",
	}
	c, err := opts.NewClient()
	if err != nil {
		t.Fatalf("go-xmpp NewClient against ccsd: %v", err)
	}
	defer c.Close()

	if _, err := c.SendOrg(`<message id=""><gcm xmlns="google:mobile:data">{"to":"` + reg +
		`","message_id":"gx-1","data":{"hello":"go-xmpp"}}</gcm></message>`); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SendOrg(`<message id=""><gcm xmlns="google:mobile:data">{"to":"APA91bnope","message_id":"gx-2"}</gcm></message>`); err != nil {
		t.Fatal(err)
	}
	type answer struct {
		MessageType string `json:"message_type"`
		MessageID   string `json:"message_id"`
		From        string `json:"from"`
		Error       string `json:"error"`
	}
	var got []answer
	for len(got) < 2 && ctx.Err() == nil {
		st, err := c.Recv()
		if err != nil {
			t.Fatalf("recv: %v", err)
		}
		chat, ok := st.(xmpp.Chat)
		if !ok {
			continue // presence echoes, IQ results
		}
		if chat.Type != "" {
			t.Errorf("answer stanza has type %q; ACK/NACK must have none (go-gcm dispatches on it)", chat.Type)
		}
		if len(chat.Other) == 0 {
			t.Fatalf("answer without a gcm payload: %+v", chat)
		}
		var a answer
		if err := json.Unmarshal([]byte(chat.Other[0]), &a); err != nil {
			t.Fatalf("gcm payload %q: %v", chat.Other[0], err)
		}
		got = append(got, a)
	}
	want := []answer{
		{MessageType: "ack", MessageID: "gx-1", From: reg},
		{MessageType: "nack", MessageID: "gx-2", From: "APA91bnope", Error: "BAD_REGISTRATION"},
	}
	for i := range want {
		if i >= len(got) || got[i] != want[i] {
			t.Errorf("answer %d = %+v, want %+v", i, got, want[i])
		}
	}
	if err := c.PingC2S("", ""); err != nil {
		t.Errorf("XEP-0199 ping: %v", err)
	}
	if lines := e2eListen(t, dir, filepath.Join(dir, "phone.json"), 1); len(lines) != 1 || lines[0].Data["hello"] != "go-xmpp" {
		t.Errorf("device got %+v", lines)
	}
}
