// Package testcert makes self-signed TLS credentials for 127.0.0.1, for
// tests that need a real TLS or mTLS handshake on loopback.
package testcert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc/credentials"
)

// Creds returns server and client credentials from a fresh self-signed
// certificate for 127.0.0.1; with mutual, the server requires a client
// certificate and the client presents one.
func Creds(t testing.TB, mutual bool) (server, client credentials.TransportCredentials) {
	t.Helper()
	cert, pool := selfSigned(t)
	sc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	cc := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	if mutual {
		sc.ClientAuth = tls.RequireAndVerifyClientCert
		sc.ClientCAs = pool
		cc.Certificates = []tls.Certificate{cert}
	}
	return credentials.NewTLS(sc), credentials.NewTLS(cc)
}

// TLSConfigs returns a server and a client tls.Config from a fresh
// self-signed certificate for 127.0.0.1, for tests that drive the TLS
// handshake themselves. The client offers ALPN "h2", as gRPC clients do.
func TLSConfigs(t testing.TB) (server, client *tls.Config) {
	t.Helper()
	cert, pool := selfSigned(t)
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		&tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12, NextProtos: []string{"h2"}}
}

func selfSigned(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "grpcmgmt test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}
