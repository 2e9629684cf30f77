package natsutil

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// MaxSecretFile bounds a secret file read (a token, an nkey seed, a TLS
// key, an authorization file).
const MaxSecretFile = 1 << 20

// ErrSecretFile is wrapped by ReadSecretFile for a file it refuses (a
// link, not a regular file, another owner, readable by group or others).
var ErrSecretFile = errors.New("secret file refused")

// ReadSecretFile reads a file holding a secret, after checking, on the
// opened file (so what was checked is what is read), that it is a regular
// file, not a symbolic link, owned by this user (or root) and neither
// group nor world accessible: a secret another user can read is no longer
// one, and a file another user can replace could hand the job someone
// else's credentials.
func ReadSecretFile(path string) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ELOOP) {
			return nil, fmt.Errorf("%s: %w: a symbolic link (give the file itself)", path, ErrSecretFile)
		}
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	if err := checkSecretStat(path, &st, os.Geteuid()); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxSecretFile+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(b) > MaxSecretFile {
		return nil, fmt.Errorf("%s: %w: larger than %d bytes", path, ErrSecretFile, MaxSecretFile)
	}
	return b, nil
}

// checkSecretStat is ReadSecretFile's check on the file's status.
func checkSecretStat(path string, st *unix.Stat_t, euid int) error {
	mode := fs.FileMode(st.Mode & 0o777)
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("%s: %w: not a regular file", path, ErrSecretFile)
	}
	if int(st.Uid) != euid && st.Uid != 0 {
		return fmt.Errorf("%s: %w: owned by uid %d, not by this user (uid %d) or root", path, ErrSecretFile, st.Uid, euid)
	}
	if mode&0o077 != 0 {
		return fmt.Errorf("%s: %w: mode %v lets group or others read it (chmod 600 %s)", path, ErrSecretFile, mode, path)
	}
	return nil
}

// PrivateDir creates a new directory below parent ("" for the system's
// temporary directory) that only this user can enter (0700), for files
// holding secrets.
func PrivateDir(parent, pattern string) (string, error) {
	dir, err := os.MkdirTemp(parent, pattern)
	if err != nil {
		return "", err
	}
	// MkdirTemp makes 0700 already; the chmod makes it exact whatever the
	// umask or a default ACL did.
	if err := os.Chmod(dir, 0o700); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

// CreateSecretFile creates path, which must not exist (O_EXCL, and
// O_NOFOLLOW: a link planted there is refused, never followed), with mode
// 0600, writes data and syncs it. The directory must be owned by this
// user and not accessible to group or others (see PrivateDir).
func CreateSecretFile(path string, data []byte) error {
	dir := filepath.Dir(path)
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return &fs.PathError{Op: "stat", Path: dir, Err: err}
	}
	if int(st.Uid) != os.Geteuid() || st.Mode&0o077 != 0 {
		return fmt.Errorf("%s: %w: directory %s (uid %d, mode %v) is not private to this user (uid %s)",
			path, ErrSecretFile, dir, st.Uid, fs.FileMode(st.Mode&0o777), strconv.Itoa(os.Geteuid()))
	}
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return &fs.PathError{Op: "create", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	err = f.Chmod(0o600)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
