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

func (b *Backend) path(name string) string {
	if name == "" {
		return b.root
	}
	return filepath.Join(b.root, filepath.FromSlash(name))
}

func (b *Backend) Create(ctx context.Context, name string) (backend.Writer, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := backend.ValidName(name); err != nil {
		return nil, err
	}
	final := b.path(name)
	var f *os.File
	var tmp string
	// A concurrent Remove may prune the directory between MkdirAll and
	// the open: try again a few times.
	for attempt := 0; ; attempt++ {
		if err := mkdirAllSync(filepath.Dir(final)); err != nil {
			return nil, fmt.Errorf("create %s: %w", name, err)
		}
		suffix, err := randomSuffix()
		if err != nil {
			return nil, err
		}
		tmp = b.path(backend.TempName(name, suffix))
		f, err = os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err == nil {
			break
		}
		if errors.Is(err, fs.ErrNotExist) && attempt < 3 {
			continue
		}
		return nil, fmt.Errorf("create %s: %w", name, err)
	}
	w := &writer{name: name, final: final, tmp: tmp, f: f}
	if !b.buffered {
		w.direct = newDirectSink(f)
	}
	return w, nil
}

type writer struct {
	name       string
	final, tmp string
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

func (w *writer) Commit() error {
	if w.done {
		return fmt.Errorf("commit %s: %w", w.name, backend.ErrFinished)
	}
	w.done = true
	if w.direct != nil {
		if err := w.direct.finish(w.off); err != nil {
			w.f.Close()
			os.Remove(w.tmp)
			return fmt.Errorf("commit %s: write: %w", w.name, err)
		}
	}
	// O_DIRECT bypasses the page cache but not the device's write cache,
	// and the file's size and extents are metadata: fsync either way.
	if err := w.f.Sync(); err != nil {
		w.f.Close()
		os.Remove(w.tmp)
		return fmt.Errorf("commit %s: fsync: %w", w.name, err)
	}
	if err := w.f.Close(); err != nil {
		os.Remove(w.tmp)
		return fmt.Errorf("commit %s: close: %w", w.name, err)
	}
	if err := os.Rename(w.tmp, w.final); err != nil {
		os.Remove(w.tmp)
		return fmt.Errorf("commit %s: rename: %w", w.name, err)
	}
	if err := syncDir(filepath.Dir(w.final)); err != nil {
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
	if err := os.Remove(w.tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
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
	p := b.path(name)
	if err := mkdirAllSync(filepath.Dir(p)); err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	// The content is written and synced under a temporary name first and
	// the claim is a hard link to it, which fails if the name exists: a
	// reader never sees the name with partial content (a rank opening a
	// store its coordinator is creating read an empty cutpoint-store.json
	// when the claim came first).
	suffix, err := randomSuffix()
	if err != nil {
		return err
	}
	tmp := b.path(backend.TempName(name, suffix))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	defer os.Remove(tmp)
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
	if err := os.Link(tmp, p); err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	if err := syncDir(filepath.Dir(p)); err != nil {
		// The claim is made and its content durable in the file; only the
		// directory entry may not be: give the name back rather than
		// leave a claim that may vanish in a crash.
		os.Remove(p)
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
	f, err := os.Open(b.path(name))
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("open %s: not a regular file", name)
	}
	return &reader{f: f, size: fi.Size(), name: name}, nil
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
	fi, err := os.Stat(b.path(name))
	if err != nil {
		return backend.FileInfo{}, fmt.Errorf("stat %s: %w", name, err)
	}
	return backend.FileInfo{Name: name, Size: fi.Size(), ModTime: fi.ModTime(), IsDir: fi.IsDir()}, nil
}

func (b *Backend) List(ctx context.Context, dir string, fn func(backend.FileInfo) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := backend.ValidDir(dir); err != nil {
		return err
	}
	entries, err := os.ReadDir(b.path(dir))
	if err != nil {
		return fmt.Errorf("list %q: %w", dir, err)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		name := backend.Join(dir, e.Name())
		temp := backend.IsTemp(e.Name())
		if !temp && backend.ValidName(name) != nil {
			continue
		}
		t := e.Type()
		if !t.IsRegular() && !t.IsDir() {
			continue // symlinks and devices are not ours to follow
		}
		if temp && !t.IsRegular() {
			continue
		}
		fi, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed since ReadDir
		}
		if err != nil {
			return fmt.Errorf("list %q: %w", dir, err)
		}
		info := backend.FileInfo{Name: name, Size: fi.Size(), ModTime: fi.ModTime(), IsDir: t.IsDir(), Temp: temp}
		if info.IsDir {
			info.Size = 0
		}
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
	p := b.path(name)
	fi, err := os.Lstat(p)
	if err != nil {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	if fi.IsDir() {
		return fmt.Errorf("remove %s: is a directory", name)
	}
	if err := os.Remove(p); err != nil {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	dir := filepath.Dir(p)
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	b.prune(dir)
	return nil
}

// RemoveEmptyDir removes the directory name if it is empty (and then its
// parents that are left empty, as Remove does). A directory that is not
// empty is an error; a missing one matches backend.ErrNotExist. It
// implements backend.DirRemover.
func (b *Backend) RemoveEmptyDir(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := backend.ValidName(name); err != nil {
		return err
	}
	p := b.path(name)
	fi, err := os.Lstat(p)
	if err != nil {
		return fmt.Errorf("remove directory %s: %w", name, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("remove directory %s: not a directory", name)
	}
	if err := os.Remove(p); err != nil {
		return fmt.Errorf("remove directory %s: %w", name, err)
	}
	dir := filepath.Dir(p)
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("remove directory %s: %w", name, err)
	}
	b.prune(dir)
	return nil
}

// prune removes now-empty directories from dir up to (not including) the
// root. It is best effort: a directory that is not empty, or that another
// process just used, simply stays.
func (b *Backend) prune(dir string) {
	for dir != b.root && len(dir) > len(b.root) {
		if err := os.Remove(dir); err != nil {
			return
		}
		parent := filepath.Dir(dir)
		if syncDir(parent) != nil {
			return
		}
		dir = parent
	}
}

// mkdirAllSync creates dir and its missing parents, fsyncing the parent of
// every directory it creates so that the new entries survive a crash.
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
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return syncDir(parent)
}

// syncDir makes the entries of a directory durable. File systems that
// cannot fsync a directory (EINVAL, ENOTSUP) order metadata themselves.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	err = d.Sync()
	cerr := d.Close()
	if err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOTSUP) {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	if cerr != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, cerr)
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
