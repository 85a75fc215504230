// Package certs provides the development certificate authority and server certificate that
// ccsd generates in its data dir, so that TLS works out of the box: clients trust ca.pem and
// the server presents server.pem, whose names include localhost, the loopback addresses and
// the Google hostnames that GCM/FCM clients dial.
package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// File names inside the directory given to Ensure.
const (
	CAFileName        = "ca.pem"
	CAKeyFileName     = "ca-key.pem"
	ServerFileName    = "server.pem"
	ServerKeyFileName = "server-key.pem"
)

// Validity periods of generated certificates. A server certificate is renewed once less than
// renewBefore of it remains, so a long-running dev setup never meets an expired one.
const (
	caValidity     = 10 * 365 * 24 * time.Hour
	serverValidity = 2 * 365 * 24 * time.Hour
	renewBefore    = 7 * 24 * time.Hour
	backdate       = time.Hour // tolerate clocks slightly behind ours
)

// DefaultHosts are the names every generated server certificate covers.
var DefaultHosts = []string{
	"localhost", "127.0.0.1", "::1",
	"gcm.googleapis.com", "gcm-xmpp.googleapis.com", "fcm-xmpp.googleapis.com",
	"mtalk.google.com", "android.clients.google.com", "fcm.googleapis.com",
}

// Bundle is a loaded CA and server certificate. It is immutable.
type Bundle struct {
	CAFile string         // absolute path of ca.pem, for clients to trust
	CAPool *x509.CertPool // pool holding only the CA
	Cert   tls.Certificate
}

// Ensure loads dir/ca.pem, dir/ca-key.pem, dir/server.pem and dir/server-key.pem, creating
// them on first use: an ECDSA P-256 CA valid 10 years and a server certificate signed by it,
// valid 2 years, for DefaultHosts plus extraHosts (DNS names or IP addresses), with extended
// key usage serverAuth. Keys are written with mode 0600. Existing files are reused as they
// are; the server certificate is regenerated when it is missing, expired or about to expire,
// lacks a requested host, or was not signed by the CA; the CA is regenerated (and with it the
// server certificate) only when missing, unreadable or expired.
func Ensure(dir string, extraHosts ...string) (*Bundle, error) {
	return ensure(dir, time.Now, extraHosts)
}

// ensure is Ensure with an injected clock.
func ensure(dir string, now func() time.Time, extraHosts []string) (*Bundle, error) {
	hosts, err := normalizeHosts(append(slices.Clone(DefaultHosts), extraHosts...))
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating cert dir: %w", err)
	}
	caFile, err := filepath.Abs(filepath.Join(dir, CAFileName))
	if err != nil {
		return nil, fmt.Errorf("resolving ca path: %w", err)
	}
	caKeyFile := filepath.Join(dir, CAKeyFileName)
	srvFile := filepath.Join(dir, ServerFileName)
	srvKeyFile := filepath.Join(dir, ServerKeyFileName)

	ca, caKey, err := loadPair(caFile, caKeyFile)
	if err != nil || !validAt(ca, now(), renewBefore) || !ca.IsCA {
		if ca, caKey, err = newCA(now()); err != nil {
			return nil, err
		}
		if err := writePair(caFile, caKeyFile, ca, caKey); err != nil {
			return nil, err
		}
	}
	srv, srvKey, err := loadPair(srvFile, srvKeyFile)
	if err != nil || !serverUsable(srv, ca, now(), hosts) {
		if srv, srvKey, err = newServer(now(), ca, caKey, hosts); err != nil {
			return nil, err
		}
		if err := writePair(srvFile, srvKeyFile, srv, srvKey); err != nil {
			return nil, err
		}
	}

	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &Bundle{
		CAFile: caFile,
		CAPool: pool,
		Cert: tls.Certificate{
			Certificate: [][]byte{srv.Raw},
			PrivateKey:  srvKey,
			Leaf:        srv,
		},
	}, nil
}

// LoadCA reads a PEM file of one or more CA certificates into a pool.
func LoadCA(caFile string) (*x509.CertPool, error) {
	b, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("reading ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("reading ca %s: no certificates found", caFile)
	}
	return pool, nil
}

// ServerTLS returns a server configuration presenting b.Cert, TLS 1.2 or later. With a
// single certificate the server presents it whatever the ClientHello asks for, including no
// SNI at all (clients dialing an IP address) and the Google hostnames.
func (b *Bundle) ServerTLS() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{b.Cert},
	}
}

// ClientTLS returns a client configuration, TLS 1.2 or later, that trusts only the bundle's
// CA and verifies the server as serverName.
func (b *Bundle) ClientTLS(serverName string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		RootCAs:    b.CAPool,
		ServerName: serverName,
	}
}

// normalizeHosts lower-cases DNS names, canonicalises IP addresses and drops duplicates.
func normalizeHosts(hosts []string) ([]string, error) {
	var out []string
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		if ip := net.ParseIP(strings.Trim(h, "[]")); ip != nil {
			h = ip.String()
		} else {
			h = strings.ToLower(strings.TrimSuffix(h, "."))
			if h == "" || strings.ContainsAny(h, " /:@") {
				return nil, fmt.Errorf("certs: bad host %q", h)
			}
		}
		if !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	return out, nil
}

// validAt reports whether c is valid at t and stays valid for at least margin.
func validAt(c *x509.Certificate, t time.Time, margin time.Duration) bool {
	return !t.Before(c.NotBefore) && t.Add(margin).Before(c.NotAfter)
}

// serverUsable reports whether srv can keep serving: signed by ca, not near expiry, for
// serverAuth, and covering every host.
func serverUsable(srv, ca *x509.Certificate, now time.Time, hosts []string) bool {
	if !validAt(srv, now, renewBefore) || srv.CheckSignatureFrom(ca) != nil {
		return false
	}
	if !slices.Contains(srv.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
		return false
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			if !slices.ContainsFunc(srv.IPAddresses, ip.Equal) {
				return false
			}
		} else if !slices.Contains(srv.DNSNames, h) {
			return false
		}
	}
	return true
}

func newCA(now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generating ca key: %w", err)
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{Organization: []string{"ccsd"}, CommonName: "ccsd development CA"},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	c, err := sign(tmpl, tmpl, key.Public(), key)
	return c, key, err
}

func newServer(now time.Time, ca *x509.Certificate, caKey crypto.Signer, hosts []string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generating server key: %w", err)
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{Organization: []string{"ccsd"}, CommonName: hosts[0]},
		NotBefore:   now.Add(-backdate),
		NotAfter:    now.Add(serverValidity),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if tmpl.NotAfter.After(ca.NotAfter) {
		tmpl.NotAfter = ca.NotAfter
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	c, err := sign(tmpl, ca, key.Public(), caKey)
	return c, key, err
}

// sign issues tmpl, with a random serial, signed by parent's key.
func sign(tmpl, parent *x509.Certificate, pub crypto.PublicKey, parentKey crypto.Signer) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("generating serial: %w", err)
	}
	tmpl.SerialNumber = serial
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, parentKey)
	if err != nil {
		return nil, fmt.Errorf("creating certificate: %w", err)
	}
	return x509.ParseCertificate(der)
}

// loadPair reads a PEM certificate and its PEM PKCS#8 ECDSA key and checks that they match.
func loadPair(certFile, keyFile string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	cb, err := os.ReadFile(certFile)
	if err != nil {
		return nil, nil, err
	}
	kb, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, nil, err
	}
	cp, _ := pem.Decode(cb)
	kp, _ := pem.Decode(kb)
	if cp == nil || cp.Type != "CERTIFICATE" || kp == nil || kp.Type != "PRIVATE KEY" {
		return nil, nil, fmt.Errorf("reading %s: not a pem certificate and key", certFile)
	}
	c, err := x509.ParseCertificate(cp.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", certFile, err)
	}
	k, err := x509.ParsePKCS8PrivateKey(kp.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", keyFile, err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, nil, fmt.Errorf("reading %s: not an ecdsa key", keyFile)
	}
	pub, ok := c.PublicKey.(*ecdsa.PublicKey)
	if !ok || !pub.Equal(key.Public()) {
		return nil, nil, fmt.Errorf("%s does not match %s", keyFile, certFile)
	}
	return c, key, nil
}

// writePair writes the key (0600) before the certificate (0644), each atomically.
func writePair(certFile, keyFile string, c *x509.Certificate, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("encoding key: %w", err)
	}
	if err := writeFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return err
	}
	return writeFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}), 0o644)
}

// writeFile writes data to a temporary file with mode perm and renames it over path.
func writeFile(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	tmp := f.Name()
	err = f.Chmod(perm)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
