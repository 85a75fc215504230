package certs

import (
	"crypto/tls"
)

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
