package local

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cutpoint/cutpoint/ckpt/backend"
)

// Backend is a directory on a POSIX file system.
type Backend struct {
	root     string
	buffered bool
}

// Options tune a Backend.
type Options struct {
	// Buffered writes every file through the page cache. By default a
	// file larger than 4 MiB (a pack) is written with O_DIRECT where the
	// file system takes it; smaller ones go through the page cache.
	Buffered bool
}

var _ backend.Backend = (*Backend)(nil)
var _ backend.DirRemover = (*Backend)(nil)

// New returns the backend rooted at dir, which must exist and be a
// directory; creating it is the caller's explicit decision (MkdirAll).
func New(dir string) (*Backend, error) { return NewWithOptions(dir, Options{}) }

// NewWithOptions is New with o.
func NewWithOptions(dir string, o Options) (*Backend, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("store directory %s: %w", dir, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("store directory %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("store directory %s: not a directory", dir)
	}
	return &Backend{root: abs, buffered: o.Buffered}, nil
}

// MkdirAll creates dir and its missing parents and makes the new entries
// durable; it is how a store's root is created.
func MkdirAll(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	return mkdirAllSync(abs)
}

// Root returns the absolute path of the backend's directory.
func (b *Backend) Root() string { return b.root }

func (b *Backend) String() string { return b.root }

func (b *Backend) Create(ctx context.Context, name string) (backend.Writer, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := backend.ValidName(name); err != nil {
		return nil, err
	}
	dirName, base := split(name)
	var d, f *os.File
	var tmp string
	// A concurrent Remove may prune the directory between its creation
	// and the open: try again a few times.
	for attempt := 0; ; attempt++ {
		var err error
		d, err = b.openDir(dirName, true)
		if err != nil {
			return nil, fmt.Errorf("create %s: %w", name, err)
		}
		suffix, err := randomSuffix()
		if err != nil {
			d.Close()
			return nil, err
		}
		_, tmp = split(backend.TempName(name, suffix))
		fd, err := unix.Openat(int(d.Fd()), tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, FileMode)
		if err == nil {
			f = os.NewFile(uintptr(fd), b.full(backend.Join(dirName, tmp)))
			break
		}
		d.Close()
		if errors.Is(err, unix.ENOENT) && attempt < 3 {
			continue
		}
		return nil, fmt.Errorf("create %s: %w", name, &fs.PathError{Op: "open", Path: b.full(backend.Join(dirName, tmp)), Err: err})
	}
	w := &writer{name: name, dir: d, final: base, tmp: tmp, f: f}
	if !b.buffered {
		w.direct = newDirectSink(f)
	}
	return w, nil
}

type writer struct {
	name       string
	dir        *os.File // the directory of final and tmp, held open
	final, tmp string   // names in dir
	f          *os.File
	done       bool
	off        int64       // bytes written
	flushed    int64       // bytes handed to startWriteback
	direct     *directSink // nil: through the page cache
}

// writebackEvery is how much a writer lets accumulate before it asks the
// kernel to start writing it out.
const writebackEvery = 8 << 20

func (w *writer) Write(p []byte) (int, error) {
	if w.done {
		return 0, fmt.Errorf("write %s: %w", w.name, backend.ErrFinished)
	}
	if w.direct != nil {
		n, err := w.direct.write(p)
		w.off += int64(n)
		if err != nil {
			return n, fmt.Errorf("write %s: %w", w.name, err)
		}
		return n, nil
	}
	n, err := w.f.Write(p)
	w.off += int64(n)
	if err != nil {
		return n, fmt.Errorf("write %s: %w", w.name, err)
	}
	if w.off-w.flushed >= writebackEvery {
		startWriteback(w.f, w.flushed, w.off-w.flushed)
		w.flushed = w.off
	}
	return n, nil
}

// removeTmp deletes the temporary file and releases the directory.
func (w *writer) removeTmp() {
	unix.Unlinkat(int(w.dir.Fd()), w.tmp, 0)
	w.dir.Close()
}

func (w *writer) Commit() error { return w.CommitStaged(nil) }

var _ backend.StagedCommitter = (*writer)(nil)

// CommitStaged is Commit, with afterRename (when not nil) run after the
// rename and before the fsync of the directory.
func (w *writer) CommitStaged(afterRename func()) error {
	if w.done {
		return fmt.Errorf("commit %s: %w", w.name, backend.ErrFinished)
	}
	w.done = true
	if w.direct != nil {
		if err := w.direct.finish(w.off); err != nil {
			w.f.Close()
			w.removeTmp()
			return fmt.Errorf("commit %s: write: %w", w.name, err)
		}
	}
	// O_DIRECT bypasses the page cache but not the device's write cache,
	// and the file's size and extents are metadata: fsync either way.
	if err := w.f.Sync(); err != nil {
		w.f.Close()
		w.removeTmp()
		return fmt.Errorf("commit %s: fsync: %w", w.name, err)
	}
	if err := w.f.Close(); err != nil {
		w.removeTmp()
		return fmt.Errorf("commit %s: close: %w", w.name, err)
	}
	// The rename replaces the entry under the final name, whatever it is
	// (a link is replaced, not followed).
	dfd := int(w.dir.Fd())
	if err := unix.Renameat(dfd, w.tmp, dfd, w.final); err != nil {
		w.removeTmp()
		return fmt.Errorf("commit %s: rename: %w", w.name, err)
	}
	if afterRename != nil {
		afterRename()
	}
	err := syncDirFile(w.dir)
	w.dir.Close()
	if err != nil {
		return fmt.Errorf("commit %s: %w", w.name, err)
	}
	return nil
}

func (w *writer) Abort() error {
	if w.done {
		return nil
	}
	w.done = true
	if w.direct != nil {
		w.direct.abort()
	}
	w.f.Close()
	err := unix.Unlinkat(int(w.dir.Fd()), w.tmp, 0)
	w.dir.Close()
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("abort %s: %w", w.name, err)
	}
	return nil
}

func (b *Backend) CreateExclusive(ctx context.Context, name string, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := backend.ValidName(name); err != nil {
		return err
	}
	dirName, base := split(name)
	d, err := b.openDir(dirName, true)
	if err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	defer d.Close()
	dfd := int(d.Fd())
	// The content is written and synced under a temporary name first and
	// the claim is a hard link to it, which fails if the name exists (a
	// link planted there included): a reader never sees the name with
	// partial content (a rank opening a store its coordinator is creating
	// read an empty cutpoint-store.json when the claim came first).
	suffix, err := randomSuffix()
	if err != nil {
		return err
	}
	_, tmp := split(backend.TempName(name, suffix))
	fd, err := unix.Openat(dfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, FileMode)
	if err != nil {
		return fmt.Errorf("create %s: %w", name, &fs.PathError{Op: "open", Path: b.full(backend.Join(dirName, tmp)), Err: err})
	}
	defer unix.Unlinkat(dfd, tmp, 0)
	f := os.NewFile(uintptr(fd), b.full(backend.Join(dirName, tmp)))
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	// linkat without AT_SYMLINK_FOLLOW: the new name is the file itself.
	if err := unix.Linkat(dfd, tmp, dfd, base, 0); err != nil {
		return fmt.Errorf("create %s: %w", name, &fs.PathError{Op: "link", Path: b.full(name), Err: err})
	}
	if err := syncDirFile(d); err != nil {
		// The claim is made and its content durable in the file; only the
		// directory entry may not be: give the name back rather than
		// leave a claim that may vanish in a crash.
		unix.Unlinkat(dfd, base, 0)
		return fmt.Errorf("create %s: %w", name, err)
	}
	return nil
}

func (b *Backend) Replace(ctx context.Context, name string, data []byte) error {
	w, err := b.Create(ctx, name)
	if err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		w.Abort()
		return err
	}
	return w.Commit()
}

func (b *Backend) Open(ctx context.Context, name string) (backend.Reader, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := backend.ValidName(name); err != nil {
		return nil, err
	}
	dirName, base := split(name)
	d, err := b.openDir(dirName, false)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	defer d.Close()
	f, st, err := openRegular(d, base, b.full(name))
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	return &reader{f: f, size: st.Size, name: name}, nil
}

type reader struct {
	f    *os.File
	size int64
	name string
}

func (r *reader) ReadAt(p []byte, off int64) (int, error) {
	n, err := r.f.ReadAt(p, off)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("read %s at %d: %w", r.name, off, err)
	}
	return n, err
}

func (r *reader) Size() int64  { return r.size }
func (r *reader) Close() error { return r.f.Close() }

func (b *Backend) ReadFile(ctx context.Context, name string, limit int64) ([]byte, error) {
	r, err := b.Open(ctx, name)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if r.Size() > limit {
		return nil, fmt.Errorf("read %s: %d bytes: %w (%d)", name, r.Size(), backend.ErrTooLarge, limit)
	}
	buf := make([]byte, r.Size())
	n, err := r.ReadAt(buf, 0)
	if err != nil && !(err == io.EOF && n == len(buf)) {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return buf, nil
}

func (b *Backend) Stat(ctx context.Context, name string) (backend.FileInfo, error) {
	if err := ctx.Err(); err != nil {
		return backend.FileInfo{}, err
	}
	if err := backend.ValidName(name); err != nil {
		return backend.FileInfo{}, err
	}
	dirName, base := split(name)
	d, err := b.openDir(dirName, false)
	if err != nil {
		return backend.FileInfo{}, fmt.Errorf("stat %s: %w", name, err)
	}
	defer d.Close()
	st, err := lstatAt(d, base)
	if err != nil {
		return backend.FileInfo{}, fmt.Errorf("stat %s: %w", name, &fs.PathError{Op: "lstat", Path: b.full(name), Err: err})
	}
	return b.info(name, &st, false)
}

// info describes an entry; anything but a regular file or a directory is
// refused.
func (b *Backend) info(name string, st *unix.Stat_t, temp bool) (backend.FileInfo, error) {
	fi := backend.FileInfo{Name: name, Size: st.Size, ModTime: time.Unix(st.Mtim.Unix()), Temp: temp}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
	case unix.S_IFDIR:
		fi.IsDir, fi.Size = true, 0
	default:
		return backend.FileInfo{}, fmt.Errorf("stat %s: %w", name, refuse(b.full(name), st))
	}
	return fi, nil
}

func (b *Backend) List(ctx context.Context, dir string, fn func(backend.FileInfo) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := backend.ValidDir(dir); err != nil {
		return err
	}
	d, err := b.openDir(dir, false)
	if err != nil {
		return fmt.Errorf("list %q: %w", dir, err)
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("list %q: %w", dir, err)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		name := backend.Join(dir, n)
		temp := backend.IsTemp(n)
		if !temp && backend.ValidName(name) != nil {
			continue
		}
		st, err := lstatAt(d, n)
		if errors.Is(err, unix.ENOENT) {
			continue // removed since Readdirnames
		}
		if err != nil {
			return fmt.Errorf("list %q: %w", dir, &fs.PathError{Op: "lstat", Path: b.full(name), Err: err})
		}
		t := st.Mode & unix.S_IFMT
		if t != unix.S_IFREG && (temp || t != unix.S_IFDIR) {
			continue // symlinks and devices are not ours to follow
		}
		info, _ := b.info(name, &st, temp)
		if err := fn(info); err != nil {
			return err
		}
	}
	return nil
}

func (b *Backend) Remove(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := backend.ValidTempName(name); err != nil {
		return err
	}
	dirName, base := split(name)
	d, err := b.openDir(dirName, false)
	if err != nil {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	defer d.Close()
	st, err := lstatAt(d, base)
	if err != nil {
		return fmt.Errorf("remove %s: %w", name, &fs.PathError{Op: "lstat", Path: b.full(name), Err: err})
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return fmt.Errorf("remove %s: is a directory", name)
	}
	// unlinkat removes a link itself, never its target.
	if err := unix.Unlinkat(int(d.Fd()), base, 0); err != nil {
		return fmt.Errorf("remove %s: %w", name, &fs.PathError{Op: "unlink", Path: b.full(name), Err: err})
	}
	if err := syncDirFile(d); err != nil {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	b.prune(dirName)
	return nil
}

// RemoveEmptyDir removes the directory name if it is empty (and then its
// parents that are left empty, as Remove does). A directory that is not
// empty is an error; a missing one matches backend.ErrNotExist; a link is
// refused, never followed. It implements backend.DirRemover.
func (b *Backend) RemoveEmptyDir(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := backend.ValidName(name); err != nil {
		return err
	}
	dirName, base := split(name)
	d, err := b.openDir(dirName, false)
	if err != nil {
		return fmt.Errorf("remove directory %s: %w", name, err)
	}
	defer d.Close()
	st, err := lstatAt(d, base)
	if err != nil {
		return fmt.Errorf("remove directory %s: %w", name, &fs.PathError{Op: "lstat", Path: b.full(name), Err: err})
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
	case unix.S_IFREG:
		return fmt.Errorf("remove directory %s: not a directory", name)
	default:
		return fmt.Errorf("remove directory %s: %w", name, refuse(b.full(name), &st))
	}
	if err := unix.Unlinkat(int(d.Fd()), base, unix.AT_REMOVEDIR); err != nil {
		return fmt.Errorf("remove directory %s: %w", name, &fs.PathError{Op: "rmdir", Path: b.full(name), Err: err})
	}
	if err := syncDirFile(d); err != nil {
		return fmt.Errorf("remove directory %s: %w", name, err)
	}
	b.prune(dirName)
	return nil
}

// prune removes now-empty directories from dir up to (not including) the
// root. It is best effort: a directory that is not empty, or that another
// process just used, simply stays.
func (b *Backend) prune(dir string) {
	for dir != "" {
		parent, base := split(dir)
		p, err := b.openDir(parent, false)
		if err != nil {
			return
		}
		err = unix.Unlinkat(int(p.Fd()), base, unix.AT_REMOVEDIR)
		if err == nil {
			err = syncDirFile(p)
		}
		p.Close()
		if err != nil {
			return
		}
		dir = parent
	}
}

// mkdirAllSync creates dir and its missing parents, fsyncing the parent of
// every directory it creates so that the new entries survive a crash. It
// makes a store's root, a path the operator chose, so it follows links.
func mkdirAllSync(dir string) error {
	fi, err := os.Stat(dir)
	if err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s: not a directory", dir)
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := mkdirAllSync(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, DirMode); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return syncDir(parent)
}

// syncDir makes the entries of a directory durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	err = syncDirFile(d)
	if cerr := d.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("fsync directory %s: %w", dir, cerr)
	}
	return err
}

// syncDirFile fsyncs an open directory. File systems that cannot fsync a
// directory (EINVAL, ENOTSUP) order metadata themselves.
func syncDirFile(d *os.File) error {
	err := d.Sync()
	if err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOTSUP) {
		return fmt.Errorf("fsync directory %s: %w", d.Name(), err)
	}
	return nil
}

func randomSuffix() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}
