package natsutil

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"golang.org/x/crypto/bcrypt"
)

func TestWriteUsers(t *testing.T) {
	parent := t.TempDir()
	users := []User{
		{Name: CoordinatorUser, Password: "pc", Publish: []string{"cp.j.*.>"}, Subscribe: []string{"cp.j.*.>"}},
		{Name: RankUser(0), Password: "p0", Publish: []string{"cp.j.*.*.d.*.0"}, Subscribe: []string{"cp.j.*.ctl.c2r.0"}, Responses: true},
	}
	dir, err := WriteUsers(parent, users)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("%s: %v %v", dir, st, err)
	}
	var opts server.Options
	if err := authFile(&opts, filepath.Join(dir, UsersAuthFile)); err != nil {
		t.Fatal(err)
	}
	if len(opts.Users) != 2 {
		t.Fatalf("%d users in the auth file", len(opts.Users))
	}
	for i, u := range opts.Users {
		// The servers get the password's bcrypt hash, never the password.
		if u.Username != users[i].Name || u.Password == users[i].Password ||
			bcrypt.CompareHashAndPassword([]byte(u.Password), []byte(users[i].Password)) != nil {
			t.Errorf("user %d: %s, password %q in the auth file", i, u.Username, u.Password)
		}
		if !slices.Equal(u.Permissions.Publish.Allow, users[i].Publish) || !slices.Equal(u.Permissions.Subscribe.Allow, users[i].Subscribe) {
			t.Errorf("user %s: permissions %+v %+v", u.Username, u.Permissions.Publish, u.Permissions.Subscribe)
		}
		if (u.Permissions.Response != nil) != users[i].Responses {
			t.Errorf("user %s: responses %v", u.Username, u.Permissions.Response)
		}
	}
	if u, p, err := RankLogin(dir, 0); err != nil || u != "rank-0" || p != "p0" {
		t.Errorf("RankLogin 0: %q %q %v", u, p, err)
	}
	if _, _, err := RankLogin(dir, 1); !errors.Is(err, ErrNoUser) {
		t.Errorf("RankLogin 1: %v, want ErrNoUser", err)
	}
	if _, _, err := RankLogin(dir, -1); err == nil {
		t.Error("RankLogin of an unknown rank")
	}
	for _, name := range []string{"../coordinator", ".hidden", "", "a/b", "-x"} {
		if _, err := ReadUserPassword(dir, name); !errors.Is(err, ErrNoUser) {
			t.Errorf("ReadUserPassword(%q): %v, want ErrNoUser", name, err)
		}
	}
	// A password file others can read is refused, not used.
	if err := os.Chmod(filepath.Join(dir, "rank-0"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadUserPassword(dir, "rank-0"); !errors.Is(err, ErrSecretFile) {
		t.Errorf("a world-readable password file: %v", err)
	}

	shared, err := WriteUsers(parent, []User{{Name: CoordinatorUser, Password: "pc"}, {Name: RankUser(-1), Password: "pw"}})
	if err != nil {
		t.Fatal(err)
	}
	if u, p, err := RankLogin(shared, 7); err != nil || u != "ranks" || p != "pw" {
		t.Errorf("RankLogin of a shared world: %q %q %v", u, p, err)
	}

	for _, bad := range [][]User{
		nil,
		{{Name: "a", Password: "x"}, {Name: "a", Password: "y"}},
		{{Name: "../x", Password: "x"}},
		{{Name: "a.conf", Password: "x"}},
		{{Name: "a"}},
	} {
		if _, err := WriteUsers(parent, bad); err == nil {
			t.Errorf("WriteUsers(%+v) succeeded", bad)
		}
	}
}
