package ckpt

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestCommitChecks(t *testing.T) {
	s, b := newMemStore(t, testOptions())
	const job = "cc"
	var refs []ShardRef
	for r := range 3 {
		refs = append(refs, writeShard(t, s, ShardSpec{Job: job, Epoch: 5, Rank: r, Incarnation: 1, Step: 50}, makeRank(5, r, 10000)))
	}
	spec := CutSpec{Job: job, Epoch: 5, Step: 50, World: 3, Incarnation: 1, Shards: refs}
	bad := map[string]func(CutSpec) CutSpec{
		"too few shards":    func(c CutSpec) CutSpec { c.Shards = c.Shards[:2]; return c },
		"world mismatch":    func(c CutSpec) CutSpec { c.World = 4; return c },
		"ranks swapped":     func(c CutSpec) CutSpec { c.Shards = []ShardRef{refs[1], refs[0], refs[2]}; return c },
		"step mismatch":     func(c CutSpec) CutSpec { c.Step = 51; return c },
		"incarnation":       func(c CutSpec) CutSpec { c.Incarnation = 2; return c },
		"epoch zero":        func(c CutSpec) CutSpec { c.Epoch = 0; return c },
		"bad job":           func(c CutSpec) CutSpec { c.Job = "a/b"; return c },
		"meta key too long": func(c CutSpec) CutSpec { c.Meta = map[string]string{strings.Repeat("k", 65): "v"}; return c },
		"wrong index hash": func(c CutSpec) CutSpec {
			sh := append([]ShardRef(nil), c.Shards...)
			sh[1].IndexHash[0] ^= 1
			c.Shards = sh
			return c
		},
		"wrong nonce (pack missing)": func(c CutSpec) CutSpec {
			sh := append([]ShardRef(nil), c.Shards...)
			sh[2].Nonce[0] ^= 1
			c.Shards = sh
			return c
		},
		"wrong index length": func(c CutSpec) CutSpec {
			sh := append([]ShardRef(nil), c.Shards...)
			sh[0].IndexLen--
			c.Shards = sh
			return c
		},
	}
	for name, mutate := range bad {
		if _, err := s.Commit(bg, mutate(spec)); err == nil {
			t.Errorf("%s: Commit succeeded", name)
		}
	}
	if cuts, _ := s.List(bg, job); len(cuts) != 0 {
		t.Fatalf("a refused commit left a cut: %+v", cuts)
	}
	info, err := s.Commit(bg, spec)
	if err != nil {
		t.Fatal(err)
	}
	if info.World != 3 || info.Epoch != 5 {
		t.Fatalf("info %+v", info)
	}
	if _, err := s.Commit(bg, spec); !errors.Is(err, ErrExist) {
		t.Fatalf("second Commit = %v, want ErrExist", err)
	}
	older := writeShard(t, s, ShardSpec{Job: job, Epoch: 4, Rank: 0, Incarnation: 1, Step: 40}, makeRank(4, 0, 100))
	_, err = s.Commit(bg, CutSpec{Job: job, Epoch: 4, Step: 40, World: 1, Incarnation: 1, Shards: []ShardRef{older}})
	if !errors.Is(err, ErrStaleEpoch) {
		t.Fatalf("Commit of an older epoch = %v, want ErrStaleEpoch", err)
	}
	// Only the config, the manifest and packs exist: no temporary files.
	for _, f := range b.Files() {
		if strings.Contains(f, ".tmp-") {
			t.Errorf("temporary file left: %s", f)
		}
	}
}

func TestListAndJobs(t *testing.T) {
	var now time.Time = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	opts := testOptions()
	opts.Now = func() time.Time { return now }
	s, _ := newMemStore(t, opts)
	if jobs, err := s.Jobs(bg); err != nil || len(jobs) != 0 {
		t.Fatalf("Jobs on an empty store = %v, %v", jobs, err)
	}
	if cuts, err := s.List(bg, "none"); err != nil || len(cuts) != 0 {
		t.Fatalf("List of an unknown job = %v, %v", cuts, err)
	}
	for _, e := range []uint64{2, 10, 3} {
		if e == 3 {
			// Epoch 3 after 10 is stale: write it to another job.
			writeCut(t, s, "other", e, 1, 1000, 0)
			continue
		}
		writeCut(t, s, "main", e, 2, 1000, 0)
		now = now.Add(time.Minute)
	}
	jobs, err := s.Jobs(bg)
	if err != nil || len(jobs) != 2 || jobs[0] != "main" || jobs[1] != "other" {
		t.Fatalf("Jobs = %v, %v", jobs, err)
	}
	cuts, err := s.List(bg, "main")
	if err != nil || len(cuts) != 2 || cuts[0].Epoch != 2 || cuts[1].Epoch != 10 {
		t.Fatalf("List = %+v, %v", cuts, err)
	}
	if !cuts[0].Time.Equal(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)) || cuts[1].Time.Sub(cuts[0].Time) != time.Minute {
		t.Fatalf("times %v %v", cuts[0].Time, cuts[1].Time)
	}
	c, err := s.LoadCut(bg, "main", 10)
	if err != nil || len(c.Shards) != 2 || c.Shards[1].Rank != 1 {
		t.Fatalf("LoadCut = %+v, %v", c, err)
	}
	if _, err := s.LoadCut(bg, "main", 11); !errors.Is(err, ErrNotFound) {
		t.Fatalf("LoadCut(missing) = %v", err)
	}
	if _, err := s.OpenShard(bg, "main", 10, 2); !errors.Is(err, ErrNotFound) {
		t.Fatalf("OpenShard(rank 2 of 2) = %v", err)
	}
}

func TestJobFiles(t *testing.T) {
	s, _ := newMemStore(t, testOptions())
	const job = "coord"
	if _, err := s.GetJobFile(bg, job, "job.json"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetJobFile(missing) = %v", err)
	}
	if err := s.PutJobFile(bg, job, "job.json", []byte(`{"g":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.PutJobFile(bg, job, "job.json", []byte(`{"g":2}`)); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetJobFile(bg, job, "job.json"); err != nil || string(got) != `{"g":2}` {
		t.Fatalf("GetJobFile = %q, %v", got, err)
	}
	if err := s.CreateJobFile(bg, job, "gen-000001", []byte("pid 1")); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateJobFile(bg, job, "gen-000001", []byte("pid 2")); !errors.Is(err, ErrExist) {
		t.Fatalf("second claim = %v, want ErrExist", err)
	}
	s.CreateJobFile(bg, job, "gen-000002", nil)
	names, err := s.ListJobFiles(bg, job, "gen-")
	if err != nil || len(names) != 2 || names[1] != "gen-000002" {
		t.Fatalf("ListJobFiles = %v, %v", names, err)
	}
	for _, bad := range []string{"cuts", "packs", "../x", "a/b", ".hidden", ""} {
		if err := s.PutJobFile(bg, job, bad, nil); err == nil {
			t.Errorf("PutJobFile(%q) succeeded", bad)
		}
	}
	if err := s.PutJobFile(bg, job, "big", make([]byte, MaxJobFileLen+1)); err == nil {
		t.Error("oversized job file accepted")
	}
	// Job files do not disturb the cuts.
	writeCut(t, s, job, 1, 1, 100, 0)
	if cuts, err := s.List(bg, job); err != nil || len(cuts) != 1 {
		t.Fatalf("List = %v, %v", cuts, err)
	}
}

func TestShardRefBinary(t *testing.T) {
	s, _ := newMemStore(t, testOptions())
	ref := writeShard(t, s, ShardSpec{Job: "a-very-long-job-name.with_all-allowed.chars-0123456789abcdefghij", Epoch: 1 << 40, Rank: 1023, Incarnation: 77, Step: 1 << 50, Base: nil}, makeRank(1, 1, 1000))
	b, err := ref.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 300 {
		t.Fatalf("ShardRef encodes to %d bytes", len(b))
	}
	got, err := UnmarshalShardRef(b)
	if err != nil || got != ref {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	for i := range b {
		c := append([]byte(nil), b...)
		c[i] ^= 0x10
		if _, err := UnmarshalShardRef(c); err == nil {
			t.Fatalf("flipped byte %d accepted", i)
		}
	}
	for n := 0; n < len(b); n++ {
		if _, err := UnmarshalShardRef(b[:n]); err == nil {
			t.Fatalf("truncation to %d accepted", n)
		}
	}
	if _, err := (ShardRef{}).MarshalBinary(); err == nil {
		t.Fatal("zero ShardRef marshaled")
	}
}
