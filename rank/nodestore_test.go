package rank

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/cutpoint/cutpoint/ckpt/backend"
	"github.com/cutpoint/cutpoint/ckpt/backend/local"
	"github.com/cutpoint/cutpoint/internal/nodestore"
	"github.com/cutpoint/cutpoint/rank/transport/natstest"
)

// TestNodeStoreOverNATS: a file uploaded to another host's store through
// the rank serving it arrives whole (several pieces, fsync and rename
// there), reads back in pieces, lists and stats; hostile requests from a
// client with the job's NATS access (garbage, names outside the job's
// packs, writes out of order, a wrong checksum, a flood of uploads) are
// refused and counted, and leave nothing behind.
func TestNodeStoreOverNATS(t *testing.T) {
	ctx := context.Background()
	ns := natstest.Run(t)
	dir := t.TempDir()
	b, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	snc, err := nats.Connect(ns.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer snc.Close()
	srv, err := serveStore(snc, "j", "", "h.1", b, log)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.close()
	cnc, err := nats.Connect(ns.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer cnc.Close()
	rb := &remoteBackend{nc: cnc, host: "h.1", subj: storeSubject("j", "", "h.1"), timeout: 2 * time.Second,
		limit: &sharedBucket{b: nodestore.NewBucket(1000)}}

	name := "jobs/j/packs/00000000000000000001/r000000-g1-00.pack"
	data := make([]byte, 3*nodestore.MaxData+12345)
	for i := range data {
		data[i] = byte(i * 7)
	}
	w, err := rb.Create(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	for off := 0; off < len(data); off += 1000 {
		if _, err := w.Write(data[off:min(off+1000, len(data))]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(name))); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("visible before the commit: %v", err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("on the serving host's disk: %d bytes, %v", len(got), err)
	}
	back, err := rb.ReadFile(ctx, name, 1<<30)
	if err != nil || !bytes.Equal(back, data) {
		t.Fatalf("read back: %d bytes, %v", len(back), err)
	}
	var listed []string
	if err := rb.List(ctx, "jobs/j/packs/00000000000000000001", func(fi backend.FileInfo) error {
		listed = append(listed, fi.Name)
		return nil
	}); err != nil || len(listed) != 1 || listed[0] != name {
		t.Fatalf("list: %v %v", listed, err)
	}
	if _, err := rb.Stat(ctx, "jobs/j/packs/00000000000000000001/none.pack"); !errors.Is(err, backend.ErrNotExist) {
		t.Fatalf("stat of a missing file: %v", err)
	}
	if err := rb.Remove(ctx, name); err == nil {
		t.Fatal("remove over the network accepted")
	}

	// Hostile requests straight on the subjects.
	ask := func(subj string, payload []byte) nodestore.Reply {
		t.Helper()
		m, err := cnc.Request(subj, payload, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := nodestore.DecodeReply(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	subj := storeSubject("j", "", "h.1")
	if rep := ask(subj, []byte("garbage")); rep.Status != nodestore.StatusInvalid {
		t.Fatalf("garbage: %+v", rep)
	}
	for _, n := range []string{"jobs/j/cuts/00000000000000000001.cut", "jobs/k/packs/x.pack", "cutpoint-store.json", "../x"} {
		if rep := ask(subj, nodestore.EncodeRequest(nodestore.Request{Op: nodestore.OpCreate, Name: n})); rep.Status != nodestore.StatusInvalid {
			t.Fatalf("create %s: %+v", n, rep)
		}
	}
	rep := ask(subj, nodestore.EncodeRequest(nodestore.Request{Op: nodestore.OpCreate, Name: "jobs/j/packs/1/x.pack"}))
	if rep.Status != nodestore.StatusOK {
		t.Fatal(rep.Err)
	}
	direct := string(rep.Data)
	if r := ask(direct, nodestore.EncodeRequest(nodestore.Request{Op: nodestore.OpWrite, Session: rep.Session, Offset: 9, Data: []byte("x")})); r.Status != nodestore.StatusInvalid {
		t.Fatalf("write past the end: %+v", r)
	}
	rep = ask(subj, nodestore.EncodeRequest(nodestore.Request{Op: nodestore.OpCreate, Name: "jobs/j/packs/1/y.pack"}))
	ask(direct, nodestore.EncodeRequest(nodestore.Request{Op: nodestore.OpWrite, Session: rep.Session, Data: []byte("abc")}))
	if r := ask(direct, nodestore.EncodeRequest(nodestore.Request{Op: nodestore.OpCommit, Session: rep.Session, Offset: 3, Sum: 42})); r.Status != nodestore.StatusInvalid {
		t.Fatalf("commit with a wrong checksum: %+v", r)
	}
	busy := 0
	for i := 0; i < nodestore.MaxSessions+5; i++ {
		if r := ask(subj, nodestore.EncodeRequest(nodestore.Request{Op: nodestore.OpCreate, Name: "jobs/j/packs/2/z.pack"})); r.Status == nodestore.StatusBusy {
			busy++
		}
	}
	if busy != 5 {
		t.Fatalf("%d of %d uploads refused as busy, want 5", busy, nodestore.MaxSessions+5)
	}
	srv.mu.Lock()
	refused := srv.m.Refused
	open := len(srv.writers)
	srv.mu.Unlock()
	if refused[nodestore.StatusInvalid] != 7 || refused[nodestore.StatusBusy] != 5 || open != nodestore.MaxSessions {
		t.Fatalf("refused %v, %d uploads open", refused, open)
	}
	for _, n := range []string{"jobs/j/cuts", "jobs/k", "jobs/j/packs/1/x.pack", "jobs/j/packs/1/y.pack", "x"} {
		if _, err := os.Stat(filepath.Join(dir, n)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s exists after the refused requests: %v", n, err)
		}
	}
}

// BenchmarkNodeStoreUpload: one file uploaded to another host's store
// through the rank serving it (embedded NATS on loopback, local disk with
// fsync), no bandwidth bound.
func BenchmarkNodeStoreUpload(b *testing.B) {
	ctx := context.Background()
	ns := natstest.Run(b)
	be, err := local.New(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	snc, _ := nats.Connect(ns.URL())
	defer snc.Close()
	srv, err := serveStore(snc, "j", "", "h", be, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	defer srv.close()
	cnc, _ := nats.Connect(ns.URL())
	defer cnc.Close()
	rb := &remoteBackend{nc: cnc, host: "h", subj: storeSubject("j", "", "h"), timeout: 10 * time.Second}
	data := make([]byte, 16<<20)
	b.SetBytes(int64(len(data)))
	for i := 0; i < b.N; i++ {
		w, err := rb.Create(ctx, "jobs/j/packs/1/x.pack")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			b.Fatal(err)
		}
		if err := w.Commit(); err != nil {
			b.Fatal(err)
		}
	}
}
