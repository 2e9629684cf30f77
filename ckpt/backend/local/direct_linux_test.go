//go:build linux

package local

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// writeRandom writes n bytes in pieces of random sizes (some larger than a
// direct buffer) and returns them.
func writeRandom(t *testing.T, w interface{ Write([]byte) (int, error) }, n int, seed uint64) []byte {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 1))
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	for p := data; len(p) > 0; {
		k := min(len(p), 1+r.IntN(directBuf*3/2))
		if r.IntN(4) == 0 {
			k = min(len(p), 1+r.IntN(5000))
		}
		if m, err := w.Write(p[:k]); err != nil || m != k {
			t.Fatalf("write: %d of %d, %v", m, k, err)
		}
		p = p[k:]
	}
	return data
}

// Pack writes through O_DIRECT (where the file system takes it) or the
// page cache (tmpfs) give the same file: every length, aligned or not,
// across buffer boundaries, and nothing of a torn tail.
func TestDirectWrites(t *testing.T) {
	dirs := map[string]string{"temp": t.TempDir()}
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "cutpoint-test"); err == nil {
			t.Cleanup(func() { os.RemoveAll(d) })
			dirs["shm"] = d
		}
	}
	ctx := context.Background()
	for label, dir := range dirs {
		b, err := New(dir)
		if err != nil {
			t.Fatal(err)
		}
		for i, n := range []int{0, 1, directAlign, directAlign + 1, directBuf - 1, directBuf, directBuf + 7, 3*directBuf + 12345} {
			name := filepath.Join("p", label, string(rune('a'+i)))
			bw, err := b.Create(ctx, filepath.ToSlash(name))
			if err != nil {
				t.Fatal(err)
			}
			w := bw.(*writer)
			want := writeRandom(t, w, n, uint64(n))
			if n > directBuf {
				t.Logf("%s: O_DIRECT %v", label, directFlag(t, w.f))
			}
			if err := w.Commit(); err != nil {
				t.Fatal(err)
			}
			// Only a file past its first buffer leaves the page cache.
			if w.direct != nil && w.direct.started != (n >= directBuf) {
				t.Errorf("%s: %d bytes: direct writes started %v", label, n, w.direct.started)
			}
			got, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%s: %d bytes written, file has %d bytes, equal %v", label, n, len(got), bytes.Equal(got[:min(len(got), n)], want[:min(len(got), n)]))
			}
		}
		// Abort halfway through: no file, no temporary left.
		bw, err := b.Create(ctx, "p/"+label+"/aborted")
		if err != nil {
			t.Fatal(err)
		}
		writeRandom(t, bw, 2*directBuf+5, 9)
		if err := bw.Abort(); err != nil {
			t.Fatal(err)
		}
		if ents, _ := os.ReadDir(filepath.Join(dir, "p", label)); len(ents) != 8 {
			t.Fatalf("%s: %d entries after an abort, want the 8 committed files", label, len(ents))
		}
	}
}

func directFlag(t *testing.T, f *os.File) bool {
	flags, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
	if err != nil {
		t.Fatal(err)
	}
	return flags&unix.O_DIRECT != 0
}

// A write error of the direct path (here: the file closed under it) comes
// back from a later Write or from Commit, never lost.
func TestDirectWriteError(t *testing.T) {
	b, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	bw, err := b.Create(context.Background(), "p/x")
	if err != nil {
		t.Fatal(err)
	}
	w := bw.(*writer)
	if w.direct == nil {
		t.Skip("no O_DIRECT on this file system")
	}
	w.f.Close()
	_, werr := w.Write(make([]byte, 3*directBuf))
	cerr := w.Commit()
	if werr == nil && cerr == nil {
		t.Fatal("writes to a closed file reported no error")
	}
}
