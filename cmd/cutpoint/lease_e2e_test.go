package main

// End-to-end tests of job ownership: real `cutpoint run` processes, real
// SIGKILLs, the lease files in a real store.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cutpoint/cutpoint/ckpt"
)

// startJob starts `cutpoint run` in the background, its stdout and stderr
// in syncBufs.
func startJob(t *testing.T, args ...string) (*exec.Cmd, *syncBuf, *syncBuf) {
	t.Helper()
	cmd := cutpoint(t, nil, args...)
	var outb, errb syncBuf
	cmd.Stdout, cmd.Stderr = &outb, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The test waits for it (and may do so on another goroutine): the
	// cleanup only makes sure that nothing of it outlives the test.
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	return cmd, &outb, &errb
}

func leaseInfo(t *testing.T, store, job string) ckpt.LeaseInfo {
	t.Helper()
	s, err := ckpt.OpenDir(context.Background(), store, ckpt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	li, err := s.InspectLease(context.Background(), job)
	if err != nil {
		t.Fatal(err)
	}
	return li
}

// TestRestoreWhileRunning: a second coordinator for a running job, whether
// --restore or a new run, and gc and rm, are refused with exit 2 naming the
// owner's host and pid; the running job is not disturbed.
func TestRestoreWhileRunning(t *testing.T) {
	want := reference(t)
	store := filepath.Join(t.TempDir(), "store")
	args := append([]string{"run", "--store", store, "--interval", "0", "--every-steps", "100", "--keep", "1"}, job...)
	first, outb, errb := startJob(t, args...)
	waitCut(t, store, "heat2d", 1, first, errb)
	exited := make(chan error, 1)
	go func() { exited <- first.Wait() }()
	host, _ := os.Hostname()
	owner := []string{"host " + host, fmt.Sprintf("pid %d", first.Process.Pid)}
	for _, c := range [][]string{
		append(args, "--restore"),
		args,
		{"gc", "--store", store, "--job", "heat2d", "--keep", "1"},
		{"rm", "--store", store, "--job", "heat2d"},
	} {
		r := runCmd(t, cutpoint(t, nil, c...))
		select {
		case <-exited:
			t.Fatalf("the job ended before the check of %v was done: make it longer", c)
		default:
		}
		if r.code != exitUsage {
			t.Fatalf("%s while the job runs: exit %d, want 2\n%s", c[0], r.code, tail(r.stderr, 20))
		}
		for _, w := range owner {
			if !strings.Contains(r.stderr, w) {
				t.Fatalf("%s's refusal does not name %q:\n%s", c[0], w, tail(r.stderr, 10))
			}
		}
	}
	if err := <-exited; err != nil {
		t.Fatalf("the running job failed: %v\n%s", err, tail(errb.String(), 40))
	}
	if got := (result{stdout: outb.String()}).digest(t); got != want {
		t.Fatalf("digest of the job that was refused a second owner %s, undisturbed %s", got, want)
	}
	if strings.Contains(errb.String(), "lease lost") {
		t.Fatalf("the running job lost its lease:\n%s", tail(errb.String(), 20))
	}
	verifyStore(t, store)
	if li := leaseInfo(t, store, "heat2d"); li.State != ckpt.LeaseReleased {
		t.Fatalf("lease after a clean end: %v, want released", li.State)
	}
}

// TestTwoRestoresAtOnce: after a whole-job SIGKILL, two --restore start at
// the same moment. Both wait for the dead coordinator's lease to expire
// (it is not taken over before), exactly one proceeds and ends with the
// undisturbed digest, the other is refused naming the winner.
func TestTwoRestoresAtOnce(t *testing.T) {
	want := reference(t)
	store := filepath.Join(t.TempDir(), "store")
	args := append([]string{"run", "--store", store, "--interval", "0", "--every-steps", "100"}, job...)
	first, _, errb := startJob(t, args...)
	waitCut(t, store, "heat2d", 1, first, errb)
	syscall.Kill(-first.Process.Pid, syscall.SIGKILL)
	first.Wait()
	dead := leaseInfo(t, store, "heat2d")
	if dead.State != ckpt.LeaseLive || dead.PID != first.Process.Pid {
		t.Fatalf("lease of the killed job: %+v", dead)
	}
	type out struct {
		r       result
		started time.Time // when "coordinator started" was logged
		pid     int
	}
	outs := make([]out, 2)
	restore := append(append([]string{}, args...), "--restore") // one copy, read by both
	var wg sync.WaitGroup
	for i := range outs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := cutpoint(t, nil, restore...)
			var stdout, stderr syncBuf
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Start(); err != nil {
				t.Error(err)
				return
			}
			outs[i].pid = cmd.Process.Pid
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			limit := time.After(3 * time.Minute)
			for {
				select {
				case <-done:
					outs[i].r = result{stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()}
					return
				case <-time.After(10 * time.Millisecond):
					if outs[i].started.IsZero() && strings.Contains(stderr.String(), "coordinator started") {
						outs[i].started = time.Now()
					}
				case <-limit:
					syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				}
			}
		}()
	}
	wg.Wait()
	sort.Slice(outs, func(i, j int) bool { return outs[i].r.code < outs[j].r.code })
	win, lose := outs[0], outs[1]
	if win.r.code != 0 || lose.r.code != exitUsage {
		t.Fatalf("exit codes %d and %d, want 0 and 2\nfirst:\n%s\nsecond:\n%s", win.r.code, lose.r.code,
			tail(win.r.stderr, 30), tail(lose.r.stderr, 30))
	}
	if got := win.r.digest(t); got != want {
		t.Fatalf("restored digest %s, undisturbed %s", got, want)
	}
	if !strings.Contains(lose.r.stderr, fmt.Sprintf("pid %d", win.pid)) {
		t.Fatalf("the refused restore does not name the winner (pid %d):\n%s", win.pid, tail(lose.r.stderr, 10))
	}
	if strings.Contains(lose.r.stderr, "coordinator started") {
		t.Fatalf("the refused restore started a coordinator:\n%s", tail(lose.r.stderr, 20))
	}
	if win.started.IsZero() || win.started.Before(dead.Expires) {
		t.Fatalf("the restore started at %v, before the dead lease expired at %v", win.started, dead.Expires)
	}
	if !strings.Contains(win.r.stderr, "waiting for it to expire") {
		t.Fatalf("the restore did not wait for the lease:\n%s", tail(win.r.stderr, 30))
	}
	verifyStore(t, store)
}

// TestRmAndCleanRun: a failed or finished job's name is freed by rm; run
// creates nothing in the store before its own checks pass.
func TestRmAndCleanRun(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	small := []string{"run", "--store", store, "--ranks", "2", "--size", "32", "--steps", "300", "--heartbeat-interval", "100ms",
		"--interval", "0", "--every-steps", "50", "--lease-ttl", "3s"}
	// Checks before the store: nothing is created.
	for _, c := range [][]string{
		append(append([]string{}, small...), "--", filepath.Join(dir, "no-such-executable")),
		append(append([]string{}, small...), "--metrics", "not an address"),
		append(append([]string{}, small...), "--lease-ttl", "1ms"),
	} {
		r := runCmd(t, cutpoint(t, nil, c...))
		if r.code != exitUsage {
			t.Fatalf("%v: exit %d, want 2\n%s", c[len(c)-2:], r.code, tail(r.stderr, 10))
		}
		if _, err := os.Stat(store); err == nil {
			t.Fatalf("%v created the store:\n%s", c[len(c)-2:], listTree(store))
		}
	}
	first := runOK(t, nil, small...)
	r := runCmd(t, cutpoint(t, nil, small...))
	if r.code != exitUsage || !strings.Contains(r.stderr, "cutpoint rm") {
		t.Fatalf("rerun of a job: exit %d\n%s", r.code, tail(r.stderr, 10))
	}
	if _, errs, code := runCLI(t, "rm", "--store", store); code != exitUsage || !strings.Contains(errs, "--job") {
		t.Fatalf("rm without --job: exit %d %s", code, errs)
	}
	if _, errs, code := runCLI(t, "rm", "--store", store, "--job", "other"); code != exitUsage {
		t.Fatalf("rm of a missing job: exit %d %s", code, errs)
	}
	out, errs, code := runCLI(t, "rm", "--store", store, "--job", "heat2d")
	if code != 0 || !strings.Contains(out, "removed") {
		t.Fatalf("rm: exit %d\n%s%s", code, out, errs)
	}
	if _, err := os.Stat(filepath.Join(store, "jobs", "heat2d")); !os.IsNotExist(err) {
		t.Fatalf("job folder left after rm:\n%s", listTree(store))
	}
	// The name is free: the same command runs again, to the same result.
	if again := runOK(t, nil, small...); again.digest(t) != first.digest(t) {
		t.Fatalf("digest of the rerun %s, first run %s", again.digest(t), first.digest(t))
	}
}

// TestVerifyJobFiles: verify checks the job record and the store's
// settings, not only the cuts.
func TestVerifyJobFiles(t *testing.T) {
	dir := t.TempDir()
	makeStore(t, dir, "heat", 2)
	rec := filepath.Join(dir, "jobs", "heat", "job.json")
	write := func(name, s string) {
		t.Helper()
		if err := os.WriteFile(name, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	good := `{"format":1,"job":"heat","world":2,"seq":3,"generation":1,"incarnation":1,"epoch_limit":1025}`
	write(rec, good)
	if out, errs, code := runCLI(t, "verify", "--store", dir); code != 0 {
		t.Fatalf("verify with a good job.json: exit %d\n%s%s", code, out, errs)
	}
	for _, c := range []struct{ name, data, want string }{
		{"garbage", "\x00\x01garbage", "job.json"},
		{"world mismatch", strings.Replace(good, `"world":2`, `"world":3`, 1), "world 3"},
		{"unknown key", strings.Replace(good, `"seq"`, `"sequence"`, 1), "job.json"},
		{"out of bounds", strings.Replace(good, `"generation":1`, `"generation":0`, 1), "generation"},
	} {
		write(rec, c.data)
		out, errs, code := runCLI(t, "verify", "--store", dir)
		if code != exitDamaged || !strings.Contains(out, c.want) {
			t.Fatalf("%s job.json: exit %d, want 3 naming %q\n%s%s", c.name, code, c.want, out, errs)
		}
	}
	write(rec, good)
	cfgFile := filepath.Join(dir, "cutpoint-store.json")
	orig, _ := os.ReadFile(cfgFile)
	var cfg map[string]any
	if err := json.Unmarshal(orig, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["chunk_size"] = 16384
	edited, _ := json.Marshal(cfg)
	write(cfgFile, string(edited))
	out, errs, code := runCLI(t, "verify", "--store", dir)
	if code != exitDamaged || !strings.Contains(out, "chunk_size 16384") || !strings.Contains(out, "cutpoint-store.json") {
		t.Fatalf("edited chunk_size: exit %d\n%s%s", code, out, errs)
	}
	write(cfgFile, `{"format":1,"chunk_size":`)
	out, errs, code = runCLI(t, "verify", "--store", dir)
	if code != exitDamaged || !strings.Contains(errs, "cutpoint-store.json") {
		t.Fatalf("damaged cutpoint-store.json: exit %d\n%s%s", code, out, errs)
	}
	write(cfgFile, string(orig))
	if _, _, code := runCLI(t, "verify", "--store", dir); code != 0 {
		t.Fatalf("verify after the repair: exit %d", code)
	}
}

// TestGcStoppedJobCommand: gc on a stopped job reclaims the packs of
// attempts no cut names and empty epoch folders at once.
func TestGcStoppedJobCommand(t *testing.T) {
	dir := t.TempDir()
	makeStore(t, dir, "heat", 2)
	ctx := context.Background()
	s, err := ckpt.OpenDir(ctx, dir, ckpt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := s.NewShard(ctx, ckpt.ShardSpec{Job: "heat", Epoch: 3, Rank: 0, Incarnation: 1, Step: 30})
	if err != nil {
		t.Fatal(err)
	}
	w.AddBuffer(ctx, "u", ckpt.BytesSource(make([]byte, 50000), 8))
	if _, err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	s.Close()
	for e := 4; e < 24; e++ {
		os.MkdirAll(filepath.Join(dir, "jobs", "heat", "packs", fmt.Sprintf("%020d", e)), 0o755)
	}
	out, errs, code := runCLI(t, "gc", "--store", dir, "--keep", "2")
	if code != 0 || !strings.Contains(out, "1 packs") || !strings.Contains(out, "20 empty epoch folders") || strings.Contains(out, "may be in progress") {
		t.Fatalf("gc of a stopped job: exit %d\n%s%s", code, out, errs)
	}
	ents, _ := os.ReadDir(filepath.Join(dir, "jobs", "heat", "packs"))
	if len(ents) != 2 {
		t.Fatalf("%d epoch folders left, want those of the 2 cuts", len(ents))
	}
	if _, _, code := runCLI(t, "verify", "--store", dir); code != 0 {
		t.Fatalf("verify after gc: exit %d", code)
	}
}

// TestCoordinatorStopsWhenTakenOver: another host takes the lease over (a
// higher lease instance appears, as after a takeover of a lease that
// looked expired there); the running coordinator notices at its next
// renewal and fails the job loudly instead of writing on.
func TestCoordinatorStopsWhenTakenOver(t *testing.T) {
	store := filepath.Join(t.TempDir(), "store")
	args := append([]string{"run", "--store", store, "--interval", "0", "--every-steps", "100"}, job...)
	cmd, _, errb := startJob(t, args...)
	waitCut(t, store, "heat2d", 1, cmd, errb)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	li := leaseInfo(t, store, "heat2d")
	now := time.Now().UTC()
	rec := fmt.Sprintf(`{"format":1,"job":"heat2d","instance":%d,"role":"coordinator","generation":99,"host":"elsewhere","pid":4242,"ttl_ms":60000,"renewed":%q,"expires":%q,"released":false}`,
		li.Instance+1, now.Format(time.RFC3339Nano), now.Add(time.Minute).Format(time.RFC3339Nano))
	s, err := ckpt.OpenDir(context.Background(), store, ckpt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateJobFile(context.Background(), "heat2d", fmt.Sprintf("lease-%08d", li.Instance+1), []byte(rec)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	took := time.Now()
	select {
	case err := <-exited:
		if code := cmd.ProcessState.ExitCode(); code != exitFailure {
			t.Fatalf("exit %d (%v), want 1\n%s", code, err, tail(errb.String(), 30))
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the coordinator ran on after its lease was taken over\n%s", tail(errb.String(), 30))
	}
	if d := time.Since(took); d > 5*time.Second {
		t.Fatalf("stopped %v after the takeover, want within a renewal period", d)
	}
	for _, w := range []string{"lease lost", "host elsewhere", "pid 4242"} {
		if !strings.Contains(errb.String(), w) {
			t.Fatalf("the failure does not say %q:\n%s", w, tail(errb.String(), 20))
		}
	}
	// What it committed before is intact, and the new owner's lease stands.
	verifyStore(t, store)
	if li2 := leaseInfo(t, store, "heat2d"); li2.Instance != li.Instance+1 || li2.Host != "elsewhere" {
		t.Fatalf("lease after the old coordinator stopped: %+v", li2)
	}
}
