package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"
)

// What cutpoint trusts on a machine other users share (docs/operations.md,
// Security): the config file it reads, the files it writes secrets to, and
// what it puts on its command line.

// maxConfigBytes bounds the config file read.
const maxConfigBytes = 1 << 20

// readConfigFile returns the content of the config file at path, which
// must be a regular file owned by this process's user (or by root) and not
// writable by group or others: a cutpoint.yaml chooses the store and the
// NATS server, so one another user could have written would let them
// redirect the job's checkpoints, with the job's (perhaps root's) rights.
// The checks are on the opened file, so what was checked is what is read.
func readConfigFile(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, err
	}
	if err := trustedConfig(path, &st, os.Geteuid()); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(f, maxConfigBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxConfigBytes {
		return nil, fmt.Errorf("larger than %d bytes", maxConfigBytes)
	}
	return b, nil
}

// trustedConfig is the check of readConfigFile on the file's status.
func trustedConfig(path string, st *unix.Stat_t, euid int) error {
	mode := fs.FileMode(st.Mode & 0o777)
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("not a regular file (mode %o): refused", st.Mode)
	}
	if int(st.Uid) != euid && st.Uid != 0 {
		return fmt.Errorf("owned by %s, mode %v, not by this user (%s) or root: refused, another user could have written it (remove it, or pass --config a file of yours)",
			uidName(st.Uid), mode, uidName(uint32(euid)))
	}
	if mode&0o022 != 0 {
		return fmt.Errorf("mode %v (owner %s) is writable by group or others: refused (chmod go-w %s)", mode, uidName(st.Uid), path)
	}
	return nil
}

func uidName(uid uint32) string {
	s := strconv.FormatUint(uint64(uid), 10)
	if u, err := user.LookupId(s); err == nil {
		return fmt.Sprintf("uid %s (%s)", s, u.Username)
	}
	return "uid " + s
}

// secretFlags are the flags whose values are credentials. A value on the
// command line is visible to every user of the machine (ps,
// /proc/PID/cmdline); each has an environment variable (CUTPOINT_<NAME>,
// or the config file) that is not. `cutpoint nats --token` warns of its
// own (with its --token-file), so it is not repeated here.
var secretFlags = []string{"nats-token"}

// argvSecrets returns the secret flags set on the command line itself,
// and the URL flags whose value carries a password or token; call it
// before the environment and config file fill the other flags.
func argvSecrets(cmd *cobra.Command) []string {
	var found []string
	check := func(f *pflag.Flag) {
		if !f.Changed || f.Value.String() == "" {
			return
		}
		for _, s := range secretFlags {
			if f.Name == s {
				found = append(found, "--"+f.Name)
				return
			}
		}
		if f.Value.Type() == "string" && urlHasSecret(f.Value.String()) {
			found = append(found, "--"+f.Name+" (credentials in the URL)")
		}
	}
	cmd.Flags().VisitAll(check)
	return found
}

func urlHasSecret(s string) bool {
	for _, one := range strings.Split(s, ",") {
		u, err := url.Parse(strings.TrimSpace(one))
		if err == nil && u.Scheme != "" && u.User != nil {
			return true
		}
	}
	return false
}

// warnArgvSecrets logs, once, that secrets were given on the command line.
func warnArgvSecrets(log *slog.Logger, flags []string) {
	if len(flags) == 0 {
		return
	}
	log.Warn("a secret was given on the command line, where every user of this machine can read it (ps); use the environment (CUTPOINT_<FLAG>), the config file or a token file instead",
		"flags", strings.Join(flags, ", "))
}

// writeSecretFile writes data (a URL with a token, ...) to path with mode
// perm (owner bits only) so that only this user can read it, and refuses every way another user could
// have prepared the place: the directory must not be writable by others
// unless it is sticky (like /tmp) and owned by this user or root; the file
// must not exist yet (O_EXCL), which also refuses a link planted there;
// the data goes to a temporary name created the same way, then is renamed
// into place, so no reader sees a partial file.
func writeSecretFile(path string, data []byte, perm os.FileMode) error {
	if perm&0o077 != 0 {
		return fmt.Errorf("%s: mode %v gives others access to a secret", path, perm)
	}
	dir := filepath.Dir(path)
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return fmt.Errorf("directory of %s: %w", path, err)
	}
	if st.Mode&0o022 != 0 && st.Mode&unix.S_ISVTX == 0 {
		return fmt.Errorf("%s: directory %s (mode %v) is writable by other users and not sticky: refused (another user could replace the file)", path, dir, fs.FileMode(st.Mode&0o777))
	}
	if int(st.Uid) != os.Geteuid() && st.Uid != 0 {
		return fmt.Errorf("%s: directory %s is owned by %s: refused (its owner could replace the file)", path, dir, uidName(st.Uid))
	}
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("%s exists: refused (it may have been placed by another user; remove it first)", path)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	var rnd [8]byte
	rand.Read(rnd[:]) // O_EXCL makes a guessed name harmless anyway
	tmp := fmt.Sprintf("%s.tmp-%x", path, rnd)
	fd, err := unix.Open(tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, uint32(perm.Perm()))
	if err != nil {
		return fmt.Errorf("%s: %w", tmp, err)
	}
	f := os.NewFile(uintptr(fd), tmp)
	// The umask cannot widen perm, but an fchmod makes the mode exact.
	err = f.Chmod(perm.Perm())
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
		// Link, not rename: link fails if path appeared meanwhile, where
		// rename would silently replace what someone else put there.
		err = os.Link(tmp, path)
	}
	os.Remove(tmp)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
