package local

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/cutpoint/cutpoint/ckpt/backend"
	"github.com/cutpoint/cutpoint/ckpt/backend/backendtest"
)

func TestConformance(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		b, err := New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return b
	})
}

func TestHostile(t *testing.T) { runHostile(t) }

// TestHostileWalk: the same without openat2, as on kernels before 5.6.
func TestHostileWalk(t *testing.T) {
	walkOnly = true
	defer func() { walkOnly = false }()
	runHostile(t)
}

func runHostile(t *testing.T) {
	backendtest.RunHostile(t, func(t *testing.T) (backend.Backend, backendtest.Hostile) {
		root := t.TempDir()
		b, err := New(root)
		if err != nil {
			t.Fatal(err)
		}
		at := func(t *testing.T, name string) string {
			p := filepath.Join(root, filepath.FromSlash(name))
			if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
				t.Fatal(err)
			}
			return p
		}
		return b, backendtest.Hostile{
			Outside: t.TempDir(),
			Symlink: func(t *testing.T, name, target string) {
				if err := os.Symlink(target, at(t, name)); err != nil {
					t.Fatal(err)
				}
			},
			FIFO: func(t *testing.T, name string) {
				if err := syscall.Mkfifo(at(t, name), 0o666); err != nil {
					t.Fatal(err)
				}
			},
		}
	})
}

// TestModes: what the store creates is its owner's only.
func TestModes(t *testing.T) {
	root := filepath.Join(t.TempDir(), "store")
	if err := MkdirAll(root); err != nil {
		t.Fatal(err)
	}
	b, _ := New(root)
	ctx := context.Background()
	if err := b.Replace(ctx, "jobs/j/cuts/1/manifest", []byte("m")); err != nil {
		t.Fatal(err)
	}
	if err := b.CreateExclusive(ctx, "jobs/j/claim", []byte("c")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"", "jobs", "jobs/j", "jobs/j/cuts", "jobs/j/cuts/1", "jobs/j/cuts/1/manifest", "jobs/j/claim"} {
		fi, err := os.Stat(filepath.Join(root, p))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s: mode %v, want no group or other bits", p, fi.Mode())
		}
	}
}

func TestNewNeedsDirectory(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "typo")
	if _, err := New(missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Fatalf("New(missing) = %v, want an error naming %s", err, missing)
	}
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o644)
	if _, err := New(file); err == nil {
		t.Fatal("New(file) succeeded")
	}
	if err := MkdirAll(missing); err != nil {
		t.Fatal(err)
	}
	if _, err := New(missing); err != nil {
		t.Fatal(err)
	}
}

// TestForeignEntriesSkipped: files the store did not write (NFS silly
// renames, symlinks, editors' backups) are not listed, and a symlink cannot
// be used to read outside the root.
func TestForeignEntriesSkipped(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "secret"), []byte("s"), 0o644)
	b, _ := New(root)
	ctx := context.Background()
	if err := b.Replace(ctx, "d/ok", []byte("x")); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(root, "d", ".nfs000123"), nil, 0o644)
	os.WriteFile(filepath.Join(root, "d", "with space"), nil, 0o644)
	os.Symlink(filepath.Join(outside, "secret"), filepath.Join(root, "d", "link"))
	var names []string
	b.List(ctx, "d", func(fi backend.FileInfo) error { names = append(names, fi.Name); return nil })
	if len(names) != 1 || names[0] != "d/ok" {
		t.Fatalf("List = %v, want only d/ok", names)
	}
}

func TestRemovePrunesEmptyDirs(t *testing.T) {
	root := t.TempDir()
	b, _ := New(root)
	ctx := context.Background()
	b.Replace(ctx, "a/b/c/f", nil)
	b.Replace(ctx, "a/g", nil)
	if err := b.Remove(ctx, "a/b/c/f"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "a", "b")); !os.IsNotExist(err) {
		t.Fatalf("a/b not pruned: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "a", "g")); err != nil {
		t.Fatal("pruned too much")
	}
}

func TestRemoveEmptyDir(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	b, _ := New(root)
	ctx := context.Background()
	os.MkdirAll(filepath.Join(root, "a", "b", "c"), 0o700)
	b.Replace(ctx, "a/f", nil)
	if err := b.RemoveEmptyDir(ctx, "a"); err == nil {
		t.Fatal("removed a directory that is not empty")
	}
	if err := b.RemoveEmptyDir(ctx, "a/b/c"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "a", "b")); !os.IsNotExist(err) {
		t.Fatalf("a/b not pruned: %v", err)
	}
	if err := b.RemoveEmptyDir(ctx, "a/f"); err == nil {
		t.Fatal("removed a file as a directory")
	}
	if err := b.RemoveEmptyDir(ctx, "a/missing"); !errors.Is(err, backend.ErrNotExist) {
		t.Fatalf("missing: %v", err)
	}
	os.Symlink(outside, filepath.Join(root, "a", "link"))
	if err := b.RemoveEmptyDir(ctx, "a/link"); !errors.Is(err, backend.ErrNotRegular) {
		t.Fatalf("link: %v, want a refusal", err)
	}
	if _, err := os.Stat(outside); err != nil {
		t.Fatal(err)
	}
}
