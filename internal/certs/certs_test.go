package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var allFiles = []string{CAFileName, CAKeyFileName, ServerFileName, ServerKeyFileName}

// readAll returns the contents of the four files.
func readAll(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	m := map[string][]byte{}
	for _, f := range allFiles {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		m[f] = b
	}
	return m
}

func TestEnsureCreates(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	b, err := Ensure(dir, "ccsd.example", "10.0.0.7")
	if err != nil {
		t.Fatalf("Ensure: %v", err)
	}
	if got, want := b.CAFile, filepath.Join(dir, CAFileName); got != want {
		t.Errorf("CAFile = %q, want %q", got, want)
	}
	modes := map[string]os.FileMode{CAFileName: 0o644, CAKeyFileName: 0o600, ServerFileName: 0o644, ServerKeyFileName: 0o600}
	for f, want := range modes {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s mode = %v, want %v", f, got, want)
		}
	}

	ca, caKey, err := loadPair(filepath.Join(dir, CAFileName), filepath.Join(dir, CAKeyFileName))
	if err != nil {
		t.Fatal(err)
	}
	srv := b.Cert.Leaf
	tests := []struct {
		name      string
		got, want any
	}{
		{"ca is ca", ca.IsCA, true},
		{"ca curve", caKey.Curve, elliptic.P256()},
		{"ca validity", ca.NotAfter.Sub(ca.NotBefore), caValidity + backdate},
		{"server curve", b.Cert.PrivateKey.(*ecdsa.PrivateKey).Curve, elliptic.P256()},
		{"server validity", srv.NotAfter.Sub(srv.NotBefore), serverValidity + backdate},
		{"server is ca", srv.IsCA, false},
		{"server eku", srv.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}},
		{"server signed by ca", srv.CheckSignatureFrom(ca), nil},
	}
	for _, tt := range tests {
		if !equal(tt.got, tt.want) {
			t.Errorf("%s = %v, want %v", tt.name, tt.got, tt.want)
		}
	}
	for _, h := range append(slices.Clone(DefaultHosts), "ccsd.example", "10.0.0.7") {
		if err := srv.VerifyHostname(h); err != nil {
			t.Errorf("server cert does not cover %s: %v", h, err)
		}
	}
	opts := x509.VerifyOptions{Roots: b.CAPool, DNSName: "mtalk.google.com", KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	if _, err := srv.Verify(opts); err != nil {
		t.Errorf("server cert does not verify against CAPool: %v", err)
	}
}

func equal(a, b any) bool {
	switch a := a.(type) {
	case []x509.ExtKeyUsage:
		return slices.Equal(a, b.([]x509.ExtKeyUsage))
	case error:
		return a == b
	}
	return a == b
}

func TestEnsureReuses(t *testing.T) {
	dir := t.TempDir()
	first, err := Ensure(dir, "ccsd.example")
	if err != nil {
		t.Fatal(err)
	}
	before := readAll(t, dir)
	// The same hosts, given differently, are the same request.
	second, err := Ensure(dir, "CCSD.example.")
	if err != nil {
		t.Fatal(err)
	}
	after := readAll(t, dir)
	for _, f := range allFiles {
		if !bytes.Equal(before[f], after[f]) {
			t.Errorf("%s rewritten on reuse", f)
		}
	}
	if !bytes.Equal(first.Cert.Certificate[0], second.Cert.Certificate[0]) {
		t.Error("second Ensure loaded a different server certificate")
	}
	// Fewer hosts than the certificate covers is fine too.
	if _, err := Ensure(dir); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readAll(t, dir)[ServerFileName], before[ServerFileName]) {
		t.Error("server certificate regenerated for a subset of its hosts")
	}
}

// TestEnsureRegenerates covers every reason to issue new files, with an injected clock.
func TestEnsureRegenerates(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		now        time.Time
		hosts      []string
		damage     func(t *testing.T, dir string)
		wantCA     bool // ca.pem rewritten
		wantServer bool // server.pem rewritten
	}{
		{name: "nothing changed", now: start.Add(24 * time.Hour)},
		{name: "new host", now: start, hosts: []string{"ccsd.example"}, wantServer: true},
		{name: "new ip", now: start, hosts: []string{"192.0.2.1"}, wantServer: true},
		{name: "server about to expire", now: start.Add(serverValidity - 24*time.Hour), wantServer: true},
		{name: "server expired", now: start.Add(serverValidity + time.Hour), wantServer: true},
		{name: "ca expired", now: start.Add(caValidity + time.Hour), wantCA: true, wantServer: true},
		{name: "server key missing", now: start, damage: remove(ServerKeyFileName), wantServer: true},
		{name: "server cert garbage", now: start, damage: overwrite(ServerFileName, "garbage"), wantServer: true},
		{name: "ca key missing", now: start, damage: remove(CAKeyFileName), wantCA: true, wantServer: true},
		{name: "key of another cert", now: start, damage: copyFile(CAKeyFileName, ServerKeyFileName), wantServer: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if _, err := ensure(dir, func() time.Time { return start }, nil); err != nil {
				t.Fatal(err)
			}
			before := readAll(t, dir)
			if tt.damage != nil {
				tt.damage(t, dir)
			}
			b, err := ensure(dir, func() time.Time { return tt.now }, tt.hosts)
			if err != nil {
				t.Fatalf("ensure: %v", err)
			}
			after := readAll(t, dir)
			if got := !bytes.Equal(before[CAFileName], after[CAFileName]); got != tt.wantCA {
				t.Errorf("ca rewritten = %v, want %v", got, tt.wantCA)
			}
			if got := !bytes.Equal(before[ServerFileName], after[ServerFileName]); got != tt.wantServer {
				t.Errorf("server cert rewritten = %v, want %v", got, tt.wantServer)
			}
			opts := x509.VerifyOptions{Roots: b.CAPool, CurrentTime: tt.now, DNSName: "localhost"}
			if _, err := b.Cert.Leaf.Verify(opts); err != nil {
				t.Errorf("resulting server cert does not verify at %v: %v", tt.now, err)
			}
			for _, h := range tt.hosts {
				if err := b.Cert.Leaf.VerifyHostname(h); err != nil {
					t.Errorf("resulting server cert lacks %s: %v", h, err)
				}
			}
		})
	}
}

func remove(name string) func(*testing.T, string) {
	return func(t *testing.T, dir string) {
		if err := os.Remove(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
}

func overwrite(name, content string) func(*testing.T, string) {
	return func(t *testing.T, dir string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func copyFile(from, to string) func(*testing.T, string) {
	return func(t *testing.T, dir string) {
		b, err := os.ReadFile(filepath.Join(dir, from))
		if err != nil {
			t.Fatal(err)
		}
		overwrite(to, string(b))(t, dir)
	}
}

func TestEnsureBadHost(t *testing.T) {
	for _, h := range []string{"", "a b", "host:5235", "user@host"} {
		if _, err := Ensure(t.TempDir(), h); err == nil {
			t.Errorf("Ensure(%q) succeeded, want an error", h)
		}
	}
}

// TestHandshake runs real TLS handshakes against ServerTLS on loopback.
func TestHandshake(t *testing.T) {
	b, err := Ensure(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sni := make(chan string, 1)
	cfg := b.ServerTLS()
	cfg.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		sni <- hello.ServerName
		return nil, nil
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	serveDone := make(chan struct{})
	go func() {
		defer close(serveDone)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			// Complete the handshake, echo one line's worth, close.
			io.Copy(c, io.LimitReader(c, 4))
			c.Close()
		}
	}()
	defer func() { ln.Close(); <-serveDone }()

	caPool, err := LoadCA(b.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		cfg        *tls.Config
		wantSNI    string
		wantErr    bool
		maxVersion uint16
	}{
		{name: "localhost", cfg: b.ClientTLS("localhost"), wantSNI: "localhost"},
		{name: "google name", cfg: b.ClientTLS("fcm-xmpp.googleapis.com"), wantSNI: "fcm-xmpp.googleapis.com"},
		// An empty ServerName makes the client verify the dialed IP and send no SNI.
		{name: "no sni", cfg: b.ClientTLS(""), wantSNI: ""},
		{name: "tls 1.2", cfg: b.ClientTLS("localhost"), wantSNI: "localhost", maxVersion: tls.VersionTLS12},
		{name: "ca loaded from file", cfg: &tls.Config{RootCAs: caPool, ServerName: "localhost"}, wantSNI: "localhost"},
		{name: "uncovered name", cfg: b.ClientTLS("example.com"), wantSNI: "example.com", wantErr: true},
		{name: "tls 1.1 refused", cfg: b.ClientTLS("localhost"), wantSNI: "localhost", maxVersion: tls.VersionTLS11, wantErr: true},
		{name: "untrusted", cfg: &tls.Config{ServerName: "localhost", RootCAs: x509.NewCertPool()}, wantSNI: "localhost", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg.Clone()
			if tt.maxVersion != 0 {
				cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS10, tt.maxVersion
			}
			c, err := tls.Dial("tcp", ln.Addr().String(), cfg)
			// The server reads the ClientHello (and records its SNI) before it accepts or
			// refuses the handshake.
			if got := <-sni; got != tt.wantSNI {
				t.Errorf("server saw SNI %q, want %q", got, tt.wantSNI)
			}
			if tt.wantErr {
				if err == nil {
					c.Close()
					t.Fatal("handshake succeeded, want an error")
				}
				return
			}
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			defer c.Close()
			if _, err := c.Write([]byte("ping")); err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(c)
			if err != nil && !errors.Is(err, io.EOF) {
				t.Fatal(err)
			}
			if string(got) != "ping" {
				t.Errorf("echo = %q, want ping", got)
			}
			if tt.maxVersion != 0 && c.ConnectionState().Version != tt.maxVersion {
				t.Errorf("version = %x, want %x", c.ConnectionState().Version, tt.maxVersion)
			}
		})
	}
}

func TestLoadCA(t *testing.T) {
	dir := t.TempDir()
	b, err := Ensure(dir)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := LoadCA(b.CAFile)
	if err != nil {
		t.Fatalf("LoadCA: %v", err)
	}
	if !pool.Equal(b.CAPool) {
		t.Error("LoadCA pool differs from the bundle's CAPool")
	}
	bad := filepath.Join(dir, "bad.pem")
	if err := os.WriteFile(bad, []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{bad, filepath.Join(dir, "missing.pem")} {
		if _, err := LoadCA(f); err == nil || !strings.Contains(err.Error(), "ca") {
			t.Errorf("LoadCA(%s) = %v, want an error", f, err)
		}
	}
}
