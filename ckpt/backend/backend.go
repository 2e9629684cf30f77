package backend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"time"
)

// Backend stores named files. Names are slash-separated paths relative to
// the backend's root, each component of [A-Za-z0-9_][A-Za-z0-9._-]* (see
// ValidName); every method rejects any other name with ErrInvalidName
// before touching storage, so no name can reach outside the root.
// Directories exist implicitly: they are created by the first file written
// under them and may vanish when their last file is removed.
//
// All methods are safe for concurrent use. They check ctx before they start;
// a call already in the kernel is not interrupted.
type Backend interface {
	// Create starts a new file. Nothing is visible under name until the
	// writer's Commit returns nil; then the whole content is durable and
	// replaces any previous file of that name atomically. Until then the
	// data lives in a temporary file in the same directory, which List
	// reports with Temp set; a writer that dies leaves it behind, and
	// removing it (by its listed name) makes that writer's Commit fail.
	Create(ctx context.Context, name string) (Writer, error)

	// CreateExclusive creates name with content data and makes it durable.
	// It fails with an error matching ErrExist when name exists; of any
	// number of concurrent callers exactly one succeeds. The name is
	// claimed before the data is written, so after a crash the file may
	// exist with a prefix of data: use it for claims where existence is
	// what counts.
	CreateExclusive(ctx context.Context, name string, data []byte) error

	// Replace atomically replaces (or creates) name with content data,
	// durable when it returns nil. Readers see either the old or the new
	// content, never a mix, also across a crash.
	Replace(ctx context.Context, name string, data []byte) error

	// Open opens a committed file for reading at offsets. A missing file
	// is an error matching ErrNotExist. The Reader sees the file as it was
	// when opened even if it is replaced or removed later.
	Open(ctx context.Context, name string) (Reader, error)

	// ReadFile returns the whole content of a committed file. A file
	// larger than limit bytes is not read: the error matches ErrTooLarge.
	ReadFile(ctx context.Context, name string, limit int64) ([]byte, error)

	// Stat describes a committed file or a directory.
	Stat(ctx context.Context, name string) (FileInfo, error)

	// List calls fn, on the caller's goroutine and in name order, for each
	// entry directly inside dir ("" is the root): committed files,
	// subdirectories (IsDir) and temporary files (Temp). Entries whose
	// names are not valid (foreign files such as NFS's .nfsXXXX) are
	// skipped. A missing dir is an error matching ErrNotExist; an error
	// returned by fn stops the listing and is returned.
	List(ctx context.Context, dir string, fn func(FileInfo) error) error

	// Remove deletes a committed or temporary file (not a directory) and
	// makes the removal durable before it returns, so removals issued in
	// sequence reach the disk in that order. A missing file is an error
	// matching ErrNotExist. Directories left empty may be removed too.
	Remove(ctx context.Context, name string) error
}

// DirRemover is implemented by backends whose directories can outlive
// their files (a POSIX directory left by a writer that failed before its
// first file): RemoveEmptyDir removes an empty directory, and fails on one
// that is not empty. Backends with implicit directories need not have it.
type DirRemover interface {
	RemoveEmptyDir(ctx context.Context, dir string) error
}

// Writer streams a new file; see Backend.Create. It is used by one
// goroutine at a time.
type Writer interface {
	io.Writer
	// Commit makes the data durable (fsync), moves it into place under its
	// name (rename) and makes the new directory entry durable (fsync of
	// the directory). After Commit, whatever it returned, the writer is
	// finished.
	Commit() error
	// Abort discards the data and the temporary file. It is safe after
	// Commit (then it does nothing) and safe to call twice.
	Abort() error
}

// StagedCommitter is a Writer whose Commit can run a function between the
// rename and the fsync of the directory: the one instant a test cannot
// reach from outside Commit (a process killed there has a file in place
// whose directory entry is not yet durable). It exists for fault
// injection; CommitStaged(nil) is Commit.
type StagedCommitter interface {
	CommitStaged(afterRename func()) error
}

// Reader reads a committed file at offsets, as io.ReaderAt: a short read
// returns an error (io.EOF at the end of the file).
type Reader interface {
	io.ReaderAt
	Size() int64
	Close() error
}

// FileInfo describes one entry of a listing or a Stat.
type FileInfo struct {
	Name    string // full name relative to the root, slash-separated
	Size    int64
	ModTime time.Time
	IsDir   bool
	Temp    bool // an uncommitted temporary file of a Create
}

// Errors. ErrNotExist and ErrExist are the io/fs values, so os errors and
// these match each other with errors.Is.
var (
	ErrNotExist    = fs.ErrNotExist
	ErrExist       = fs.ErrExist
	ErrInvalidName = errors.New("invalid file name")
	ErrTooLarge    = errors.New("file larger than the limit")
	// ErrFinished is returned by Write or Commit after Commit or Abort.
	ErrFinished = errors.New("writer already committed or aborted")
	// ErrNotRegular is returned for a name, or a directory on its way,
	// that is a symbolic link, a FIFO, a device or a socket: something the
	// store did not create. No backend follows a link below its root or
	// reads anything but a regular file.
	ErrNotRegular = errors.New("not a regular file or directory of the store")
)

// Limits on names. They are far above what the store uses and keep every
// path well inside PATH_MAX.
const (
	MaxNameLen      = 512
	MaxComponentLen = 128
	MaxDepth        = 8
)

// ValidName checks a file name against the Backend contract. The error
// wraps ErrInvalidName and quotes the name.
func ValidName(name string) error {
	if err := validPath(name); err != nil {
		return fmt.Errorf("%w %q: %s", ErrInvalidName, truncate(name), err)
	}
	return nil
}

// ValidDir is ValidName for a List directory, which may also be "" (the
// root).
func ValidDir(dir string) error {
	if dir == "" {
		return nil
	}
	return ValidName(dir)
}

func validPath(name string) error {
	if name == "" {
		return errors.New("empty")
	}
	if len(name) > MaxNameLen {
		return fmt.Errorf("longer than %d bytes", MaxNameLen)
	}
	parts := strings.Split(name, "/")
	if len(parts) > MaxDepth {
		return fmt.Errorf("more than %d components", MaxDepth)
	}
	for _, p := range parts {
		if err := validComponent(p); err != nil {
			return err
		}
	}
	return nil
}

func validComponent(p string) error {
	if p == "" {
		return errors.New("empty component (leading, trailing or double slash)")
	}
	if len(p) > MaxComponentLen {
		return fmt.Errorf("component longer than %d bytes", MaxComponentLen)
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_':
		case (c == '.' || c == '-') && i > 0:
		default:
			return fmt.Errorf("component %q: character %q not allowed here", truncate(p), c)
		}
	}
	return nil
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// Temporary files of Create are named ".<base>.tmp-<suffix>" next to their
// final name: a leading dot can never start a valid name, so they never
// collide with one.
const tempMarker = ".tmp-"

// TempName returns the name of a temporary file for final name with the
// given unique suffix (letters and digits).
func TempName(name, suffix string) string {
	dir, base := Split(name)
	t := "." + base + tempMarker + suffix
	if dir == "" {
		return t
	}
	return dir + "/" + t
}

// IsTemp reports whether the last component of name is a temporary file
// name made by TempName.
func IsTemp(name string) bool {
	_, base := Split(name)
	if len(base) < 2 || base[0] != '.' {
		return false
	}
	i := strings.LastIndex(base, tempMarker)
	if i < 2 {
		return false
	}
	final, suffix := base[1:i], base[i+len(tempMarker):]
	if validComponent(final) != nil || suffix == "" {
		return false
	}
	for j := 0; j < len(suffix); j++ {
		c := suffix[j]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// ValidTempName checks a name that may be a temporary file (for Remove).
func ValidTempName(name string) error {
	dir, base := Split(name)
	if !IsTemp(base) {
		return ValidName(name)
	}
	if dir != "" {
		return ValidName(dir)
	}
	return nil
}

// Split splits name into its directory and last component.
func Split(name string) (dir, base string) {
	i := strings.LastIndexByte(name, '/')
	if i < 0 {
		return "", name
	}
	return name[:i], name[i+1:]
}

// Join joins a directory and a name ("" is the root).
func Join(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}
