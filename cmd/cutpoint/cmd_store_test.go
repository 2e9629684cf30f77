package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cutpoint/cutpoint/ckpt"
	"github.com/cutpoint/cutpoint/internal/datagen"
)

// runCLI runs the command line as main does, with captured streams.
func runCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	g := &GlobalOptions{Stdout: &out, Stderr: &errb}
	err := execute(context.Background(), g, newRootCommand(g), args)
	if err != nil {
		fmt.Fprintf(&errb, "cutpoint: %v\n", err)
	}
	return out.String(), errb.String(), exitCode(err)
}

// makeStore writes cuts 1..n of job (2 ranks, incremental after the first)
// with the engine, as a run would.
func makeStore(t *testing.T, dir, job string, n int) {
	t.Helper()
	ctx := context.Background()
	s, err := ckpt.OpenDir(ctx, dir, ckpt.Options{Create: true, ChunkSize: 8192})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for e := uint64(1); e <= uint64(n); e++ {
		var refs []ckpt.ShardRef
		for r := range 2 {
			spec := ckpt.ShardSpec{Job: job, Epoch: e, Rank: r, Incarnation: 1, Step: int64(10 * e)}
			if e > 1 {
				spec.Base = &ckpt.BaseRef{Epoch: e - 1}
			}
			w, err := s.NewShard(ctx, spec)
			if err != nil {
				t.Fatal(err)
			}
			// u changes every cut; w never does (reused).
			w.AddBuffer(ctx, "u", ckpt.BytesSource(datagen.New(datagen.Heat, 100000, e*10+uint64(r)), 8))
			w.AddBuffer(ctx, "w", ckpt.BytesSource(datagen.New(datagen.Weights, 50000, uint64(r)), 4))
			w.AddChannel(ctx, ckpt.ChannelState{From: 1 - r, FirstSeq: 5, Messages: [][]byte{[]byte("halo")}})
			ref, err := w.Close(ctx)
			if err != nil {
				t.Fatal(err)
			}
			refs = append(refs, ref)
		}
		if _, err := s.Commit(ctx, ckpt.CutSpec{Job: job, Epoch: e, Step: int64(10 * e), World: 2, Incarnation: 1, Shards: refs,
			Meta: map[string]string{"goarch": "amd64"}}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestLs(t *testing.T) {
	dir := t.TempDir()
	makeStore(t, dir, "heat", 3)
	out, errOut, code := runCLI(t, "ls", "--store", dir, "--job", "heat")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "EPOCH") {
		t.Fatalf("ls output:\n%s", out)
	}
	for i, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) != 8 || f[0] != strconv.Itoa(i+1) || f[1] != strconv.Itoa(10*(i+1)) || f[2] != "2" || f[7] != "shared" {
			t.Fatalf("line %q: want epoch, step, ranks, raw, stored, ratio, time, levels (shared)", l)
		}
		raw, _ := strconv.ParseInt(f[3], 10, 64)
		stored, _ := strconv.ParseInt(f[4], 10, 64)
		if raw != 2*(100000+50000+4) || stored <= 0 || stored > raw {
			t.Fatalf("line %q: raw %d stored %d", l, raw, stored)
		}
	}
	// The only job is the default.
	if out2, _, _ := runCLI(t, "ls", "--store", dir); out2 != out {
		t.Fatalf("ls without --job differs:\n%s", out2)
	}
	// A second job: sections.
	makeStore(t, dir, "other", 1)
	out, _, code = runCLI(t, "ls", "--store", dir)
	if code != 0 || !strings.Contains(out, "job heat\n") || !strings.Contains(out, "job other\n") {
		t.Fatalf("ls of two jobs (exit %d):\n%s", code, out)
	}
}

func TestStoreCommandErrors(t *testing.T) {
	dir := t.TempDir()
	makeStore(t, dir, "heat", 1)
	missing := filepath.Join(dir, "no-such-store")
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"ls", "--store", missing}, exitUsage, missing},
		{[]string{"ls"}, exitUsage, "--store"},
		{[]string{"ls", "--store", dir, "--job", "nope"}, exitUsage, `no job "nope"`},
		{[]string{"verify", "--store", missing}, exitUsage, missing},
		{[]string{"verify", "--store", dir, "--cut", "9"}, exitUsage, "no committed cut 9"},
		{[]string{"gc", "--store", dir}, exitUsage, "--keep"},
		{[]string{"gc", "--store", dir, "--keep", "0"}, exitUsage, "--keep"},
		{[]string{"inspect", "--store", dir, "--cut", "7"}, exitUsage, "no committed cut 7"},
		{[]string{"inspect", "--store", t.TempDir()}, exitUsage, "no cutpoint store"},
	} {
		_, errOut, code := runCLI(t, c.args...)
		if code != c.code || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d mentioning %q", c.args, code, errOut, c.code, c.want)
		}
	}
}

func TestVerify(t *testing.T) {
	dir := t.TempDir()
	makeStore(t, dir, "heat", 3)
	out, errOut, code := runCLI(t, "verify", "--store", dir)
	if code != 0 || !strings.Contains(out, "job heat: 3 cuts checked") || !strings.HasSuffix(strings.TrimSpace(out), "ok") {
		t.Fatalf("verify of a good store: exit %d\n%s%s", code, out, errOut)
	}
	// Damage a chunk of rank 1's pack in cut 3: flip a byte in the middle
	// of the chunk area.
	ctx := context.Background()
	s, _ := ckpt.OpenDir(ctx, dir, ckpt.Options{})
	cut, err := s.LoadCut(ctx, "heat", 3)
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	pack := filepath.Join(dir, filepath.FromSlash(cut.Shards[1].Pack()))
	data, err := os.ReadFile(pack)
	if err != nil {
		t.Fatal(err)
	}
	data[100] ^= 0x20
	if err := os.WriteFile(pack, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = runCLI(t, "verify", "--store", dir, "--job", "heat")
	if code != exitDamaged {
		t.Fatalf("verify of a damaged store: exit %d, want %d\n%s%s", code, exitDamaged, out, errOut)
	}
	for _, want := range []string{"DAMAGED job heat cut 3 rank 1", "chunk", cut.Shards[1].Pack(), "cuts 3"} {
		if !strings.Contains(out+errOut, want) {
			t.Errorf("output lacks %q:\n%s%s", want, out, errOut)
		}
	}
	if !strings.Contains(errOut, "verification found damage in job heat cuts 3") {
		t.Errorf("error message: %s", errOut)
	}
	// The other cuts are fine.
	if _, _, code := runCLI(t, "verify", "--store", dir, "--cut", "2"); code != 0 {
		t.Fatalf("verify --cut 2: exit %d", code)
	}
}

func TestGcCommand(t *testing.T) {
	dir := t.TempDir()
	makeStore(t, dir, "heat", 4)
	out, errOut, code := runCLI(t, "gc", "--store", dir, "--keep", "2", "--dry-run")
	if code != 0 || !strings.Contains(out, "would delete cuts 1, 2") {
		t.Fatalf("gc --dry-run: exit %d\n%s%s", code, out, errOut)
	}
	if lsOut, _, _ := runCLI(t, "ls", "--store", dir); strings.Count(lsOut, "\n") != 5 {
		t.Fatalf("dry run deleted cuts:\n%s", lsOut)
	}
	out, errOut, code = runCLI(t, "gc", "--store", dir, "--job", "heat", "--keep", "2")
	if code != 0 || !strings.Contains(out, "kept cuts 3, 4; deleted cuts 1, 2") {
		t.Fatalf("gc: exit %d\n%s%s", code, out, errOut)
	}
	lsOut, _, _ := runCLI(t, "ls", "--store", dir)
	lines := strings.Split(strings.TrimSpace(lsOut), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[1], "3 ") || !strings.HasPrefix(lines[2], "4 ") {
		t.Fatalf("ls after gc:\n%s", lsOut)
	}
	// The kept cuts reuse chunks of the deleted ones and still verify.
	if out, errOut, code := runCLI(t, "verify", "--store", dir); code != 0 {
		t.Fatalf("verify after gc: exit %d\n%s%s", code, out, errOut)
	}
}

func TestInspect(t *testing.T) {
	dir := t.TempDir()
	makeStore(t, dir, "heat", 2)
	out, errOut, code := runCLI(t, "inspect", "--store", dir, "--cut", "2")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"job heat cut 2: step 20, 2 ranks", "chunk hash xxh3\n", "meta: goarch=amd64", "RANK", "REUSED", "DELTA", "channel from 1 (1 messages)"} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, out)
		}
	}
	// The DELTA column is the store's count of delta+shuffle chunks.
	s, err := ckpt.OpenDir(context.Background(), dir, ckpt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	d, err := s.Inspect(context.Background(), "heat", 2)
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	delta := map[string]string{}
	for _, b := range d.Ranks[0].Buffers {
		delta[b.Name] = fmt.Sprint(b.DeltaChunks())
	}
	// Buffer w never changes: in cut 2 all its chunks are reused; u is new.
	rows := 0
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) < 11 || f[0] != "0" {
			continue
		}
		switch f[1] {
		case "u":
			if f[5] == "0" || f[6] != "0" {
				t.Errorf("u: new %s reused %s, want all new", f[5], f[6])
			}
		case "w":
			if f[5] != "0" || f[6] != f[4] {
				t.Errorf("w: new %s reused %s of %s, want all reused", f[5], f[6], f[4])
			}
		default:
			continue
		}
		rows++
		if f[7] != delta[f[1]] {
			t.Errorf("%s: delta %s, the store says %s", f[1], f[7], delta[f[1]])
		}
	}
	if rows != 2 {
		t.Errorf("%d rows of rank 0 for u and w:\n%s", rows, out)
	}
	// Without --cut: the latest.
	if latest, _, _ := runCLI(t, "inspect", "--store", dir); latest != out {
		t.Fatalf("inspect without --cut:\n%s", latest)
	}
}
