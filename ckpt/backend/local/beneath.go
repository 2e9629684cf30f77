package local

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cutpoint/cutpoint/ckpt/backend"
)

// Nothing below the store's root is reached through a symbolic link, and
// only regular files are read. A store may live in a directory other users
// can write to (a shared scratch file system): a link planted as
// jobs/<name> would otherwise make a job write its cut wherever the link
// points, with the job's (maybe root's) rights, and a FIFO planted as a
// pack would hang every reader. So every path below the root is resolved
// from a descriptor of the root, one component at a time, each opened with
// O_NOFOLLOW (or in one openat2 call with RESOLVE_BENEATH and
// RESOLVE_NO_SYMLINKS where the kernel has it, Linux 5.6+), and files are
// then used through the descriptor of their directory: what was checked is
// what is written. os.Root is not enough: it follows links that stay
// inside the root.
//
// The root itself is the operator's choice and may be reached through
// links (a site's /scratch -> /lustre/scratch).

// Modes of what the store creates. The store is private to the user who
// runs the job: a checkpoint is the job's memory and may hold anything the
// job holds. These are requested modes; the umask can only remove bits.
const (
	DirMode  = 0o700
	FileMode = 0o600
)

// refuse returns the error for a name that is not what the store created.
func refuse(full string, st *unix.Stat_t) error {
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFLNK:
		return fmt.Errorf("%s is a symbolic link (the store follows no links): %w", full, backend.ErrNotRegular)
	case unix.S_IFDIR:
		return fmt.Errorf("%s is a directory: %w", full, backend.ErrNotRegular)
	default:
		return fmt.Errorf("%s is not a regular file (mode %v): %w", full, fs.FileMode(st.Mode&0o777)|modeType(uint32(st.Mode)), backend.ErrNotRegular)
	}
}

func modeType(m uint32) fs.FileMode {
	switch m & unix.S_IFMT {
	case unix.S_IFIFO:
		return fs.ModeNamedPipe
	case unix.S_IFCHR:
		return fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		return fs.ModeDevice
	case unix.S_IFSOCK:
		return fs.ModeSocket
	case unix.S_IFLNK:
		return fs.ModeSymlink
	case unix.S_IFDIR:
		return fs.ModeDir
	}
	return 0
}

// full is the path of name below the root, for messages.
func (b *Backend) full(name string) string {
	if name == "" {
		return b.root
	}
	return filepath.Join(b.root, filepath.FromSlash(name))
}

// openRoot opens the root directory.
func (b *Backend) openRoot() (int, error) {
	fd, err := unix.Open(b.root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &fs.PathError{Op: "open", Path: b.root, Err: err}
	}
	return fd, nil
}

// openDir opens the directory dir ("" is the root; a slash name already
// validated) without following any link. With create, missing directories
// are made (DirMode) and the new entries fsynced. The caller closes the
// returned file.
func (b *Backend) openDir(dir string, create bool) (*os.File, error) {
	root, err := b.openRoot()
	if err != nil {
		return nil, err
	}
	if dir == "" {
		return os.NewFile(uintptr(root), b.root), nil
	}
	if !create {
		fd, err := openat2Beneath(root, dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC)
		if err == nil {
			unix.Close(root)
			return os.NewFile(uintptr(fd), b.full(dir)), nil
		}
		if !errors.Is(err, errNoOpenat2) && !errors.Is(err, unix.ELOOP) && !errors.Is(err, unix.ENOTDIR) {
			unix.Close(root)
			return nil, &fs.PathError{Op: "open", Path: b.full(dir), Err: err}
		}
		// A link or a file on the way, or an old kernel: the walk below
		// names the component.
	}
	fd := root
	done := ""
	for _, c := range strings.Split(dir, "/") {
		done = path.Join(done, c)
		next, err := unix.Openat(fd, c, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.ENOENT) && create {
			err = unix.Mkdirat(fd, c, DirMode)
			if err == nil {
				err = unix.Fsync(fd)
				if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOTSUP) {
					err = nil
				}
			} else if errors.Is(err, unix.EEXIST) {
				err = nil // made by a concurrent writer
			}
			if err == nil {
				next, err = unix.Openat(fd, c, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			}
		}
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
			var st unix.Stat_t
			// A regular file on the way is plain ENOTDIR; a link or a
			// FIFO is a refusal.
			if serr := unix.Fstatat(fd, c, &st, unix.AT_SYMLINK_NOFOLLOW); serr == nil {
				if t := st.Mode & unix.S_IFMT; t != unix.S_IFDIR && t != unix.S_IFREG {
					unix.Close(fd)
					return nil, refuse(b.full(done), &st)
				}
			}
		}
		unix.Close(fd)
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: b.full(done), Err: err}
		}
		fd = next
	}
	return os.NewFile(uintptr(fd), b.full(dir)), nil
}

// split returns the directory and the last component of a slash name.
func split(name string) (dir, base string) {
	i := strings.LastIndexByte(name, '/')
	if i < 0 {
		return "", name
	}
	return name[:i], name[i+1:]
}

// lstatAt describes base in d without following a link.
func lstatAt(d *os.File, base string) (unix.Stat_t, error) {
	var st unix.Stat_t
	err := unix.Fstatat(int(d.Fd()), base, &st, unix.AT_SYMLINK_NOFOLLOW)
	return st, err
}

// openRegular opens base in d for reading: only a regular file is opened
// at all (a device is not even opened), and the opened file is checked
// again, since the entry may have been replaced in between. O_NONBLOCK
// makes a FIFO swapped in at that moment open at once instead of waiting
// for a writer.
func openRegular(d *os.File, base, full string) (*os.File, unix.Stat_t, error) {
	st, err := lstatAt(d, base)
	if err != nil {
		return nil, st, &fs.PathError{Op: "open", Path: full, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, st, refuse(full, &st)
	}
	fd, err := unix.Openat(int(d.Fd()), base, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ELOOP) {
			st.Mode = unix.S_IFLNK
			return nil, st, refuse(full, &st)
		}
		return nil, st, &fs.PathError{Op: "open", Path: full, Err: err}
	}
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, st, &fs.PathError{Op: "fstat", Path: full, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, st, refuse(full, &st)
	}
	// Regular files ignore O_NONBLOCK; clear it so that os.File treats
	// the descriptor as the blocking file it is.
	if fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0); err == nil {
		unix.FcntlInt(uintptr(fd), unix.F_SETFL, fl&^unix.O_NONBLOCK)
	}
	return os.NewFile(uintptr(fd), full), st, nil
}
