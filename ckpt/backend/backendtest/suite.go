package backendtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/cutpoint/cutpoint/ckpt/backend"
)

// Run runs every conformance test; newBackend returns an empty backend.
// A backend over a file system also passes RunHostile (planted links and
// FIFOs).
func Run(t *testing.T, newBackend func(t *testing.T) backend.Backend) {
	tests := []struct {
		name string
		fn   func(t *testing.T, b backend.Backend)
	}{
		{"CreateCommit", testCreateCommit},
		{"CreateAbort", testCreateAbort},
		{"CommitReplaces", testCommitReplaces},
		{"WriterFinished", testWriterFinished},
		{"TempRemovedBeforeCommit", testTempRemovedBeforeCommit},
		{"CreateExclusive", testCreateExclusive},
		{"CreateExclusiveRace", testCreateExclusiveRace},
		{"Replace", testReplace},
		{"OpenReadAt", testOpenReadAt},
		{"ReaderSurvivesReplace", testReaderSurvivesReplace},
		{"ReadFileLimit", testReadFileLimit},
		{"NotExist", testNotExist},
		{"List", testList},
		{"ListStops", testListStops},
		{"Remove", testRemove},
		{"InvalidNames", testInvalidNames},
		{"Canceled", testCanceled},
		{"Concurrent", testConcurrent},
		{"FileIsNotDir", testFileIsNotDir},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newBackend(t)) })
	}
}

var ctx = context.Background()

func write(t *testing.T, b backend.Backend, name string, data []byte) {
	t.Helper()
	w, err := b.Create(ctx, name)
	if err != nil {
		t.Fatalf("Create(%q): %v", name, err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatalf("Write(%q): %v", name, err)
	}
	if err := w.Commit(); err != nil {
		t.Fatalf("Commit(%q): %v", name, err)
	}
}

func readAll(t *testing.T, b backend.Backend, name string) []byte {
	t.Helper()
	got, err := b.ReadFile(ctx, name, 1<<30)
	if err != nil {
		t.Fatalf("ReadFile(%q): %v", name, err)
	}
	return got
}

func list(t *testing.T, b backend.Backend, dir string) []backend.FileInfo {
	t.Helper()
	var out []backend.FileInfo
	if err := b.List(ctx, dir, func(fi backend.FileInfo) error {
		out = append(out, fi)
		return nil
	}); err != nil {
		t.Fatalf("List(%q): %v", dir, err)
	}
	return out
}

func pattern(n int, seed byte) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i*7) ^ seed
	}
	return p
}

func testCreateCommit(t *testing.T, b backend.Backend) {
	data := pattern(100000, 1)
	w, err := b.Create(ctx, "d/e/f.pack")
	if err != nil {
		t.Fatal(err)
	}
	// Write in pieces, as a pack writer does.
	for off := 0; off < len(data); off += 30000 {
		end := min(off+30000, len(data))
		if n, err := w.Write(data[off:end]); err != nil || n != end-off {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	if _, err := b.Stat(ctx, "d/e/f.pack"); !errors.Is(err, backend.ErrNotExist) {
		t.Fatalf("before Commit, Stat = %v, want ErrNotExist", err)
	}
	if _, err := b.Open(ctx, "d/e/f.pack"); !errors.Is(err, backend.ErrNotExist) {
		t.Fatalf("before Commit, Open = %v, want ErrNotExist", err)
	}
	entries := list(t, b, "d/e")
	if len(entries) != 1 || !entries[0].Temp || !backend.IsTemp(entries[0].Name) {
		t.Fatalf("before Commit, List = %+v, want one temporary file", entries)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, b, "d/e/f.pack"); !bytes.Equal(got, data) {
		t.Fatal("content differs after Commit")
	}
	fi, err := b.Stat(ctx, "d/e/f.pack")
	if err != nil || fi.Size != int64(len(data)) || fi.IsDir || fi.Name != "d/e/f.pack" {
		t.Fatalf("Stat = %+v, %v", fi, err)
	}
	entries = list(t, b, "d/e")
	if len(entries) != 1 || entries[0].Name != "d/e/f.pack" || entries[0].Temp || entries[0].Size != int64(len(data)) {
		t.Fatalf("after Commit, List = %+v", entries)
	}
	if fi, err := b.Stat(ctx, "d/e"); err != nil || !fi.IsDir {
		t.Fatalf("Stat(dir) = %+v, %v", fi, err)
	}
}

func testCreateAbort(t *testing.T, b backend.Backend) {
	w, err := b.Create(ctx, "x/a")
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("partial"))
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	if err := w.Abort(); err != nil {
		t.Fatalf("second Abort: %v", err)
	}
	if _, err := b.Stat(ctx, "x/a"); !errors.Is(err, backend.ErrNotExist) {
		t.Fatalf("after Abort, Stat = %v", err)
	}
	err = b.List(ctx, "x", func(fi backend.FileInfo) error {
		return fmt.Errorf("after Abort, List shows %+v", fi)
	})
	if err != nil && !errors.Is(err, backend.ErrNotExist) {
		t.Fatal(err)
	}
}

func testCommitReplaces(t *testing.T, b backend.Backend) {
	write(t, b, "m", []byte("old content, longer"))
	write(t, b, "m", []byte("new"))
	if got := readAll(t, b, "m"); string(got) != "new" {
		t.Fatalf("got %q", got)
	}
}

func testWriterFinished(t *testing.T, b backend.Backend) {
	w, err := b.Create(ctx, "f")
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("a"))
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("b")); !errors.Is(err, backend.ErrFinished) {
		t.Fatalf("Write after Commit = %v, want ErrFinished", err)
	}
	if err := w.Commit(); !errors.Is(err, backend.ErrFinished) {
		t.Fatalf("second Commit = %v, want ErrFinished", err)
	}
	if err := w.Abort(); err != nil {
		t.Fatalf("Abort after Commit = %v", err)
	}
	if got := readAll(t, b, "f"); string(got) != "a" {
		t.Fatalf("Abort after Commit changed the file: %q", got)
	}
}

func testTempRemovedBeforeCommit(t *testing.T, b backend.Backend) {
	w, err := b.Create(ctx, "p/q")
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("doomed"))
	entries := list(t, b, "p")
	if len(entries) != 1 || !entries[0].Temp {
		t.Fatalf("List = %+v", entries)
	}
	if err := b.Remove(ctx, entries[0].Name); err != nil {
		t.Fatalf("Remove(temp): %v", err)
	}
	if err := w.Commit(); err == nil {
		t.Fatal("Commit after its temporary file was removed succeeded")
	}
	if _, err := b.Stat(ctx, "p/q"); !errors.Is(err, backend.ErrNotExist) {
		t.Fatalf("Stat = %v", err)
	}
}

func testCreateExclusive(t *testing.T, b backend.Backend) {
	if err := b.CreateExclusive(ctx, "job/gen-000001", []byte("one")); err != nil {
		t.Fatal(err)
	}
	err := b.CreateExclusive(ctx, "job/gen-000001", []byte("two"))
	if !errors.Is(err, backend.ErrExist) {
		t.Fatalf("second CreateExclusive = %v, want ErrExist", err)
	}
	if got := readAll(t, b, "job/gen-000001"); string(got) != "one" {
		t.Fatalf("content %q", got)
	}
	write(t, b, "job/other", nil)
	if err := b.CreateExclusive(ctx, "job/other", nil); !errors.Is(err, backend.ErrExist) {
		t.Fatalf("CreateExclusive over a committed file = %v", err)
	}
}

func testCreateExclusiveRace(t *testing.T, b backend.Backend) {
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = b.CreateExclusive(ctx, "claim", []byte{byte(i)})
		}()
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case errors.Is(err, backend.ErrExist):
		default:
			t.Fatalf("unexpected error %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d winners, want 1", won)
	}
}

func testReplace(t *testing.T, b backend.Backend) {
	if err := b.Replace(ctx, "j/job.json", []byte(`{"g":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := b.Replace(ctx, "j/job.json", []byte(`{"g":2}`)); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, b, "j/job.json"); string(got) != `{"g":2}` {
		t.Fatalf("got %q", got)
	}
	for _, fi := range list(t, b, "j") {
		if fi.Temp {
			t.Fatalf("Replace left a temporary file %s", fi.Name)
		}
	}
}

func testOpenReadAt(t *testing.T, b backend.Backend) {
	data := pattern(5000, 9)
	write(t, b, "r", data)
	r, err := b.Open(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Size() != 5000 {
		t.Fatalf("Size = %d", r.Size())
	}
	buf := make([]byte, 100)
	if n, err := r.ReadAt(buf, 1234); err != nil || n != 100 || !bytes.Equal(buf, data[1234:1334]) {
		t.Fatalf("ReadAt = %d, %v", n, err)
	}
	n, err := r.ReadAt(buf, 4950)
	if n != 50 || err != io.EOF || !bytes.Equal(buf[:50], data[4950:]) {
		t.Fatalf("short ReadAt at the end = %d, %v; want 50, io.EOF", n, err)
	}
	if n, err := r.ReadAt(buf, 6000); n != 0 || err != io.EOF {
		t.Fatalf("ReadAt past the end = %d, %v", n, err)
	}
}

func testReaderSurvivesReplace(t *testing.T, b backend.Backend) {
	write(t, b, "s", []byte("first"))
	r, err := b.Open(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	write(t, b, "s", []byte("SECOND"))
	buf := make([]byte, 5)
	if _, err := r.ReadAt(buf, 0); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	if string(buf) != "first" {
		t.Fatalf("open reader sees %q after a replace", buf)
	}
}

func testReadFileLimit(t *testing.T, b backend.Backend) {
	write(t, b, "big", make([]byte, 1000))
	if _, err := b.ReadFile(ctx, "big", 999); !errors.Is(err, backend.ErrTooLarge) {
		t.Fatalf("ReadFile over the limit = %v, want ErrTooLarge", err)
	}
	if got, err := b.ReadFile(ctx, "big", 1000); err != nil || len(got) != 1000 {
		t.Fatalf("ReadFile at the limit = %d bytes, %v", len(got), err)
	}
	write(t, b, "empty", nil)
	if got, err := b.ReadFile(ctx, "empty", 0); err != nil || len(got) != 0 {
		t.Fatalf("ReadFile(empty) = %q, %v", got, err)
	}
}

func testNotExist(t *testing.T, b backend.Backend) {
	if _, err := b.Open(ctx, "nope"); !errors.Is(err, backend.ErrNotExist) {
		t.Errorf("Open = %v", err)
	}
	if _, err := b.ReadFile(ctx, "nope", 10); !errors.Is(err, backend.ErrNotExist) {
		t.Errorf("ReadFile = %v", err)
	}
	if _, err := b.Stat(ctx, "nope"); !errors.Is(err, backend.ErrNotExist) {
		t.Errorf("Stat = %v", err)
	}
	if err := b.Remove(ctx, "nope"); !errors.Is(err, backend.ErrNotExist) {
		t.Errorf("Remove = %v", err)
	}
	if err := b.List(ctx, "nope", func(backend.FileInfo) error { return nil }); !errors.Is(err, backend.ErrNotExist) {
		t.Errorf("List = %v", err)
	}
	for _, name := range []string{"nope", "a/b/c"} {
		if _, err := b.Open(ctx, name); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("Open(%q) error %v does not name the file", name, err)
		}
	}
}

func testList(t *testing.T, b backend.Backend) {
	write(t, b, "l/b", []byte("bb"))
	write(t, b, "l/a", []byte("a"))
	write(t, b, "l/sub/x", []byte("xxx"))
	write(t, b, "l/sub/y", nil)
	write(t, b, "top", nil)
	got := list(t, b, "l")
	want := []backend.FileInfo{{Name: "l/a", Size: 1}, {Name: "l/b", Size: 2}, {Name: "l/sub", IsDir: true}}
	if len(got) != len(want) {
		t.Fatalf("List = %+v", got)
	}
	for i := range want {
		if got[i].Name != want[i].Name || got[i].IsDir != want[i].IsDir || (!got[i].IsDir && got[i].Size != want[i].Size) || got[i].Temp {
			t.Fatalf("List[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
	root := list(t, b, "")
	if len(root) != 2 || root[0].Name != "l" || !root[0].IsDir || root[1].Name != "top" {
		t.Fatalf("List(root) = %+v", root)
	}
}

func testListStops(t *testing.T, b backend.Backend) {
	for i := range 5 {
		write(t, b, fmt.Sprintf("s/%d", i), nil)
	}
	stop := errors.New("stop")
	calls := 0
	err := b.List(ctx, "s", func(backend.FileInfo) error {
		calls++
		if calls == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || calls != 2 {
		t.Fatalf("List = %v after %d calls", err, calls)
	}
}

func testRemove(t *testing.T, b backend.Backend) {
	write(t, b, "rm/dir/a", []byte("a"))
	write(t, b, "rm/keep", []byte("k"))
	if err := b.Remove(ctx, "rm/dir/a"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Stat(ctx, "rm/dir/a"); !errors.Is(err, backend.ErrNotExist) {
		t.Fatalf("Stat after Remove = %v", err)
	}
	// The emptied directory may or may not remain; the other file stays.
	if got := readAll(t, b, "rm/keep"); string(got) != "k" {
		t.Fatal("Remove touched another file")
	}
	write(t, b, "rm/dir/b", []byte("b")) // the directory comes back on demand
	if got := readAll(t, b, "rm/dir/b"); string(got) != "b" {
		t.Fatal("write after prune")
	}
	if err := b.Remove(ctx, "rm/dir"); err == nil {
		t.Fatal("Remove of a directory succeeded")
	}
}

func testInvalidNames(t *testing.T, b backend.Backend) {
	bad := []string{"", "/abs", "../up", "a/../../up", "a//b", "a/", ".hidden", "a/./b", "a/..", "-dash",
		"sp ace", "back\\slash", "nul\x00", "new\nline", strings.Repeat("x", backend.MaxComponentLen+1),
		strings.Repeat("a/", backend.MaxDepth) + "z", "ü"}
	for _, name := range bad {
		checks := map[string]error{}
		_, checks["Create"] = b.Create(ctx, name)
		checks["CreateExclusive"] = b.CreateExclusive(ctx, name, nil)
		checks["Replace"] = b.Replace(ctx, name, nil)
		_, checks["Open"] = b.Open(ctx, name)
		_, checks["ReadFile"] = b.ReadFile(ctx, name, 10)
		_, checks["Stat"] = b.Stat(ctx, name)
		checks["Remove"] = b.Remove(ctx, name)
		if name != "" {
			checks["List"] = b.List(ctx, name, func(backend.FileInfo) error { return nil })
		}
		for op, err := range checks {
			if !errors.Is(err, backend.ErrInvalidName) {
				t.Errorf("%s(%q) = %v, want ErrInvalidName", op, name, err)
			}
		}
	}
	if len(list(t, b, "")) != 0 {
		t.Fatal("an invalid name created something")
	}
}

func testCanceled(t *testing.T, b backend.Backend) {
	write(t, b, "c", []byte("x"))
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := b.Create(cctx, "c2"); !errors.Is(err, context.Canceled) {
		t.Errorf("Create = %v", err)
	}
	if err := b.Replace(cctx, "c", nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Replace = %v", err)
	}
	if _, err := b.ReadFile(cctx, "c", 10); !errors.Is(err, context.Canceled) {
		t.Errorf("ReadFile = %v", err)
	}
	if err := b.List(cctx, "", func(backend.FileInfo) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("List = %v", err)
	}
	if err := b.Remove(cctx, "c"); !errors.Is(err, context.Canceled) {
		t.Errorf("Remove = %v", err)
	}
	if got := readAll(t, b, "c"); string(got) != "x" {
		t.Error("a canceled call changed the file")
	}
}

func testConcurrent(t *testing.T, b backend.Backend) {
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("cc/%d/f", i%2) + fmt.Sprint(i)
			data := pattern(10000+i, byte(i))
			w, err := b.Create(ctx, name)
			if err != nil {
				t.Error(err)
				return
			}
			w.Write(data)
			if err := w.Commit(); err != nil {
				t.Error(err)
				return
			}
			got, err := b.ReadFile(ctx, name, 1<<20)
			if err != nil || !bytes.Equal(got, data) {
				t.Errorf("%s: read back %d bytes, %v", name, len(got), err)
			}
			if i%3 == 0 {
				if err := b.Remove(ctx, name); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
}

func testFileIsNotDir(t *testing.T, b backend.Backend) {
	write(t, b, "plain", []byte("x"))
	if _, err := b.Create(ctx, "plain/child"); err == nil {
		// Some backends fail only at Commit; either way nothing may appear.
		t.Log("Create under a file did not fail at once")
	}
	if err := b.Replace(ctx, "plain/child", []byte("y")); err == nil {
		t.Fatal("Replace under a file succeeded")
	}
	if got := readAll(t, b, "plain"); string(got) != "x" {
		t.Fatal("file changed")
	}
}
