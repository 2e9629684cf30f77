package natsutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/cutpoint/cutpoint/internal/subjects"
)

// testCA is a CA made in the test with crypto/x509, which signs client
// and server certificates.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string
}

func newTestCA(t *testing.T, dir string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	file := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, file: file}
}

// issue writes a certificate and key (0600) named name, for a client or a
// server on loopback.
func (ca *testCA) issue(t *testing.T, dir, name string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		DNSNames:    []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// roundTrip checks that nc carries a message to itself.
func roundTrip(t *testing.T, nc *nats.Conn) {
	t.Helper()
	sub, err := nc.SubscribeSync("t.x")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish("t.x", []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if _, err := sub.NextMsg(5 * time.Second); err != nil {
		t.Fatalf("no message over TLS: %v", err)
	}
}

func TestGeneratedTLS(t *testing.T) {
	jt, err := GenerateTLS(t.TempDir(), []string{"example.invalid"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{jt.CAFile, jt.Server.Cert, jt.Server.Key} {
		st, err := os.Lstat(f)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", f, st.Mode().Perm())
		}
	}
	if st, _ := os.Stat(jt.Dir); st.Mode().Perm() != 0o700 {
		t.Errorf("%s: mode %v, want 0700", jt.Dir, st.Mode().Perm())
	}
	srv, err := StartServer(ServerOptions{Token: "tok", TLS: jt.Server})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	url := srv.ClientURL()
	// The CA as a launcher hands it to remote ranks: its content.
	nc, err := Connect(url, ConnectOptions{Name: "t", Auth: Auth{Token: "tok", TLS: ClientTLS{CAPEM: jt.CAPEM}}})
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, nc)
	if !nc.TLSRequired() {
		t.Error("connection not over TLS")
	}
	nc.Close()
	// No CA: the server's certificate is not trusted.
	if _, err := Connect(url, ConnectOptions{Name: "t", Auth: Auth{Token: "tok", TLS: ClientTLS{CA: filepath.Join(t.TempDir(), "none.pem")}}}); err == nil {
		t.Fatal("connected with a CA file that does not exist")
	}
	if _, err := Connect(url, ConnectOptions{Name: "t", Auth: Auth{Token: "tok"}}); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("connected without the job's CA (err %v)", err)
	}
	other, err := GenerateTLS(t.TempDir(), nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Connect(url, ConnectOptions{Name: "t", Auth: Auth{Token: "tok", TLS: ClientTLS{CAPEM: other.CAPEM}}}); err == nil {
		t.Fatal("connected trusting another job's CA")
	}
}

func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, dir)
	scert, skey := ca.issue(t, dir, "server")
	ccert, ckey := ca.issue(t, dir, "client")
	srv, err := StartServer(ServerOptions{Token: "tok", TLS: ServerTLS{Cert: scert, Key: skey, CA: ca.file}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	url := srv.ClientURL()
	nc, err := Connect(url, ConnectOptions{Name: "t", Auth: Auth{Token: "tok", TLS: ClientTLS{CA: ca.file, Cert: ccert, Key: ckey}}})
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, nc)
	nc.Close()
	if nc, err := Connect(url, ConnectOptions{Name: "t", Auth: Auth{Token: "tok", TLS: ClientTLS{CA: ca.file}}}); err == nil {
		nc.Close()
		t.Fatal("connected without a client certificate to a server that asks for one")
	}
	// A client certificate from another CA is refused.
	odir := t.TempDir()
	oca := newTestCA(t, odir)
	ocert, okey := oca.issue(t, odir, "intruder")
	if nc, err := Connect(url, ConnectOptions{Name: "t", Auth: Auth{Token: "tok", TLS: ClientTLS{CA: ca.file, Cert: ocert, Key: okey}}}); err == nil {
		nc.Close()
		t.Fatal("connected with a certificate of another CA")
	}
	// A key other users can read is refused before anything dials.
	if err := os.Chmod(ckey, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Connect(url, ConnectOptions{Name: "t", Auth: Auth{Token: "tok", TLS: ClientTLS{CA: ca.file, Cert: ccert, Key: ckey}}}); !errors.Is(err, ErrSecretFile) {
		t.Fatalf("key of mode 0644: err %v, want ErrSecretFile", err)
	}
}

func TestClusterRoutesTLS(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, dir)
	cert, key := ca.issue(t, dir, "server")
	tl := ServerTLS{Cert: cert, Key: key, CA: ca.file}
	a, err := StartServer(ServerOptions{Token: "tok", TLS: tl, Cluster: &ClusterOptions{Name: "c", Listen: "127.0.0.1:0", Token: "rt"}})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Shutdown()
	b, err := StartServer(ServerOptions{Token: "tok", TLS: tl, Cluster: &ClusterOptions{Name: "c", Listen: "127.0.0.1:0", Token: "rt", Routes: []string{a.ClusterURL()}}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Shutdown()
	deadline := time.Now().Add(10 * time.Second)
	for a.Routes() == 0 || b.Routes() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no TLS route between the servers (routes %d, %d)", a.Routes(), b.Routes())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Routes without a CA cannot check each other: refused.
	if _, err := StartServer(ServerOptions{Token: "tok", TLS: ServerTLS{Cert: cert, Key: key}, Cluster: &ClusterOptions{Name: "c", Listen: "127.0.0.1:0"}}); err == nil {
		t.Fatal("cluster TLS without a CA started")
	}
}

func TestInsecureListenerRefused(t *testing.T) {
	cases := []struct {
		name string
		o    ServerOptions
	}{
		{"no auth", ServerOptions{Listen: "0.0.0.0:0"}},
		{"token without TLS", ServerOptions{Listen: "0.0.0.0:0", Token: "tok"}},
		{"plaintext but no auth", ServerOptions{Listen: "0.0.0.0:0", Plaintext: true}},
		{"routes without TLS", ServerOptions{Listen: "127.0.0.1:0", Token: "tok", Cluster: &ClusterOptions{Name: "c", Listen: "0.0.0.0:0"}}},
	}
	for _, c := range cases {
		if srv, err := StartServer(c.o); !errors.Is(err, ErrInsecureListener) {
			if srv != nil {
				srv.Shutdown()
			}
			t.Errorf("%s: err %v, want ErrInsecureListener", c.name, err)
		}
	}
	srv, err := StartServer(ServerOptions{Listen: "0.0.0.0:0", Token: "tok", Plaintext: true})
	if err != nil {
		t.Fatalf("token with --insecure-plaintext: %v", err)
	}
	srv.Shutdown()
	if !IsLoopback("127.0.0.1:0") || !IsLoopback("[::1]:4222") || !IsLoopback("localhost:1") || IsLoopback("0.0.0.0:0") || IsLoopback(":4222") || IsLoopback("10.0.0.1:1") {
		t.Error("IsLoopback wrong")
	}
}

// permConn connects as user and collects the permission violations NATS
// reports for it.
type permConn struct {
	nc   *nats.Conn
	mu   sync.Mutex
	errs []string
}

func connectAs(t *testing.T, url, user, pass, inbox string) *permConn {
	t.Helper()
	pc := &permConn{}
	nc, err := Connect(url, ConnectOptions{Name: user, Auth: Auth{User: user, Password: pass}, InboxPrefix: inbox,
		OnAsyncError: func(_ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrPermissionViolation) {
				pc.mu.Lock()
				pc.errs = append(pc.errs, err.Error())
				pc.mu.Unlock()
			}
		}})
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	pc.nc = nc
	t.Cleanup(nc.Close)
	return pc
}

func (pc *permConn) violations(t *testing.T, want int) []string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_ = pc.nc.Flush()
		pc.mu.Lock()
		n := len(pc.errs)
		errs := append([]string(nil), pc.errs...)
		pc.mu.Unlock()
		if n >= want || time.Now().After(deadline) {
			return errs
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestJobPermissions: with the per-rank users `run` gives its embedded
// server, rank 1's credentials cannot publish as rank 2, as the
// coordinator, or the result, nor read another rank's frames or another
// job's subjects; what it may do still arrives.
func TestJobPermissions(t *testing.T) {
	space := subjects.Space("heat2d", subjects.NewID())
	other := subjects.Space("heat2d", subjects.NewID())
	var users []User
	cp := subjects.CoordinatorPermissions(space)
	users = append(users, User{Name: "coordinator", Password: "c", Publish: cp.Publish, Subscribe: cp.Subscribe})
	for r := range 3 {
		p := subjects.RankPermissions(space, r)
		users = append(users, User{Name: "rank-" + string(rune('0'+r)), Password: "p" + string(rune('0'+r)), Publish: p.Publish, Subscribe: p.Subscribe})
	}
	srv, err := StartServer(ServerOptions{Users: users})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	url := srv.ClientURL()
	coord := connectAs(t, url, "coordinator", "c", subjects.Inbox(space)+".c")
	got, err := coord.nc.SubscribeSync(subjects.ToCoordinatorAll(space))
	if err != nil {
		t.Fatal(err)
	}
	res, err := coord.nc.Subscribe(subjects.Result(space), func(m *nats.Msg) { _ = m.Respond([]byte("ok")) })
	if err != nil {
		t.Fatal(err)
	}
	defer res.Unsubscribe()
	r2, err := connectAs(t, url, "rank-2", "p2", subjects.RankInbox(space, 2)).nc.SubscribeSync("cp." + space + ".*.d.2.*")
	if err != nil {
		t.Fatal(err)
	}
	_ = coord.nc.Flush()

	r1 := connectAs(t, url, "rank-1", "p1", subjects.RankInbox(space, 1))
	// Allowed: its own report and a data frame from itself to rank 2.
	if err := r1.nc.Publish(subjects.ToCoordinator(space, 1), []byte("mine")); err != nil {
		t.Fatal(err)
	}
	if err := r1.nc.Publish("cp."+space+".1.d.2.1", []byte("frame")); err != nil {
		t.Fatal(err)
	}
	// Forbidden, each a permissions violation of the server.
	forged := []string{
		subjects.ToCoordinator(space, 2), // a report as rank 2
		subjects.ToAll(space),            // a coordinator broadcast
		subjects.ToRank(space, 2),        // a coordinator message
		subjects.Result(space),           // the result (rank 0's alone)
		"cp." + space + ".1.d.0.2",       // a data frame as rank 2
		"cp." + space + ".1.a.2.0",       // an ack as rank 0
		subjects.ToCoordinator(other, 1), // another job's space
	}
	for _, s := range forged {
		_ = r1.nc.Publish(s, []byte("forged"))
	}
	if _, err := r1.nc.SubscribeSync("cp." + space + ".*.d.2.*"); err != nil {
		t.Fatal(err)
	}
	if _, err := r1.nc.SubscribeSync("cp.>"); err != nil {
		t.Fatal(err)
	}
	v := r1.violations(t, len(forged)+2)
	if len(v) != len(forged)+2 {
		t.Fatalf("%d permission violations, want %d: %q", len(v), len(forged)+2, v)
	}
	for _, s := range forged {
		if !strings.Contains(strings.Join(v, "\n"), s) {
			t.Errorf("no violation names %s", s)
		}
	}
	m, err := got.NextMsg(5 * time.Second)
	if err != nil || string(m.Data) != "mine" || m.Subject != subjects.ToCoordinator(space, 1) {
		t.Fatalf("coordinator got %v %v, want rank 1's own report", m, err)
	}
	if m, err := got.NextMsg(200 * time.Millisecond); err == nil {
		t.Fatalf("a forged report arrived: %s %q", m.Subject, m.Data)
	}
	if m, err := r2.NextMsg(5 * time.Second); err != nil || string(m.Data) != "frame" {
		t.Fatalf("rank 2 got %v %v, want rank 1's frame", m, err)
	}
	if m, err := r2.NextMsg(200 * time.Millisecond); err == nil {
		t.Fatalf("rank 2 got a forged frame: %s", m.Subject)
	}
	// Rank 0 hands in the result and gets the reply on its own inbox.
	r0 := connectAs(t, url, "rank-0", "p0", subjects.RankInbox(space, 0))
	if reply, err := r0.nc.Request(subjects.Result(space), []byte("digest"), 5*time.Second); err != nil || string(reply.Data) != "ok" {
		t.Fatalf("rank 0's result: %v %v", reply, err)
	}
	if v := r0.violations(t, 0); len(v) != 0 {
		t.Fatalf("rank 0 doing its job hit %q", v)
	}
}

func TestAuthFile(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "auth.conf")
	data := `authorization {
  users = [
    {user: "job1", password: "s1", permissions: {publish: "cp.job1.>", subscribe: "cp.job1.>"}}
  ]
}
`
	if err := os.WriteFile(conf, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := StartServer(ServerOptions{AuthFile: conf}); !errors.Is(err, ErrSecretFile) {
		t.Fatalf("auth file of mode 0644: %v, want ErrSecretFile", err)
	}
	if err := os.Chmod(conf, 0o600); err != nil {
		t.Fatal(err)
	}
	srv, err := StartServer(ServerOptions{AuthFile: conf})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	if _, err := Connect(srv.ClientURL(), ConnectOptions{Name: "t"}); err == nil {
		t.Fatal("connected without credentials")
	}
	pc := connectAs(t, srv.ClientURL(), "job1", "s1", "")
	_ = pc.nc.Publish("cp.job2.x", nil)
	if v := pc.violations(t, 1); len(v) != 1 {
		t.Fatalf("job1 publishing on job2's subject: %q", v)
	}
}

func TestReadSecretFile(t *testing.T) {
	dir := t.TempDir()
	ok := filepath.Join(dir, "ok")
	if err := os.WriteFile(ok, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := ReadSecretFile(ok); err != nil || string(b) != "s3cret\n" {
		t.Fatalf("ReadSecretFile: %q %v", b, err)
	}
	open := filepath.Join(dir, "open")
	os.WriteFile(open, []byte("x"), 0o644)
	os.Chmod(open, 0o644)
	link := filepath.Join(dir, "link")
	os.Symlink(ok, link)
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{open, link, fifo, dir} {
		if _, err := ReadSecretFile(p); !errors.Is(err, ErrSecretFile) {
			t.Errorf("%s: err %v, want ErrSecretFile", filepath.Base(p), err)
		}
	}
}

func TestCreateSecretFile(t *testing.T) {
	dir, err := PrivateDir(t.TempDir(), "s-")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "key")
	if err := CreateSecretFile(p, []byte("k")); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", st.Mode().Perm())
	}
	if err := CreateSecretFile(p, []byte("again")); err == nil {
		t.Fatal("replaced an existing file")
	}
	planted := filepath.Join(dir, "planted")
	os.Symlink(filepath.Join(dir, "victim"), planted)
	if err := CreateSecretFile(planted, []byte("k")); err == nil {
		t.Fatal("followed a planted link")
	}
	if _, err := os.Lstat(filepath.Join(dir, "victim")); err == nil {
		t.Fatal("the link's target was created")
	}
	shared := t.TempDir()
	os.Chmod(shared, 0o755)
	if err := CreateSecretFile(filepath.Join(shared, "key"), []byte("k")); !errors.Is(err, ErrSecretFile) {
		t.Fatalf("in a directory others can read: %v, want ErrSecretFile", err)
	}
}

// TestAuthFileOfTheDocs: the per-job authorization file docs/operations.md
// shows for a site cluster parses, and its rank 0 may do what a rank 0
// does and not speak for rank 1.
func TestAuthFileOfTheDocs(t *testing.T) {
	doc, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	start := strings.Index(string(doc), "# auth.conf:")
	if start < 0 {
		t.Fatal("no auth.conf example in docs/operations.md")
	}
	block := string(doc)[start:]
	block = block[:strings.Index(block, "```")]
	block = strings.ReplaceAll(block, "…", "pw")
	conf := filepath.Join(t.TempDir(), "auth.conf")
	if err := os.WriteFile(conf, []byte(block), 0o600); err != nil {
		t.Fatal(err)
	}
	srv, err := StartServer(ServerOptions{AuthFile: conf})
	if err != nil {
		t.Fatalf("the docs' auth file: %v\n%s", err, block)
	}
	defer srv.Shutdown()
	space := subjects.Space("heat2d", subjects.NewID())
	coord := connectAs(t, srv.ClientURL(), "alice-coord", "pw", subjects.Inbox(space)+".c")
	res, err := coord.nc.Subscribe(subjects.Result(space), func(m *nats.Msg) { _ = m.Respond([]byte("ok")) })
	if err != nil {
		t.Fatal(err)
	}
	defer res.Unsubscribe()
	_ = coord.nc.Flush()
	r0 := connectAs(t, srv.ClientURL(), "alice-rank0", "pw", subjects.RankInbox(space, 0))
	if reply, err := r0.nc.Request(subjects.Result(space), []byte("digest"), 5*time.Second); err != nil || string(reply.Data) != "ok" {
		t.Fatalf("rank 0's result under the docs' permissions: %v %v", reply, err)
	}
	for _, s := range []string{subjects.ToCoordinator(space, 0), "cp." + space + ".1.d.1.0", "cp." + space + ".1.a.1.0"} {
		_ = r0.nc.Publish(s, nil)
	}
	if v := r0.violations(t, 0); len(v) != 0 {
		t.Fatalf("rank 0 doing its job: %q", v)
	}
	_ = r0.nc.Publish(subjects.ToCoordinator(space, 1), nil)
	_ = r0.nc.Publish(subjects.ToAll(space), nil)
	if v := r0.violations(t, 2); len(v) != 2 {
		t.Fatalf("rank 0 speaking for rank 1 and the coordinator: %q", v)
	}
}
