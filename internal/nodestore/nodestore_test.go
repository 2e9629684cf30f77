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
	if err := u.Acked(w1, Reply{}); err != nil {
		t.Fatal(err)
	}
	if a := s.Admit(w1); a.Kind != 0 || a.Reply.Status != StatusOK {
		t.Fatalf("repeated write: %+v", a)
	}
	c := u.Commit()
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
	if err := u.Acked(w, Reply{Status: StatusFailed, Err: "disk full"}); !errors.Is(err, ErrRefused) || u.Size() != 0 {
		t.Fatalf("%v, size %d", err, u.Size())
	}
	if _, err := u.Write(make([]byte, MaxData+1)); err == nil {
		t.Fatal("oversized write accepted")
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
