package natsutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// ServerTLS are a server's certificate files. Cert and Key are the
// server's certificate chain and key (PEM; the key is read as a secret
// file, see ReadSecretFile); CA, if set, is the CA whose certificates
// clients must present (mutual TLS) and, for a cluster, the CA of the
// other servers' route certificates.
type ServerTLS struct {
	Cert, Key, CA string
}

// Enabled says whether a certificate is given.
func (t ServerTLS) Enabled() bool { return t.Cert != "" || t.Key != "" }

// ClientTLS is how a client checks the server and, for mutual TLS, which
// certificate it presents. CA (a file) or CAPEM (its content, as a
// launcher hands it to remote ranks) is the CA that signed the server's
// certificate; neither: the system's roots. Cert and Key are the client's
// own certificate and key, for a server that asks for one.
type ClientTLS struct {
	CA    string
	CAPEM []byte
	Cert  string
	Key   string
}

// Enabled says whether anything of TLS is asked for.
func (t ClientTLS) Enabled() bool {
	return t.CA != "" || len(t.CAPEM) > 0 || t.Cert != "" || t.Key != ""
}

// keyPair loads a certificate and its key, the key through ReadSecretFile.
func keyPair(certFile, keyFile string) (tls.Certificate, error) {
	if certFile == "" || keyFile == "" {
		return tls.Certificate{}, errors.New("tls: give both a certificate (--tls-cert) and its key (--tls-key)")
	}
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tls certificate: %w", err)
	}
	keyPEM, err := ReadSecretFile(keyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tls key: %w", err)
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tls certificate %s and key %s: %w", certFile, keyFile, err)
	}
	return c, nil
}

func certPool(file string, data []byte) (*x509.CertPool, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("tls CA: %w", err)
		}
		data = b
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		if file == "" {
			file = "(given inline)"
		}
		return nil, fmt.Errorf("tls CA %s: no PEM certificate in it", file)
	}
	return pool, nil
}

// serverConfig is the tls.Config of a server's client listener: mutual
// TLS when a CA is given.
func (t ServerTLS) serverConfig() (*tls.Config, error) {
	c, err := keyPair(t.Cert, t.Key)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{c}, MinVersion: tls.VersionTLS12}
	if t.CA != "" {
		pool, err := certPool(t.CA, nil)
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// routeConfig is the tls.Config of a cluster's routes: each server
// presents its certificate and checks the other's against CA, both ways.
func (t ServerTLS) routeConfig() (*tls.Config, error) {
	if t.CA == "" {
		return nil, errors.New("tls on a cluster's routes: give the CA of the servers' certificates (--tls-ca), routes check each other both ways")
	}
	cfg, err := t.serverConfig()
	if err != nil {
		return nil, err
	}
	cfg.RootCAs = cfg.ClientCAs
	return cfg, nil
}

// config is the client's tls.Config, or nil when TLS is not asked for.
func (t ClientTLS) config() (*tls.Config, error) {
	if !t.Enabled() {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if t.CA != "" || len(t.CAPEM) > 0 {
		pool, err := certPool(t.CA, t.CAPEM)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if t.Cert != "" || t.Key != "" {
		c, err := keyPair(t.Cert, t.Key)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{c}
	}
	return cfg, nil
}

// JobTLS is a certificate authority and a server certificate made for one
// job (GenerateTLS), in a private directory.
type JobTLS struct {
	Dir    string    // the private directory holding the files
	Server ServerTLS // the server's certificate and key (CA unset: no client certificates asked)
	CAFile string    // the CA certificate clients check the server with
	CAPEM  []byte    // its content
}

// GenerateTLS makes a fresh CA and a server certificate signed by it for
// hosts (names or IP addresses; loopback is always included), valid for
// validFor, and writes them into a new private directory below parent
// (PrivateDir; every file CreateSecretFile'd, 0600). The CA's key is never
// written: nothing else can be signed with it once this returns.
func GenerateTLS(parent string, hosts []string, validFor time.Duration) (*JobTLS, error) {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	ca := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "cutpoint job CA"},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(validFor),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("tls: CA certificate: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	leaf := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "cutpoint nats-server"},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(validFor),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		// ClientAuth too: a server presents the same certificate on the
		// routes it dials.
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:    []string{"localhost"},
	}
	for _, h := range hosts {
		if h == "" {
			continue
		}
		if ip := net.ParseIP(h); ip != nil {
			leaf.IPAddresses = append(leaf.IPAddresses, ip)
		} else {
			leaf.DNSNames = append(leaf.DNSNames, h)
		}
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("tls: server certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	dir, err := PrivateDir(parent, "cutpoint-tls-")
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	j := &JobTLS{
		Dir:    dir,
		Server: ServerTLS{Cert: filepath.Join(dir, "server.pem"), Key: filepath.Join(dir, "server-key.pem")},
		CAFile: filepath.Join(dir, "ca.pem"),
		CAPEM:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
	}
	for _, f := range []struct {
		path string
		data []byte
	}{
		{j.CAFile, j.CAPEM},
		{j.Server.Cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER})},
		{j.Server.Key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})},
	} {
		if err := CreateSecretFile(f.path, f.data); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("tls: %w", err)
		}
	}
	return j, nil
}

// Remove deletes the job's certificate directory.
func (j *JobTLS) Remove() error { return os.RemoveAll(j.Dir) }

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

// IsLoopback says whether a listen address (host:port) only takes
// connections from this host: a loopback IP or "localhost". An
// unspecified host (0.0.0.0, ::, "") listens on every interface.
func IsLoopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
