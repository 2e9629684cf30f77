//go:build linux

package local

import (
	"errors"

	"golang.org/x/sys/unix"
)

var errNoOpenat2 = errors.New("openat2 not available")

// walkOnly makes openat2Beneath report it is missing, so that tests hold
// the walk of old kernels to the same cases.
var walkOnly bool

// openat2Beneath opens name below dirfd in one call that refuses any
// symbolic link and any escape (RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS).
// Kernels before 5.6 (and seccomp filters that hide the call) answer
// ENOSYS or EPERM: errNoOpenat2, and the caller walks instead.
func openat2Beneath(dirfd int, name string, flags int) (int, error) {
	if walkOnly {
		return -1, errNoOpenat2
	}
	how := unix.OpenHow{Flags: uint64(flags), Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS}
	fd, err := unix.Openat2(dirfd, name, &how)
	if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.E2BIG) {
		return -1, errNoOpenat2
	}
	return fd, err
}
