package backendtest

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cutpoint/cutpoint/ckpt/backend"
)

// Hostile plants, in a backend's storage, entries that no Backend method
// creates, as another user of a shared store could: symbolic links and
// FIFOs. Every backend over a file system passes RunHostile too.
type Hostile struct {
	// Outside is a directory outside the backend; links point into it
	// and nothing the backend does may change it.
	Outside string
	// Symlink makes name (a slash name) a symbolic link to target.
	Symlink func(t *testing.T, name, target string)
	// FIFO makes name a named pipe.
	FIFO func(t *testing.T, name string)
}

// RunHostile runs the cases of planted links and non-regular files:
// no link below the root is followed, for reading or writing, and only
// regular files are read (a FIFO never blocks); every refusal matches
// backend.ErrNotRegular and names the entry.
func RunHostile(t *testing.T, newBackend func(t *testing.T) (backend.Backend, Hostile)) {
	tests := []struct {
		name string
		fn   func(t *testing.T, b backend.Backend, h Hostile)
	}{
		{"LinkedDirNotWritten", testLinkedDirNotWritten},
		{"LinkedDirNotRead", testLinkedDirNotRead},
		{"LinkedFileNotRead", testLinkedFileNotRead},
		{"LinkInsideNotRead", testLinkInsideNotRead},
		{"FIFONotRead", testFIFONotRead},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, h := newBackend(t)
			tc.fn(t, b, h)
		})
	}
}

// refused checks that err is a refusal naming name.
func refused(t *testing.T, op string, err error, name string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s succeeded, want a refusal", op)
	}
	if !errors.Is(err, backend.ErrNotRegular) {
		t.Fatalf("%s: %v, want an error matching ErrNotRegular", op, err)
	}
	if !strings.Contains(err.Error(), name) {
		t.Fatalf("%s: %v, want the error to name %s", op, err, name)
	}
}

func outsideUnchanged(t *testing.T, h Hostile, want ...string) {
	t.Helper()
	es, err := os.ReadDir(h.Outside)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range es {
		got = append(got, e.Name())
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("outside the backend: %v, want %v: the backend wrote through a link", got, want)
	}
}

func testLinkedDirNotWritten(t *testing.T, b backend.Backend, h Hostile) {
	h.Symlink(t, "jobs/x", h.Outside)
	h.Symlink(t, "deep", h.Outside)
	w, err := b.Create(ctx, "jobs/x/f")
	if err == nil {
		w.Write([]byte("data"))
		err = w.Commit()
	}
	refused(t, "Create through a linked directory", err, "jobs/x")
	refused(t, "CreateExclusive through a linked directory", b.CreateExclusive(ctx, "jobs/x/claim", []byte("c")), "jobs/x")
	refused(t, "Replace through a linked directory", b.Replace(ctx, "jobs/x/r", []byte("r")), "jobs/x")
	refused(t, "Replace through a linked directory", b.Replace(ctx, "deep/a/b/c", []byte("r")), "deep")
	outsideUnchanged(t, h)
	// The rest of the store still works.
	write(t, b, "jobs/y/f", []byte("ok"))
}

func testLinkedDirNotRead(t *testing.T, b backend.Backend, h Hostile) {
	if err := os.WriteFile(filepath.Join(h.Outside, "secret"), []byte("s"), 0o600); err != nil {
		t.Fatal(err)
	}
	write(t, b, "jobs/y/f", []byte("ok"))
	h.Symlink(t, "jobs/x", h.Outside)
	_, err := b.Open(ctx, "jobs/x/secret")
	refused(t, "Open through a linked directory", err, "jobs/x")
	_, err = b.ReadFile(ctx, "jobs/x/secret", 1<<20)
	refused(t, "ReadFile through a linked directory", err, "jobs/x")
	_, err = b.Stat(ctx, "jobs/x")
	refused(t, "Stat of a linked directory", err, "jobs/x")
	_, err = b.Stat(ctx, "jobs/x/secret")
	refused(t, "Stat through a linked directory", err, "jobs/x")
	err = b.List(ctx, "jobs/x", func(backend.FileInfo) error { return nil })
	refused(t, "List of a linked directory", err, "jobs/x")
	for _, fi := range list(t, b, "jobs") {
		if fi.Name != "jobs/y" {
			t.Fatalf("List(jobs) reports %+v, want only jobs/y", fi)
		}
	}
	if err := b.Remove(ctx, "jobs/x/secret"); err == nil {
		t.Fatal("Remove through a linked directory succeeded")
	}
	outsideUnchanged(t, h, "secret")
}

func testLinkedFileNotRead(t *testing.T, b backend.Backend, h Hostile) {
	secret := filepath.Join(h.Outside, "secret")
	if err := os.WriteFile(secret, []byte("s"), 0o600); err != nil {
		t.Fatal(err)
	}
	write(t, b, "d/ok", []byte("ok"))
	h.Symlink(t, "d/f", secret)
	_, err := b.Open(ctx, "d/f")
	refused(t, "Open of a link", err, "d/f")
	_, err = b.ReadFile(ctx, "d/f", 1<<20)
	refused(t, "ReadFile of a link", err, "d/f")
	_, err = b.Stat(ctx, "d/f")
	refused(t, "Stat of a link", err, "d/f")
	for _, fi := range list(t, b, "d") {
		if fi.Name != "d/ok" {
			t.Fatalf("List(d) reports %+v, want only d/ok", fi)
		}
	}
	// Removing the name removes at most the link, never its target.
	b.Remove(ctx, "d/f")
	if got, err := os.ReadFile(secret); err != nil || string(got) != "s" {
		t.Fatalf("link target after Remove: %q, %v", got, err)
	}
	// A Replace replaces the link, it does not write through it.
	h.Symlink(t, "d/g", secret)
	if err := b.Replace(ctx, "d/g", []byte("new")); err == nil {
		if got := readAll(t, b, "d/g"); string(got) != "new" {
			t.Fatalf("d/g = %q after Replace", got)
		}
	}
	if got, err := os.ReadFile(secret); err != nil || string(got) != "s" {
		t.Fatalf("link target after Replace: %q, %v", got, err)
	}
}

func testLinkInsideNotRead(t *testing.T, b backend.Backend, h Hostile) {
	write(t, b, "d/real", []byte("r"))
	h.Symlink(t, "d/link", "real")
	h.Symlink(t, "e", "d")
	_, err := b.Open(ctx, "d/link")
	refused(t, "Open of a link inside the backend", err, "d/link")
	_, err = b.Open(ctx, "e/real")
	refused(t, "Open through a link inside the backend", err, "e")
}

func testFIFONotRead(t *testing.T, b backend.Backend, h Hostile) {
	write(t, b, "d/ok", []byte("ok"))
	h.FIFO(t, "d/pack")
	// The calls run on a goroutine of their own so that a backend that
	// blocks fails the test instead of hanging it.
	type result struct {
		op  string
		err error
	}
	done := make(chan []result, 1)
	go func() {
		var rs []result
		_, err := b.Open(ctx, "d/pack")
		rs = append(rs, result{"Open of a FIFO", err})
		_, err = b.ReadFile(ctx, "d/pack", 1<<20)
		rs = append(rs, result{"ReadFile of a FIFO", err})
		_, err = b.Stat(ctx, "d/pack")
		rs = append(rs, result{"Stat of a FIFO", err})
		done <- rs
	}()
	select {
	case rs := <-done:
		for _, r := range rs {
			refused(t, r.op, r.err, "d/pack")
		}
	case <-time.After(time.Second):
		t.Fatal("reading a FIFO blocked for a second")
	}
	for _, fi := range list(t, b, "d") {
		if fi.Name != "d/ok" {
			t.Fatalf("List(d) reports %+v, want only d/ok", fi)
		}
	}
}
