// Command tlsbaseline is the yardstick of docs/bench.md "Idle device
// connections": a plain goroutine-per-connection Go TLS echo server (one
// goroutine and one 4 KiB read buffer per connection, crypto/tls defaults),
// and a client that opens N TLS connections to it, does one echo round trip
// on each, prints "ready N" and holds them idle until SIGTERM or SIGINT.
//
//	tlsbaseline server --addr 127.0.0.1:0 --dir DIR   # writes DIR/addr, DIR/ca.pem
//	tlsbaseline client --dir DIR --conns N [--source-ips 127.0.0.2,127.0.0.3]
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: tlsbaseline server|client [flags]")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "server":
		err = server(ctx, os.Args[2:])
	case "client":
		err = client(ctx, os.Args[2:])
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "tlsbaseline:", err)
		os.Exit(1)
	}
}

func server(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("server", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	dir := fs.String("dir", ".", "where to write addr and ca.pem")
	_ = fs.Parse(args)
	cert, caPEM, err := selfSigned()
	if err != nil {
		return err
	}
	ln, err := tls.Listen("tcp", *addr, &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(*dir, "ca.pem"), caPEM, 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(*dir, "addr"), []byte(ln.Addr().String()), 0o600); err != nil {
		return err
	}
	context.AfterFunc(ctx, func() { ln.Close() })
	var wg sync.WaitGroup
	var mu sync.Mutex
	open := map[net.Conn]struct{}{}
	for {
		c, err := ln.Accept()
		if err != nil {
			break
		}
		mu.Lock()
		open[c] = struct{}{}
		mu.Unlock()
		wg.Go(func() {
			defer func() { mu.Lock(); delete(open, c); mu.Unlock(); c.Close() }()
			buf := make([]byte, 4096)
			for {
				n, err := c.Read(buf)
				if err != nil {
					return
				}
				if _, err := c.Write(buf[:n]); err != nil {
					return
				}
			}
		})
	}
	mu.Lock()
	for c := range open {
		c.Close()
	}
	mu.Unlock()
	wg.Wait()
	return nil
}

func client(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("client", flag.ExitOnError)
	dir := fs.String("dir", ".", "the server's dir (addr, ca.pem)")
	n := fs.Int("conns", 1000, "connections")
	srcs := fs.String("source-ips", "", "comma-separated source addresses, round-robin")
	_ = fs.Parse(args)
	addr, err := os.ReadFile(filepath.Join(*dir, "addr"))
	if err != nil {
		return err
	}
	caPEM, err := os.ReadFile(filepath.Join(*dir, "ca.pem"))
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	cfg := &tls.Config{RootCAs: pool, ServerName: "localhost"}
	var ips []net.IP
	for s := range strings.SplitSeq(*srcs, ",") {
		if ip := net.ParseIP(strings.TrimSpace(s)); ip != nil {
			ips = append(ips, ip)
		}
	}
	conns := make([]net.Conn, *n)
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	var failed atomic.Int64
	for i := range conns {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			d := &net.Dialer{Timeout: 30 * time.Second}
			if len(ips) > 0 {
				d.LocalAddr = &net.TCPAddr{IP: ips[i%len(ips)]}
			}
			c, err := tls.DialWithDialer(d, "tcp", string(addr), cfg)
			if err == nil {
				_, err = c.Write([]byte("hello\n"))
			}
			if err == nil {
				_, err = io.ReadFull(c, make([]byte, 6))
			}
			if err != nil {
				failed.Add(1)
				if c != nil {
					c.Close()
				}
				return
			}
			conns[i] = c
		})
	}
	wg.Wait()
	fmt.Printf("ready %d\n", *n-int(failed.Load()))
	<-ctx.Done()
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
	return nil
}

// selfSigned makes a throwaway ECDSA P-256 certificate for localhost.
func selfSigned() (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, IsCA: true, BasicConstraintsValid: true,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}
