package mem

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cutpoint/cutpoint/ckpt/backend"
)

// Backend keeps files in a map. The zero value is not usable; call New.
type Backend struct {
	mu    sync.Mutex
	files map[string]*file // committed files and temporaries, by name
	seq   uint64
	now   func() time.Time
}

type file struct {
	data []byte // never modified once committed: replaced whole
	mod  time.Time
	temp bool
}

var _ backend.Backend = (*Backend)(nil)

// New returns an empty backend.
func New() *Backend {
	return &Backend{files: map[string]*file{}, now: time.Now}
}

// SetClock replaces the clock used for modification times (tests of
// age-based cleanup).
func (b *Backend) SetClock(now func() time.Time) {
	b.mu.Lock()
	b.now = now
	b.mu.Unlock()
}

func (b *Backend) Create(ctx context.Context, name string) (backend.Writer, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := backend.ValidName(name); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.parentIsDir(name); err != nil {
		return nil, fmt.Errorf("create %s: %w", name, err)
	}
	b.seq++
	tmp := backend.TempName(name, strconv.FormatUint(b.seq, 10))
	b.files[tmp] = &file{temp: true, mod: b.now()}
	return &writer{b: b, name: name, tmp: tmp}, nil
}

// parentIsDir fails when a component of name's directory is a file.
func (b *Backend) parentIsDir(name string) error {
	dir, _ := backend.Split(name)
	for dir != "" {
		if f, ok := b.files[dir]; ok && !f.temp {
			return fmt.Errorf("%s is a file, not a directory", dir)
		}
		dir, _ = backend.Split(dir)
	}
	return nil
}

type writer struct {
	b         *Backend
	name, tmp string
	buf       []byte
	done      bool
}

func (w *writer) Write(p []byte) (int, error) {
	if w.done {
		return 0, fmt.Errorf("write %s: %w", w.name, backend.ErrFinished)
	}
	w.buf = append(w.buf, p...)
	w.b.mu.Lock()
	if f, ok := w.b.files[w.tmp]; ok {
		f.mod = w.b.now()
		f.data = w.buf[:len(w.buf):len(w.buf)]
	}
	w.b.mu.Unlock()
	return len(p), nil
}

func (w *writer) Commit() error {
	if w.done {
		return fmt.Errorf("commit %s: %w", w.name, backend.ErrFinished)
	}
	w.done = true
	b := w.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.files[w.tmp]; !ok {
		return fmt.Errorf("commit %s: temporary file %s: %w", w.name, w.tmp, backend.ErrNotExist)
	}
	delete(b.files, w.tmp)
	if b.isDir(w.name) {
		return fmt.Errorf("commit %s: is a directory", w.name)
	}
	b.files[w.name] = &file{data: w.buf, mod: b.now()}
	return nil
}

func (w *writer) Abort() error {
	if w.done {
		return nil
	}
	w.done = true
	w.b.mu.Lock()
	delete(w.b.files, w.tmp)
	w.b.mu.Unlock()
	return nil
}

// isDir reports whether some file lives under name/.
func (b *Backend) isDir(name string) bool {
	prefix := name + "/"
	for n := range b.files {
		if strings.HasPrefix(n, prefix) {
			return true
		}
	}
	return false
}

func (b *Backend) CreateExclusive(ctx context.Context, name string, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := backend.ValidName(name); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.parentIsDir(name); err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	if _, ok := b.files[name]; ok || b.isDir(name) {
		return fmt.Errorf("create %s: %w", name, backend.ErrExist)
	}
	b.files[name] = &file{data: append([]byte(nil), data...), mod: b.now()}
	return nil
}

func (b *Backend) Replace(ctx context.Context, name string, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := backend.ValidName(name); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.parentIsDir(name); err != nil {
		return fmt.Errorf("replace %s: %w", name, err)
	}
	if b.isDir(name) {
		return fmt.Errorf("replace %s: is a directory", name)
	}
	b.files[name] = &file{data: append([]byte(nil), data...), mod: b.now()}
	return nil
}

func (b *Backend) get(name string) (*file, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f, ok := b.files[name]
	if !ok || f.temp {
		return nil, backend.ErrNotExist
	}
	return f, nil
}

func (b *Backend) Open(ctx context.Context, name string) (backend.Reader, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := backend.ValidName(name); err != nil {
		return nil, err
	}
	f, err := b.get(name)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	return &reader{data: f.data, name: name}, nil
}

type reader struct {
	data []byte
	name string
}

func (r *reader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read %s: negative offset %d", r.name, off)
	}
	if off >= int64(len(r.data)) {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	n := copy(p, r.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (r *reader) Size() int64  { return int64(len(r.data)) }
func (r *reader) Close() error { return nil }

func (b *Backend) ReadFile(ctx context.Context, name string, limit int64) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := backend.ValidName(name); err != nil {
		return nil, err
	}
	f, err := b.get(name)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if int64(len(f.data)) > limit {
		return nil, fmt.Errorf("read %s: %d bytes: %w (%d)", name, len(f.data), backend.ErrTooLarge, limit)
	}
	return append([]byte(nil), f.data...), nil
}

func (b *Backend) Stat(ctx context.Context, name string) (backend.FileInfo, error) {
	if err := ctx.Err(); err != nil {
		return backend.FileInfo{}, err
	}
	if err := backend.ValidName(name); err != nil {
		return backend.FileInfo{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if f, ok := b.files[name]; ok && !f.temp {
		return backend.FileInfo{Name: name, Size: int64(len(f.data)), ModTime: f.mod}, nil
	}
	if b.isDir(name) {
		return backend.FileInfo{Name: name, IsDir: true}, nil
	}
	return backend.FileInfo{}, fmt.Errorf("stat %s: %w", name, backend.ErrNotExist)
}

func (b *Backend) List(ctx context.Context, dir string, fn func(backend.FileInfo) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := backend.ValidDir(dir); err != nil {
		return err
	}
	prefix := ""
	if dir != "" {
		prefix = dir + "/"
	}
	b.mu.Lock()
	entries := map[string]backend.FileInfo{}
	for n, f := range b.files {
		if !strings.HasPrefix(n, prefix) {
			continue
		}
		rest := n[len(prefix):]
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			sub := prefix + rest[:i]
			entries[sub] = backend.FileInfo{Name: sub, IsDir: true}
			continue
		}
		entries[n] = backend.FileInfo{Name: n, Size: int64(len(f.data)), ModTime: f.mod, Temp: f.temp}
	}
	b.mu.Unlock()
	if len(entries) == 0 && dir != "" {
		return fmt.Errorf("list %q: %w", dir, backend.ErrNotExist)
	}
	names := make([]string, 0, len(entries))
	for n := range entries {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(entries[n]); err != nil {
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
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.files[name]; !ok {
		if b.isDir(name) {
			return fmt.Errorf("remove %s: is a directory", name)
		}
		return fmt.Errorf("remove %s: %w", name, backend.ErrNotExist)
	}
	delete(b.files, name)
	return nil
}

// Files returns the names of all committed files, sorted (for tests).
func (b *Backend) Files() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for n, f := range b.files {
		if !f.temp {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}
