package fault

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"syscall"

	"github.com/cutpoint/cutpoint/ckpt/backend"
)

// Op names a backend operation for FailOn.
type Op string

// Operations that can be made to fail. OpWrite is a Write on a Create's
// writer, OpCommit its Commit.
const (
	OpCreate          Op = "create"
	OpWrite           Op = "write"
	OpCommit          Op = "commit"
	OpCreateExclusive Op = "create-exclusive"
	OpReplace         Op = "replace"
	OpOpen            Op = "open"
	OpReadAt          Op = "read-at"
	OpReadFile        Op = "read-file"
	OpStat            Op = "stat"
	OpList            Op = "list"
	OpRemove          Op = "remove"
)

// ErrInjected is what FailOn hooks usually return.
var ErrInjected = errors.New("injected failure")

// ErrNoSpace is returned once the byte budget of FailAfterBytes is spent; it
// matches syscall.ENOSPC, as a full disk does.
var ErrNoSpace = fmt.Errorf("injected: %w", syscall.ENOSPC)

// Backend wraps another backend. The zero budget means unlimited.
type Backend struct {
	backend.Backend

	mu      sync.Mutex
	budget  int64 // bytes that may still be written; < 0: unlimited
	written int64
	hook    func(op Op, name string) error
	calls   map[Op]int
}

var _ backend.Backend = (*Backend)(nil)

// New wraps b with no faults armed.
func New(b backend.Backend) *Backend {
	return &Backend{Backend: b, budget: -1, calls: map[Op]int{}}
}

// FailAfterBytes lets n more bytes be written (through Create writers,
// Replace and CreateExclusive, counted together) and fails every write
// after that with ErrNoSpace; a write that crosses the limit writes the
// bytes that fit, as a full disk does. n < 0 removes the limit.
func (f *Backend) FailAfterBytes(n int64) {
	f.mu.Lock()
	f.budget = n
	f.mu.Unlock()
}

// FailOn installs a hook called before every operation; a non-nil return
// fails the operation with that error. nil removes the hook.
func (f *Backend) FailOn(hook func(op Op, name string) error) {
	f.mu.Lock()
	f.hook = hook
	f.mu.Unlock()
}

// Written returns the bytes written through the wrapper so far.
func (f *Backend) Written() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.written
}

// Calls returns how often op was called.
func (f *Backend) Calls(op Op) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

func (f *Backend) before(op Op, name string) error {
	f.mu.Lock()
	f.calls[op]++
	hook := f.hook
	f.mu.Unlock()
	if hook != nil {
		if err := hook(op, name); err != nil {
			return fmt.Errorf("%s %s: %w", op, name, err)
		}
	}
	return nil
}

// take reserves up to n bytes of the budget and returns how many fit.
func (f *Backend) take(n int) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.budget < 0 {
		f.written += int64(n)
		return n, nil
	}
	if int64(n) <= f.budget {
		f.budget -= int64(n)
		f.written += int64(n)
		return n, nil
	}
	fit := int(f.budget)
	f.budget = 0
	f.written += int64(fit)
	return fit, ErrNoSpace
}

func (f *Backend) Create(ctx context.Context, name string) (backend.Writer, error) {
	if err := f.before(OpCreate, name); err != nil {
		return nil, err
	}
	w, err := f.Backend.Create(ctx, name)
	if err != nil {
		return nil, err
	}
	return &writer{Writer: w, f: f, name: name}, nil
}

type writer struct {
	backend.Writer
	f    *Backend
	name string
}

func (w *writer) Write(p []byte) (int, error) {
	if err := w.f.before(OpWrite, w.name); err != nil {
		return 0, err
	}
	fit, budgetErr := w.f.take(len(p))
	n, err := w.Writer.Write(p[:fit])
	if err != nil {
		return n, err
	}
	if budgetErr != nil {
		return n, fmt.Errorf("write %s: %w", w.name, budgetErr)
	}
	return n, nil
}

func (w *writer) Commit() error {
	if err := w.f.before(OpCommit, w.name); err != nil {
		w.Writer.Abort()
		return err
	}
	return w.Writer.Commit()
}

func (f *Backend) CreateExclusive(ctx context.Context, name string, data []byte) error {
	if err := f.before(OpCreateExclusive, name); err != nil {
		return err
	}
	if _, err := f.take(len(data)); err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	return f.Backend.CreateExclusive(ctx, name, data)
}

func (f *Backend) Replace(ctx context.Context, name string, data []byte) error {
	if err := f.before(OpReplace, name); err != nil {
		return err
	}
	if _, err := f.take(len(data)); err != nil {
		return fmt.Errorf("replace %s: %w", name, err)
	}
	return f.Backend.Replace(ctx, name, data)
}

func (f *Backend) Open(ctx context.Context, name string) (backend.Reader, error) {
	if err := f.before(OpOpen, name); err != nil {
		return nil, err
	}
	r, err := f.Backend.Open(ctx, name)
	if err != nil {
		return nil, err
	}
	return &reader{Reader: r, f: f, name: name}, nil
}

type reader struct {
	backend.Reader
	f    *Backend
	name string
}

func (r *reader) ReadAt(p []byte, off int64) (int, error) {
	if err := r.f.before(OpReadAt, r.name); err != nil {
		return 0, err
	}
	return r.Reader.ReadAt(p, off)
}

func (f *Backend) ReadFile(ctx context.Context, name string, limit int64) ([]byte, error) {
	if err := f.before(OpReadFile, name); err != nil {
		return nil, err
	}
	return f.Backend.ReadFile(ctx, name, limit)
}

func (f *Backend) Stat(ctx context.Context, name string) (backend.FileInfo, error) {
	if err := f.before(OpStat, name); err != nil {
		return backend.FileInfo{}, err
	}
	return f.Backend.Stat(ctx, name)
}

func (f *Backend) List(ctx context.Context, dir string, fn func(backend.FileInfo) error) error {
	if err := f.before(OpList, dir); err != nil {
		return err
	}
	return f.Backend.List(ctx, dir, fn)
}

func (f *Backend) Remove(ctx context.Context, name string) error {
	if err := f.before(OpRemove, name); err != nil {
		return err
	}
	return f.Backend.Remove(ctx, name)
}
