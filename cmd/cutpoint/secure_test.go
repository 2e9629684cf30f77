package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cutpoint/cutpoint/ckpt"
)

// The probes of a local attacker (docs/operations.md, Security).

// TestRunRefusesPlantedJobLink: another user of a shared store plants
// jobs/<name> as a link to a directory of theirs (or to one of the
// victim's): the run refuses, naming the link, and writes nothing there.
func TestRunRefusesPlantedJobLink(t *testing.T) {
	store := t.TempDir()
	elsewhere := t.TempDir()
	if err := os.MkdirAll(filepath.Join(store, "jobs"), 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(store, "jobs", "heat")
	if err := os.Symlink(elsewhere, link); err != nil {
		t.Fatal(err)
	}
	r := runCmd(t, cutpoint(t, nil, "run", "--store", store, "--job", "heat", "--ranks", "2", "--size", "32", "--steps", "300",
		"--every-steps", "100", "--heartbeat-interval", "100ms"))
	if r.code == 0 {
		t.Fatalf("run through a planted link succeeded\nstderr:\n%s", tail(r.stderr, 20))
	}
	if !strings.Contains(r.stderr, link) || !strings.Contains(r.stderr, "symbolic link") {
		t.Fatalf("exit %d; the error does not name the link %s:\n%s", r.code, link, tail(r.stderr, 20))
	}
	if es, _ := os.ReadDir(elsewhere); len(es) != 0 {
		t.Fatalf("the run wrote through the link: %v", es)
	}
}

// plantAtPack replaces rank 1's pack of cut 2 with what plant makes there.
func plantAtPack(t *testing.T, dir string, plant func(pack, saved string) error) string {
	t.Helper()
	ctx := context.Background()
	s, err := ckpt.OpenDir(ctx, dir, ckpt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cut, err := s.LoadCut(ctx, "heat", 2)
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	name := cut.Shards[1].Pack()
	pack := filepath.Join(dir, filepath.FromSlash(name))
	saved := filepath.Join(t.TempDir(), "saved.pack")
	if err := os.Rename(pack, saved); err != nil {
		t.Fatal(err)
	}
	if err := plant(pack, saved); err != nil {
		t.Fatal(err)
	}
	return name
}

// verifyPlanted runs verify in a process of its own, bounded, and wants
// damage reported (exit 3) naming the pack.
func verifyPlanted(t *testing.T, dir, name, what string) {
	t.Helper()
	start := time.Now()
	cmd := cutpoint(t, nil, "verify", "--store", dir)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// A blocked open never ends; a process start on a loaded machine
	// takes a fraction of this bound.
	timer := time.AfterFunc(10*time.Second, func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	cmd.Wait()
	if !timer.Stop() {
		t.Fatalf("verify with a %s for a pack did not finish in 10 s (blocked)", what)
	}
	took := time.Since(start)
	r := result{out.String(), errb.String(), cmd.ProcessState.ExitCode()}
	if r.code != exitDamaged {
		t.Fatalf("verify with a %s for a pack: exit %d, want %d\n%s%s", what, r.code, exitDamaged, r.stdout, r.stderr)
	}
	all := r.stdout + r.stderr
	for _, want := range []string{"DAMAGED job heat cut 2 rank 1", name, what} {
		if !strings.Contains(all, want) {
			t.Errorf("verify output lacks %q:\n%s", want, all)
		}
	}
	t.Logf("verify took %v", took)
}

// TestVerifyFIFOPack: a FIFO in place of a pack would block a reader
// forever; verify reports it as damage at once.
func TestVerifyFIFOPack(t *testing.T) {
	dir := t.TempDir()
	makeStore(t, dir, "heat", 3)
	name := plantAtPack(t, dir, func(pack, _ string) error { return syscall.Mkfifo(pack, 0o666) })
	verifyPlanted(t, dir, name, "not a regular file")
}

// TestVerifyLinkedPack: a link to a pack, even to its own good content,
// is not followed.
func TestVerifyLinkedPack(t *testing.T) {
	dir := t.TempDir()
	makeStore(t, dir, "heat", 3)
	name := plantAtPack(t, dir, func(pack, saved string) error { return os.Symlink(saved, pack) })
	verifyPlanted(t, dir, name, "symbolic link")
}
