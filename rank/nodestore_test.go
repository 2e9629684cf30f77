package rank

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
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

// storeProxy stands between a client and the rank serving host h.1: it
// serves host h.p (the queue subject, and a direct subject of its own that
// its creates name) and passes each request on to h.1 and its reply back,
// except where decide says otherwise. Its handlers run one message at a
// time, so what it passes on keeps its order.
type storeProxy struct {
	nc     *nats.Conn
	real   string
	direct string
	// decide is asked for each write and read: whether to pass it on,
	// and its reply back; n counts the requests of its op, this one
	// included.
	decide func(n int, req nodestore.Request) (pass, reply bool)

	mu         sync.Mutex
	realDirect string
	writes     int
	reads      int
	dropped    int
}

func newStoreProxy(t *testing.T, nc *nats.Conn, decide func(n int, req nodestore.Request) (pass, reply bool)) *storeProxy {
	t.Helper()
	p := &storeProxy{nc: nc, real: storeSubject("j", "", "h.1"), direct: storeSubject("j", "", "h.p") + ".d", decide: decide}
	forward := func(subj string, m *nats.Msg) (nodestore.Reply, bool) {
		r, err := nc.Request(subj, m.Data, 5*time.Second)
		if errors.Is(err, nats.ErrConnectionClosed) {
			return nodestore.Reply{}, false // the test is over
		}
		if err != nil {
			t.Errorf("proxy: %v", err)
			return nodestore.Reply{}, false
		}
		rep, err := nodestore.DecodeReply(r.Data)
		if err != nil {
			t.Errorf("proxy: %v", err)
			return nodestore.Reply{}, false
		}
		return rep, true
	}
	q, err := nc.Subscribe(storeSubject("j", "", "h.p"), func(m *nats.Msg) {
		req, _ := nodestore.DecodeRequest(m.Data)
		pass, reply := true, true
		if req.Op == nodestore.OpRead {
			p.mu.Lock()
			p.reads++
			pass, reply = p.decide(p.reads, req)
			if !reply {
				p.dropped++
			}
			p.mu.Unlock()
		}
		if !pass {
			return
		}
		rep, ok := forward(p.real, m)
		if !ok || !reply {
			return
		}
		if req.Op == nodestore.OpCreate && rep.Status == nodestore.StatusOK {
			p.mu.Lock()
			p.realDirect = string(rep.Data)
			p.mu.Unlock()
			rep.Data = []byte(p.direct)
		}
		_ = m.Respond(nodestore.EncodeReply(rep))
	})
	if err != nil {
		t.Fatal(err)
	}
	d, err := nc.Subscribe(p.direct, func(m *nats.Msg) {
		req, err := nodestore.DecodeRequest(m.Data)
		if err != nil {
			t.Errorf("proxy: %v", err)
			return
		}
		pass, reply := true, true
		p.mu.Lock()
		if req.Op == nodestore.OpWrite {
			p.writes++
			pass, reply = p.decide(p.writes, req)
			if !reply {
				p.dropped++
			}
		}
		real := p.realDirect
		p.mu.Unlock()
		if !pass {
			return
		}
		if rep, ok := forward(real, m); ok && reply {
			_ = m.Respond(nodestore.EncodeReply(rep))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, sub := range []*nats.Subscription{q, d} {
		_ = sub.SetPendingLimits(-1, -1)
	}
	t.Cleanup(func() { q.Unsubscribe(); d.Unsubscribe() })
	return p
}

// windowBed is a rank serving host h.1's store from dir, a proxy for it
// as host h.p, and a client backend for each.
type windowBed struct {
	dir     string
	srv     *storeServer
	direct  *remoteBackend // to h.1
	proxied *remoteBackend // to h.p
	proxy   *storeProxy
}

func newWindowBed(t *testing.T, timeout time.Duration, decide func(n int, req nodestore.Request) (pass, reply bool)) *windowBed {
	t.Helper()
	ns := natstest.Run(t)
	bed := &windowBed{dir: t.TempDir()}
	b, err := local.New(bed.dir)
	if err != nil {
		t.Fatal(err)
	}
	snc := natstest.Connect(t, ns.URL())
	bed.srv, err = serveStore(snc, "j", "", "h.1", b, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bed.srv.close)
	if decide != nil {
		bed.proxy = newStoreProxy(t, natstest.Connect(t, ns.URL()), decide)
	}
	cnc := natstest.Connect(t, ns.URL())
	bed.direct = &remoteBackend{nc: cnc, host: "h.1", subj: storeSubject("j", "", "h.1"), timeout: timeout}
	bed.proxied = &remoteBackend{nc: cnc, host: "h.p", subj: storeSubject("j", "", "h.p"), timeout: timeout}
	return bed
}

// files is every file under the bed's store, temporary ones included.
func (bed *windowBed) files(t *testing.T) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(bed.dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// sessions is the uploads the serving rank holds (its machine's and its
// open writers).
func (bed *windowBed) sessions() (int, int) {
	bed.srv.mu.Lock()
	defer bed.srv.mu.Unlock()
	return bed.srv.m.Sessions(), len(bed.srv.writers)
}

func (bed *windowBed) refused() [7]uint64 {
	bed.srv.mu.Lock()
	defer bed.srv.mu.Unlock()
	return bed.srv.m.Refused
}

func windowData(n int) []byte {
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(i*7 + i>>11)
	}
	return data
}

// TestNodeStoreWindowUpload: a file of many windows, written in odd
// sizes, arrives byte for byte, with nothing refused, no upload left open,
// and more than one piece but never more than a window in flight.
func TestNodeStoreWindowUpload(t *testing.T) {
	ctx := context.Background()
	bed := newWindowBed(t, 5*time.Second, nil)
	name := "jobs/j/packs/1/r000000-g1-00.pack"
	data := windowData(5<<20 + 4321)
	w, err := bed.direct.Create(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	rw := w.(*remoteWriter)
	maxAhead := 0
	for off := 0; off < len(data); off += 100_003 {
		if _, err := w.Write(data[off:min(off+100_003, len(data))]); err != nil {
			t.Fatal(err)
		}
		maxAhead = max(maxAhead, len(rw.flight))
		if rw.up.Sent()-rw.up.Size() > nodestore.Window*nodestore.MaxData {
			t.Fatalf("%d bytes sent, %d acknowledged: more than a window", rw.up.Sent(), rw.up.Size())
		}
	}
	if maxAhead < 2 {
		t.Errorf("at most %d pieces in flight: no window", maxAhead)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(bed.dir, filepath.FromSlash(name)))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("on the serving host's disk: %d bytes of %d, %v", len(got), len(data), err)
	}
	if s, o := bed.sessions(); s != 0 || o != 0 {
		t.Fatalf("%d sessions, %d writers left", s, o)
	}
	if r := bed.refused(); r != [len(r)]uint64{} {
		t.Fatalf("refused %v", r)
	}
	if f := bed.files(t); len(f) != 1 {
		t.Fatalf("files: %v", f)
	}
	back, err := bed.direct.ReadFile(ctx, name, 1<<30)
	if err != nil || !bytes.Equal(back, data) {
		t.Fatalf("read back: %d bytes, %v", len(back), err)
	}
}

// TestNodeStoreWindowLostReply: the reply to the second piece is lost; the
// pieces after it are acknowledged, the second is sent again after the
// timeout, and the server, which has its bytes, answers it without
// writing them twice: the file is byte for byte the upload.
func TestNodeStoreWindowLostReply(t *testing.T) {
	ctx := context.Background()
	bed := newWindowBed(t, 300*time.Millisecond, func(n int, req nodestore.Request) (bool, bool) {
		return true, req.Op != nodestore.OpWrite || n != 2
	})
	name := "jobs/j/packs/1/r000001-g1-00.pack"
	data := windowData(4<<20 + 99)
	w, err := bed.proxied.Create(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("done in %v: the lost reply was not waited for", d)
	}
	got, err := os.ReadFile(filepath.Join(bed.dir, filepath.FromSlash(name)))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("on the serving host's disk: %d bytes of %d, %v", len(got), len(data), err)
	}
	if r := bed.refused(); r != [len(r)]uint64{} {
		t.Fatalf("refused %v", r)
	}
	pieces := (len(data) + nodestore.MaxData - 1) / nodestore.MaxData
	bed.proxy.mu.Lock()
	writes, dropped := bed.proxy.writes, bed.proxy.dropped
	bed.proxy.mu.Unlock()
	if writes != pieces+1 || dropped != 1 {
		t.Fatalf("%d writes through the proxy for %d pieces, %d replies dropped: want one piece sent again", writes, pieces, dropped)
	}
	if s, o := bed.sessions(); s != 0 || o != 0 {
		t.Fatalf("%d sessions, %d writers left", s, o)
	}
}

// TestNodeStoreWindowGap: the second piece is lost on the way to the
// server; the third arrives past the file's end, the server refuses it and
// aborts the upload, and the client's upload fails (its callers fall
// back): nothing of the file is left there.
func TestNodeStoreWindowGap(t *testing.T) {
	ctx := context.Background()
	bed := newWindowBed(t, 5*time.Second, func(n int, req nodestore.Request) (bool, bool) {
		lost := req.Op == nodestore.OpWrite && n == 2
		return !lost, !lost
	})
	w, err := bed.proxied.Create(ctx, "jobs/j/packs/1/r000002-g1-00.pack")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = w.Write(windowData(3 << 20))
	if err == nil {
		err = w.Commit()
	}
	if !errors.Is(err, backend.ErrInvalidName) || !strings.Contains(err.Error(), "the upload has") {
		t.Fatalf("upload with a piece lost: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the refusal took %v: waited for a timeout", d)
	}
	if err := w.Commit(); err == nil {
		t.Fatal("commit after the refusal")
	}
	_ = w.Abort()
	if s, o := bed.sessions(); s != 0 || o != 0 {
		t.Fatalf("%d sessions, %d writers left", s, o)
	}
	if f := bed.files(t); len(f) != 0 {
		t.Fatalf("left behind: %v", f)
	}
}

// TestNodeStoreWindowCancel: the server's replies stop after a few pieces
// (a stalled receiver); cancelling the upload's context ends the write at
// once, not after the timeout, and the writer itself aborts the session
// there: no upload open, no file, temporary or not.
func TestNodeStoreWindowCancel(t *testing.T) {
	bed := newWindowBed(t, 20*time.Second, func(n int, req nodestore.Request) (bool, bool) {
		return true, req.Op != nodestore.OpWrite || n <= 3
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, err := bed.proxied.Create(ctx, "jobs/j/packs/1/r000003-g1-00.pack")
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(300*time.Millisecond, cancel)
	start := time.Now()
	_, err = w.Write(windowData(8 << 20))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("write under a cancelled context: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the write took %v after a cancel at 300 ms", d)
	}
	// Not w.Abort(): the writer aborted the session on its own.
	if s, o := bed.sessions(); s != 0 || o != 0 {
		t.Fatalf("%d sessions, %d writers left after the cancel", s, o)
	}
	if f := bed.files(t); len(f) != 0 {
		t.Fatalf("left behind: %v", f)
	}
	if _, err := w.Write([]byte("x")); !errors.Is(err, context.Canceled) {
		t.Fatalf("write after the failure: %v", err)
	}
}

// TestNodeStoreWindowRead: a read of many pieces has several in flight;
// the reply to the third is lost and the piece asked again after the
// timeout; the bytes are the file's. A read past the end returns what
// the file has and io.EOF.
func TestNodeStoreWindowRead(t *testing.T) {
	ctx := context.Background()
	bed := newWindowBed(t, 300*time.Millisecond, func(n int, req nodestore.Request) (bool, bool) {
		return true, req.Op != nodestore.OpRead || n != 3
	})
	name := "jobs/j/packs/1/r000004-g1-00.pack"
	data := windowData(3<<20 + 777)
	if err := os.MkdirAll(filepath.Join(bed.dir, "jobs/j/packs/1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bed.dir, filepath.FromSlash(name)), data, 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := bed.proxied.Open(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2<<20)
	if n, err := r.ReadAt(buf, 1000); err != nil || n != len(buf) || !bytes.Equal(buf, data[1000:1000+len(buf)]) {
		t.Fatalf("read of 2 MiB at 1000: %d bytes, %v, equal %v", n, err, bytes.Equal(buf[:n], data[1000:1000+n]))
	}
	bed.proxy.mu.Lock()
	reads, dropped := bed.proxy.reads, bed.proxy.dropped
	bed.proxy.mu.Unlock()
	if pieces := len(buf) / nodestore.MaxData; reads != pieces+1 || dropped != 1 {
		t.Fatalf("%d reads through the proxy for %d pieces, %d replies dropped: want one piece asked again", reads, pieces, dropped)
	}
	n, err := r.ReadAt(buf, int64(len(data)-5000))
	if n != 5000 || !errors.Is(err, io.EOF) || !bytes.Equal(buf[:n], data[len(data)-5000:]) {
		t.Fatalf("read past the end: %d bytes, %v", n, err)
	}
	all, err := bed.proxied.ReadFile(ctx, name, 1<<30)
	if err != nil || !bytes.Equal(all, data) {
		t.Fatalf("whole file: %d bytes, %v", len(all), err)
	}
}

// BenchmarkNodeStoreUpload: one file uploaded to another host's store
// through the rank serving it (embedded NATS on loopback, local disk with
// fsync), no bandwidth bound.
func BenchmarkNodeStoreUpload(b *testing.B) {
	benchUpload(b, 0)
}

// BenchmarkNodeStoreUploadRTT: the same with a simulated network between
// the hosts: the client's and the serving rank's connections each deliver
// what they send rtt/2 late (natstest.LatencyDialer), a round trip of
// about rtt on top of the loopback's.
func BenchmarkNodeStoreUploadRTT(b *testing.B) {
	for _, rtt := range []time.Duration{500 * time.Microsecond, 2 * time.Millisecond} {
		b.Run("rtt="+rtt.String(), func(b *testing.B) { benchUpload(b, rtt) })
	}
}

// benchStore serves a node-local store in a new directory (returned) as
// host "h" on a test NATS server and returns a client of it, both
// connections with the simulated round trip rtt (none for 0); all is
// closed at the benchmark's end.
func benchStore(b *testing.B, rtt time.Duration) (*remoteBackend, string) {
	b.Helper()
	ns := natstest.Run(b)
	dir := b.TempDir()
	be, err := local.New(dir)
	if err != nil {
		b.Fatal(err)
	}
	var opts []nats.Option
	if rtt > 0 {
		opts = append(opts, nats.SetCustomDialer(&natstest.LatencyDialer{Delay: rtt / 2}))
	}
	conn := func() *nats.Conn {
		nc, err := nats.Connect(ns.URL(), opts...)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(nc.Close)
		return nc
	}
	srv, err := serveStore(conn(), "j", "", "h", be, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.close)
	return &remoteBackend{nc: conn(), host: "h", subj: storeSubject("j", "", "h"), timeout: 10 * time.Second}, dir
}

func benchUpload(b *testing.B, rtt time.Duration) {
	ctx := context.Background()
	rb, _ := benchStore(b, rtt)
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

// BenchmarkNodeStoreRead: a 16 MiB file of another host's store read in
// blocks of 4 MiB (as CopyShard and a restore read), through the rank
// serving it, on loopback and with a simulated round trip (as
// BenchmarkNodeStoreUploadRTT).
func BenchmarkNodeStoreRead(b *testing.B) {
	for _, rtt := range []time.Duration{0, 500 * time.Microsecond, 2 * time.Millisecond} {
		b.Run("rtt="+rtt.String(), func(b *testing.B) {
			ctx := context.Background()
			rb, dir := benchStore(b, rtt)
			name := "jobs/j/packs/1/x.pack"
			data := make([]byte, 16<<20)
			if err := os.MkdirAll(filepath.Join(dir, "jobs/j/packs/1"), 0o755); err != nil {
				b.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(name)), data, 0o644); err != nil {
				b.Fatal(err)
			}
			buf := make([]byte, 4<<20)
			b.SetBytes(int64(len(data)))
			for i := 0; i < b.N; i++ {
				r, err := rb.Open(ctx, name)
				if err != nil {
					b.Fatal(err)
				}
				for off := int64(0); off < int64(len(data)); off += int64(len(buf)) {
					if _, err := r.ReadAt(buf, off); err != nil {
						b.Fatal(err)
					}
				}
				r.Close()
			}
		})
	}
}
