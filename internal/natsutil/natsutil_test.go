package natsutil

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nkeys"
)

func TestTokenAuth(t *testing.T) {
	s, err := StartServer(ServerOptions{Token: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()

	nc, err := Connect(s.ClientURL(), ConnectOptions{Name: "ok", Auth: Auth{Token: "s3cret"}})
	if err != nil {
		t.Fatalf("connect with the right token: %v", err)
	}
	sub, err := nc.SubscribeSync("x")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish("x", []byte("hi")); err != nil {
		t.Fatal(err)
	}
	m, err := sub.NextMsg(2 * time.Second)
	if err != nil || string(m.Data) != "hi" {
		t.Fatalf("round trip: %v", err)
	}
	nc.Close()

	if _, err := Connect(s.ClientURL(), ConnectOptions{Name: "bad", Auth: Auth{Token: "wrong"}}); err == nil {
		t.Fatal("connect with a wrong token succeeded")
	}
}

func TestNkeyAuth(t *testing.T) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	seedFile := filepath.Join(t.TempDir(), "user.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := StartServer(ServerOptions{NkeyUsers: []string{pub}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	nc, err := Connect(s.ClientURL(), ConnectOptions{Auth: Auth{NkeySeedFile: seedFile}})
	if err != nil {
		t.Fatalf("nkey connect: %v", err)
	}
	nc.Close()
	if _, err := Connect(s.ClientURL(), ConnectOptions{}); err == nil {
		t.Fatal("connect without the nkey succeeded")
	}
	bad := filepath.Join(t.TempDir(), "bad.nk")
	os.WriteFile(bad, []byte("not a seed"), 0o600)
	if _, err := Connect(s.ClientURL(), ConnectOptions{Auth: Auth{NkeySeedFile: bad}}); err == nil || !strings.Contains(err.Error(), bad) {
		t.Fatalf("bad seed file: want an error naming it, got %v", err)
	}
}

func TestUnreachableAndBadURL(t *testing.T) {
	_, err := Connect("nats://127.0.0.1:1", ConnectOptions{Timeout: 500 * time.Millisecond})
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("want ErrUnreachable, got %v", err)
	}
	for _, u := range []string{"http://x:1", "nats://", "::bad"} {
		if err := CheckURL(u); err == nil {
			t.Errorf("CheckURL(%q) accepted", u)
		}
	}
	if err := CheckURL("nats://tok@127.0.0.1:4222,nats://h2:4222"); err != nil {
		t.Errorf("CheckURL rejected a good list: %v", err)
	}
	if got := Redact("nats://tok@127.0.0.1:4222"); strings.Contains(got, "tok") {
		t.Errorf("redact leaked the token: %s", got)
	}
}
