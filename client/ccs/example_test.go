package ccs_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"net"

	"github.com/ccsd/ccsd/client/ccs"
	"github.com/ccsd/ccsd/internal/xmppserver"
	"github.com/ccsd/ccsd/internal/xmppserver/ccstest"
)

// Send one message to a CCS server and wait for its ACK. The server here is
// an in-process ccsd CCS endpoint with an in-memory backend.
func Example() {
	serverTLS, clientTLS, err := ccstest.NewTLS()
	if err != nil {
		log.Fatal(err)
	}
	srv, err := xmppserver.New(xmppserver.Config{
		TLSConfig: serverTLS,
		Backend:   ccstest.NewBackend("123456789", "my-api-key"),
		Logger:    slog.New(slog.DiscardHandler),
	})
	if err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()

	client, err := ccs.Dial(context.Background(), ccs.Config{
		Addr:      ln.Addr().String(),
		SenderID:  "123456789",
		APIKey:    "my-api-key",
		TLSConfig: clientTLS,
		OnUpstream: func(u *ccs.Upstream) error {
			fmt.Println("upstream from", u.From, u.Data)
			return nil // the SDK ACKs it
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	resp, err := client.Send(context.Background(), &ccs.Message{
		To:         "registration-token",
		MessageID:  "m-1",
		TimeToLive: ccs.TTL(600),
		Data:       map[string]string{"score": "5x1"},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(resp.MessageID, resp.From, resp.OK())
	// Output: m-1 registration-token true
}
