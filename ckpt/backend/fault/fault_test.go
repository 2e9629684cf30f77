package fault

import (
	"context"
	"errors"
	"syscall"
	"testing"

	"github.com/cutpoint/cutpoint/ckpt/backend"
	"github.com/cutpoint/cutpoint/ckpt/backend/backendtest"
	"github.com/cutpoint/cutpoint/ckpt/backend/mem"
)

// With nothing armed the wrapper is transparent.
func TestConformance(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) backend.Backend { return New(mem.New()) })
}

func TestFailAfterBytes(t *testing.T) {
	ctx := context.Background()
	f := New(mem.New())
	f.FailAfterBytes(10)
	w, err := f.Create(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if n, err := w.Write(make([]byte, 6)); n != 6 || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	n, err := w.Write(make([]byte, 6))
	if n != 4 || !errors.Is(err, syscall.ENOSPC) || !errors.Is(err, ErrNoSpace) {
		t.Fatalf("Write over the budget = %d, %v; want 4, ENOSPC", n, err)
	}
	w.Abort()
	if err := f.Replace(ctx, "b", []byte("x")); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Replace on a full disk = %v", err)
	}
	if _, err := f.Stat(ctx, "b"); !errors.Is(err, backend.ErrNotExist) {
		t.Fatal("a failed Replace left a file")
	}
	f.FailAfterBytes(-1)
	if err := f.Replace(ctx, "b", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if f.Written() != 11 {
		t.Fatalf("Written = %d, want 11", f.Written())
	}
}

func TestFailOn(t *testing.T) {
	ctx := context.Background()
	f := New(mem.New())
	f.FailOn(func(op Op, name string) error {
		if op == OpCommit && name == "x/manifest" {
			return ErrInjected
		}
		return nil
	})
	w, _ := f.Create(ctx, "x/manifest")
	w.Write([]byte("m"))
	if err := w.Commit(); !errors.Is(err, ErrInjected) {
		t.Fatalf("Commit = %v", err)
	}
	if _, err := f.Stat(ctx, "x/manifest"); !errors.Is(err, backend.ErrNotExist) {
		t.Fatal("failed commit left the file")
	}
	// The failed commit's temporary file is gone too.
	f.List(ctx, "x", func(fi backend.FileInfo) error { t.Errorf("left %+v", fi); return nil })
	if f.Calls(OpCommit) != 1 {
		t.Fatalf("Calls(commit) = %d", f.Calls(OpCommit))
	}
	w, _ = f.Create(ctx, "x/other")
	w.Write([]byte("o"))
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
}
