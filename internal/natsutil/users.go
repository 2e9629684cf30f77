package natsutil

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// A job's users on a server it does not start itself (`cutpoint nats`, a
// batch script's per-node servers): WriteUsers puts them in a directory of
// their own, one password file per user and one authorization file for
// the servers (`cutpoint nats --auth-file`), so that each process is given
// only the name of the directory and reads its own password from it.
const (
	// UsersAuthFile is the servers' authorization file in a users
	// directory.
	UsersAuthFile = "auth.conf"
	// MaxUsers bounds the users of one directory (and what ReadUserPassword
	// trusts of a name): a job's coordinator and one user per rank.
	MaxUsers = 1 << 16
)

// CoordinatorUser is the coordinator's user of a job's users (the
// embedded server's and a users directory's).
const CoordinatorUser = "coordinator"

// RankUser is rank r's user of a job's users; r < 0 names the one user
// the ranks of a world that shares one environment (an MPI world) share.
func RankUser(r int) string {
	if r < 0 {
		return "ranks"
	}
	return "rank-" + strconv.Itoa(r)
}

// userName is what a user of a users directory may be called: a file name
// with no separator or dot at the start, so that no name reaches outside
// the directory or hides in it.
var userName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$`)

// ErrNoUser is wrapped by ReadUserPassword for a user the directory does
// not hold.
var ErrNoUser = errors.New("no such user in the users directory")

// authConfig is the nats-server configuration WriteUsers writes (JSON is
// a subset of nats-server's configuration syntax).
type authConfig struct {
	Authorization struct {
		Users []authUser `json:"users"`
	} `json:"authorization"`
}

type authUser struct {
	User        string          `json:"user"`
	Password    string          `json:"password"`
	Permissions authPermissions `json:"permissions"`
}

type authPermissions struct {
	Publish   authAllow       `json:"publish"`
	Subscribe authAllow       `json:"subscribe"`
	Responses *authRespPolicy `json:"allow_responses,omitempty"`
}

type authAllow struct {
	Allow []string `json:"allow"`
}

type authRespPolicy struct {
	Max     int    `json:"max"`
	Expires string `json:"expires"`
}

// WriteUsers writes users (each with its password set) into a new private
// directory below parent (PrivateDir: 0700; every file created with
// CreateSecretFile: O_EXCL|O_NOFOLLOW, 0600): UsersAuthFile, the servers'
// authorization with every user's permissions and the bcrypt hash of its
// password (passwordHash), and one file per user,
// named after it, holding its password. It returns the directory.
func WriteUsers(parent string, users []User) (string, error) {
	if len(users) == 0 || len(users) > MaxUsers {
		return "", fmt.Errorf("nats users: %d users: want 1 to %d", len(users), MaxUsers)
	}
	var cfg authConfig
	seen := map[string]bool{}
	for _, u := range users {
		if !userName.MatchString(u.Name) {
			return "", fmt.Errorf("nats users: user name %q: want letters, digits, '_' and '-' (up to 64, not starting with '-')", u.Name)
		}
		if seen[u.Name] {
			return "", fmt.Errorf("nats users: user %q twice", u.Name)
		}
		seen[u.Name] = true
		if u.Password == "" {
			return "", fmt.Errorf("nats users: user %q has no password", u.Name)
		}
		hash, err := passwordHash(u.Name, u.Password)
		if err != nil {
			return "", fmt.Errorf("nats users: %w", err)
		}
		au := authUser{User: u.Name, Password: hash, Permissions: authPermissions{
			Publish: authAllow{nonNil(u.Publish)}, Subscribe: authAllow{nonNil(u.Subscribe)}}}
		if u.Responses {
			au.Permissions.Responses = &authRespPolicy{Max: 1, Expires: "2m"}
		}
		cfg.Authorization.Users = append(cfg.Authorization.Users, au)
	}
	// Not json.Marshal: it writes '>' (every subject wildcard ends in
	// one) as \u003e, an escape nats-server's parser refuses.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(cfg); err != nil {
		return "", err
	}
	conf := buf.Bytes()
	dir, err := PrivateDir(parent, "cutpoint-nats-users-")
	if err != nil {
		return "", fmt.Errorf("nats users: %w", err)
	}
	fail := func(err error) (string, error) {
		os.RemoveAll(dir)
		return "", fmt.Errorf("nats users: %w", err)
	}
	for _, u := range users {
		if err := CreateSecretFile(filepath.Join(dir, u.Name), []byte(u.Password+"\n")); err != nil {
			return fail(err)
		}
	}
	if err := CreateSecretFile(filepath.Join(dir, UsersAuthFile), conf); err != nil {
		return fail(err)
	}
	return dir, nil
}

// ReadUserPassword reads the password of user name from a users
// directory (WriteUsers), checked like every secret file (ReadSecretFile:
// a regular file of this user that no one else can read, no link). A user
// the directory lacks is ErrNoUser.
func ReadUserPassword(dir, name string) (string, error) {
	if !userName.MatchString(name) {
		return "", fmt.Errorf("nats users %s: user name %q: %w", dir, name, ErrNoUser)
	}
	b, err := ReadSecretFile(filepath.Join(dir, name))
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("nats users %s: %q: %w", dir, name, ErrNoUser)
	}
	if err != nil {
		return "", fmt.Errorf("nats users: %w", err)
	}
	p := string(bytes.TrimSpace(b))
	if p == "" || strings.ContainsAny(p, "\n\r") {
		return "", fmt.Errorf("nats users %s: the password file of %q is empty or more than one line", dir, name)
	}
	return p, nil
}

// RankLogin is rank r's user and password in a users directory: its own
// user, else the one the ranks share (WriteUsers of a shared world).
func RankLogin(dir string, r int) (user, password string, err error) {
	if r < 0 {
		return "", "", fmt.Errorf("nats users %s: the rank is not known, so neither is its user", dir)
	}
	user = RankUser(r)
	password, err = ReadUserPassword(dir, user)
	if errors.Is(err, ErrNoUser) {
		user = RankUser(-1)
		password, err = ReadUserPassword(dir, user)
		if errors.Is(err, ErrNoUser) {
			err = fmt.Errorf("nats users %s: neither %q nor %q: %w", dir, RankUser(r), user, ErrNoUser)
		}
	}
	return user, password, err
}
