package nodestore

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"
)

func TestRoundTrip(t *testing.T) {
	req := Request{Op: OpWrite, Session: 7, Offset: 1 << 40, Length: 9, Sum: 0xdeadbeef, Name: "jobs/j/packs/x", After: "a", Data: []byte("hello")}
	got, err := DecodeRequest(EncodeRequest(req))
	if err != nil || !reflect.DeepEqual(got, req) {
		t.Fatalf("request %+v, %v", got, err)
	}
	rep := Reply{Status: StatusNotExist, Session: 3, Size: 99, IsDir: true, More: true, Err: "why", Data: []byte{1, 2},
		Entries: []Entry{{Name: "a", Size: 1}, {Name: "b", IsDir: true, Temp: true}}}
	gr, err := DecodeReply(EncodeReply(rep))
	if err != nil || !reflect.DeepEqual(gr, rep) {
		t.Fatalf("reply %+v, %v", gr, err)
	}
	for _, bad := range []Request{
		{Op: 0}, {Op: opEnd}, {Op: OpRead, Length: MaxData + 1}, {Op: OpWrite, Offset: -1},
		{Op: OpWrite, Data: make([]byte, MaxData+1)}, {Op: OpCreate, Name: string(make([]byte, MaxName+1))},
	} {
		if _, err := DecodeRequest(EncodeRequest(bad)); err == nil {
			t.Errorf("%+v decoded", bad.Op)
		}
	}
	b := EncodeRequest(req)
	for i := range b {
		if _, err := DecodeRequest(b[:i]); err == nil {
			t.Fatalf("truncated to %d bytes: decoded", i)
		}
	}
	if _, err := DecodeRequest(append(b, 0)); err == nil {
		t.Fatal("trailing byte decoded")
	}
}

func FuzzDecodeRequest(f *testing.F) {
	f.Add(EncodeRequest(Request{Op: OpWrite, Session: 1, Data: []byte("x"), Name: "jobs/j/packs/a"}))
	f.Add(EncodeRequest(Request{Op: OpList, Name: "jobs/j/packs", After: "jobs/j/packs/b"}))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeRequest(b)
		if err != nil {
			return
		}
		if len(r.Data) > MaxData || len(r.Name) > MaxName || r.Offset < 0 {
			t.Fatalf("out of bounds: %+v", r)
		}
		if !bytes.Equal(EncodeRequest(r), b) {
			t.Fatal("re-encoding differs")
		}
		s := NewServer("j")
		s.Admit(r) // never panics on anything decoded
	})
}

func FuzzDecodeReply(f *testing.F) {
	f.Add(EncodeReply(Reply{Status: StatusOK, Data: []byte("x"), Entries: []Entry{{Name: "a", Size: 3}}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeReply(b)
		if err != nil {
			return
		}
		if len(r.Data) > MaxData || len(r.Entries) > MaxListEntries || r.Status >= statusEnd {
			t.Fatalf("out of bounds: %+v", r)
		}
		if !bytes.Equal(EncodeReply(r), b) {
			t.Fatal("re-encoding differs")
		}
	})
}

// TestServerPolicy: names outside the job's packs are refused (and
// counted); an upload's writes come in order, a repeated write or commit
// is answered without being done twice; a gap or a wrong checksum aborts
// the upload; uploads are bounded and expire.
func TestServerPolicy(t *testing.T) {
	s := NewServer("j")
	for _, r := range []Request{
		{Op: OpCreate, Name: "jobs/j/cuts/0001.cut"}, {Op: OpCreate, Name: "jobs/k/packs/a"},
		{Op: OpCreate, Name: "jobs/j/packs/../../x"}, {Op: OpReplace, Name: ConfigName},
		{Op: OpRead, Name: "jobs/j/leases/x"}, {Op: OpList, Name: "jobs/j"},
		{Op: OpList, Name: "jobs/j/packs/0001", After: "jobs/j/cuts/z"},
	} {
		if a := s.Admit(r); a.Kind != 0 || a.Reply == nil || a.Reply.Status != StatusInvalid {
			t.Errorf("%s %q: %+v, want refused", r.Op, r.Name, a)
		}
	}
	if s.Refused[StatusInvalid] != 7 {
		t.Fatalf("refused %v", s.Refused)
	}
	if a := s.Admit(Request{Op: OpRead, Name: ConfigName, Length: 10}); a.Kind != OpRead {
		t.Fatalf("config read: %+v", a)
	}
	if a := s.Admit(Request{Op: OpList, Name: "jobs/j/packs/0001"}); a.Kind != OpList {
		t.Fatalf("list: %+v", a)
	}

	a := s.Admit(Request{Op: OpCreate, Name: "jobs/j/packs/0001/r0.pack"})
	if a.Kind != OpCreate || a.Session == 0 {
		t.Fatalf("create: %+v", a)
	}
	s.Done(a, nil)
	u := &Upload{Session: a.Session}
	w1, _ := u.Write([]byte("abc"))
	if a := s.Admit(w1); a.Kind != OpWrite {
		t.Fatalf("write: %+v", a)
	}
	if err := u.Acked(w1.Offset, Reply{}); err != nil {
		t.Fatal(err)
	}
	if a := s.Admit(w1); a.Kind != 0 || a.Reply.Status != StatusOK {
		t.Fatalf("repeated write: %+v", a)
	}
	c, err := u.Commit()
	if err != nil {
		t.Fatal(err)
	}
	if a := s.Admit(c); a.Kind != OpCommit {
		t.Fatalf("commit: %+v", a)
	} else {
		s.Done(a, nil)
	}
	if a := s.Admit(c); a.Kind != 0 || a.Reply.Status != StatusOK {
		t.Fatalf("repeated commit: %+v", a)
	}
	if a := s.Admit(Request{Op: OpWrite, Session: 99}); a.Reply == nil || a.Reply.Status != StatusUnknown {
		t.Fatalf("unknown session: %+v", a)
	}

	// A gap aborts.
	a = s.Admit(Request{Op: OpCreate, Name: "jobs/j/packs/0001/r1.pack"})
	if b := s.Admit(Request{Op: OpWrite, Session: a.Session, Offset: 5, Data: []byte("x")}); b.Kind != OpAbort || b.Reply.Status != StatusInvalid {
		t.Fatalf("gap: %+v", b)
	}
	// A checksum that does not match what arrived aborts.
	a = s.Admit(Request{Op: OpCreate, Name: "jobs/j/packs/0001/r2.pack"})
	s.Admit(Request{Op: OpWrite, Session: a.Session, Data: []byte("abc")})
	if b := s.Admit(Request{Op: OpCommit, Session: a.Session, Offset: 3, Sum: 1}); b.Kind != OpAbort {
		t.Fatalf("bad sum: %+v", b)
	}
	if s.Sessions() != 0 {
		t.Fatalf("%d sessions left", s.Sessions())
	}

	// Bounded, and idle uploads expire.
	for i := 0; i < MaxSessions; i++ {
		if a := s.Admit(Request{Op: OpCreate, Name: "jobs/j/packs/0002/x.pack"}); a.Kind != OpCreate {
			t.Fatalf("create %d: %+v", i, a)
		}
	}
	if a := s.Admit(Request{Op: OpCreate, Name: "jobs/j/packs/0002/x.pack"}); a.Reply == nil || a.Reply.Status != StatusBusy {
		t.Fatalf("past the bound: %+v", a)
	}
	var gone []uint64
	for i := 0; i < IdleTicks; i++ {
		gone = append(gone, s.Tick()...)
	}
	if len(gone) != MaxSessions || s.Sessions() != 0 {
		t.Fatalf("expired %d, left %d", len(gone), s.Sessions())
	}
}

func TestUploadRefused(t *testing.T) {
	u := &Upload{Session: 1}
	w, _ := u.Write([]byte("x"))
	if err := u.Acked(w.Offset, Reply{Status: StatusFailed, Err: "disk full"}); !errors.Is(err, ErrRefused) || u.Size() != 0 {
		t.Fatalf("%v, size %d", err, u.Size())
	}
	if _, err := u.Write(make([]byte, MaxData+1)); err == nil {
		t.Fatal("oversized write accepted")
	}
	if _, err := u.Write(nil); err == nil {
		t.Fatal("empty write accepted")
	}
}

// TestUploadWindow: an upload has at most Window pieces in flight; their
// replies may come in any order, the acknowledged size is the prefix with
// no piece missing; a repeated reply changes nothing; a piece is sent at
// most MaxSends times; the commit waits for every reply and carries the
// CRC32C of all the pieces in their order. Driven against a Server: a
// piece sent again whose bytes the server has (the pieces after it
// arrived) is answered OK and not written twice; a gap is refused and
// ends the upload; the commit's size and checksum match.
func TestUploadWindow(t *testing.T) {
	s := NewServer("j")
	a := s.Admit(Request{Op: OpCreate, Name: "jobs/j/packs/0001/r0.pack"})
	s.Done(a, nil)
	u := &Upload{Session: a.Session}
	var data []byte
	var reqs []Request
	for i := 0; i < Window; i++ {
		p := bytes.Repeat([]byte{byte(i + 1)}, 1000+i)
		r, err := u.Write(p)
		if err != nil {
			t.Fatal(err)
		}
		if r.Offset != int64(len(data)) {
			t.Fatalf("piece %d at %d, want %d", i, r.Offset, len(data))
		}
		data = append(data, p...)
		reqs = append(reqs, r)
	}
	if _, err := u.Write([]byte("x")); !errors.Is(err, ErrWindowFull) {
		t.Fatalf("piece %d of a window of %d: %v", Window+1, Window, err)
	}
	if !u.Full() || u.InFlight() != Window || u.Sent() != int64(len(data)) || u.Size() != 0 {
		t.Fatalf("in flight %d, sent %d, size %d", u.InFlight(), u.Sent(), u.Size())
	}
	if _, err := u.Commit(); err == nil {
		t.Fatal("commit with pieces in flight")
	}
	// The server takes them in order.
	for i, r := range reqs {
		if a := s.Admit(r); a.Kind != OpWrite {
			t.Fatalf("piece %d: %+v", i, a)
		}
	}
	// A piece sent again whose bytes the server has: OK, nothing done.
	for _, r := range []Request{reqs[1], reqs[Window-1], reqs[0]} {
		if a := s.Admit(r); a.Kind != 0 || a.Reply == nil || a.Reply.Status != StatusOK {
			t.Fatalf("piece at %d again: %+v", r.Offset, a)
		}
	}
	// Replies out of order: the acknowledged size is the prefix.
	if err := u.Acked(reqs[2].Offset, Reply{}); err != nil || u.Size() != 0 || u.InFlight() != Window-1 || !u.Full() {
		t.Fatalf("piece 2 first: %v, size %d, in flight %d, full %v", err, u.Size(), u.InFlight(), u.Full())
	}
	if _, err := u.Write([]byte("x")); !errors.Is(err, ErrWindowFull) {
		t.Fatalf("a later piece's reply made room: %v", err)
	}
	if err := u.Acked(reqs[0].Offset, Reply{}); err != nil || u.Size() != reqs[1].Offset || u.Full() {
		t.Fatalf("piece 0: %v, size %d, want %d", err, u.Size(), reqs[1].Offset)
	}
	if err := u.Acked(reqs[0].Offset, Reply{}); err != nil || u.Size() != reqs[1].Offset {
		t.Fatalf("piece 0's reply again: %v, size %d", err, u.Size())
	}
	if err := u.Acked(reqs[1].Offset, Reply{}); err != nil || u.Size() != reqs[3].Offset {
		t.Fatalf("piece 1: %v, size %d, want %d (past the acknowledged piece 2)", err, u.Size(), reqs[3].Offset)
	}
	if err := u.Acked(int64(len(data))+5, Reply{}); err == nil {
		t.Fatal("a reply to a piece never sent accepted")
	}
	// Resends are bounded; the window has room once a piece is acknowledged.
	for i := 1; i < MaxSends; i++ {
		if err := u.Resent(reqs[3].Offset); err != nil {
			t.Fatalf("send %d: %v", i+1, err)
		}
	}
	if err := u.Resent(reqs[3].Offset); err == nil {
		t.Fatalf("piece sent %d times", MaxSends+1)
	}
	if err := u.Resent(reqs[0].Offset); err == nil {
		t.Fatal("resend of an acknowledged piece")
	}
	last, err := u.Write([]byte("tail"))
	if err != nil {
		t.Fatal(err)
	}
	data = append(data, "tail"...)
	if a := s.Admit(last); a.Kind != OpWrite {
		t.Fatalf("tail: %+v", a)
	}
	for _, r := range append(reqs[3:], last) {
		if err := u.Acked(r.Offset, Reply{}); err != nil {
			t.Fatal(err)
		}
	}
	c, err := u.Commit()
	if err != nil || c.Offset != int64(len(data)) || c.Sum != Checksum(0, data) || u.Size() != int64(len(data)) {
		t.Fatalf("commit %+v, %v; want %d bytes, CRC32C %08x", c, err, len(data), Checksum(0, data))
	}
	if a := s.Admit(c); a.Kind != OpCommit {
		t.Fatalf("server refused the commit: %+v", a)
	}

	// A gap (a piece lost on the way, the next one arrived) is refused and
	// ends the upload there; the client ends it on the refusal.
	a = s.Admit(Request{Op: OpCreate, Name: "jobs/j/packs/0001/r1.pack"})
	s.Done(a, nil)
	u = &Upload{Session: a.Session}
	r0, _ := u.Write([]byte("abc"))
	r1, _ := u.Write([]byte("def"))
	r2, _ := u.Write([]byte("ghi"))
	if a := s.Admit(r0); a.Kind != OpWrite {
		t.Fatalf("first piece: %+v", a)
	}
	b := s.Admit(r2)
	if b.Kind != OpAbort || b.Reply == nil || b.Reply.Status != StatusInvalid {
		t.Fatalf("gap: %+v", b)
	}
	if a := s.Admit(r1); a.Reply == nil || a.Reply.Status != StatusUnknown {
		t.Fatalf("after the gap: %+v", a)
	}
	if err := u.Acked(r2.Offset, *b.Reply); !errors.Is(err, ErrRefused) {
		t.Fatalf("refusal: %v", err)
	}
	if s.Sessions() != 0 {
		t.Fatalf("%d sessions left", s.Sessions())
	}
}

func TestBucket(t *testing.T) {
	b := NewBucket(1) // 1 MiB/s, burst 256 KiB
	t0 := time.Unix(0, 0)
	if d := b.Take(t0, MaxData); d != 0 {
		t.Fatalf("burst: wait %v", d)
	}
	if d := b.Take(t0, 1<<20); d < 900*time.Millisecond || d > 1100*time.Millisecond {
		t.Fatalf("1 MiB past the burst: wait %v, want about 1 s", d)
	}
	if d := (*Bucket)(nil).Take(t0, 1<<30); d != 0 {
		t.Fatal("nil bucket waits")
	}
	if d := NewBucket(0).Take(t0, 1<<30); d != 0 {
		t.Fatal("unbounded bucket waits")
	}
}
