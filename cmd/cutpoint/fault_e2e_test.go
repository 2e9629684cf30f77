package main

// End-to-end tests of faults at the edges: damaged cuts (fallback), ranks
// that fail deterministically, a full disk (cutting-stopped), a NATS
// server that goes down and comes back. Real processes, real files.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// packOf is rank's own pack of cut epoch.
func packOf(t *testing.T, store, jobName string, epoch uint64, rank int) string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(store, "jobs", jobName, "packs", fmt.Sprintf("%020d", epoch), fmt.Sprintf("r%06d-*.pack", rank)))
	if len(m) != 1 {
		t.Fatalf("pack of rank %d in cut %d: %v", rank, epoch, m)
	}
	return m[0]
}

// flipByte inverts one bit of the byte at off (negative: from the end).
func flipByte(t *testing.T, name string, off int64) {
	t.Helper()
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if off < 0 {
		st, _ := f.Stat()
		off += st.Size()
	}
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 1
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func copyTree(t *testing.T, from, to string) {
	t.Helper()
	if out, err := exec.Command("cp", "-a", from, to).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
}

func badCuts(t *testing.T, store, jobName string) []uint64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(store, "jobs", jobName, "job.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rec struct {
		BadCuts []uint64 `json:"bad_cuts"`
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	return rec.BadCuts
}

// TestRestoreFallsBackFromDamagedCut: the latest cut of a stopped job is
// damaged (a chunk, the pack trailer, a missing pack, the manifest); the
// restore names the damage, marks the cut bad and ends with the
// undisturbed digest from the cut before.
func TestRestoreFallsBackFromDamagedCut(t *testing.T) {
	want := reference(t)
	base := filepath.Join(t.TempDir(), "store")
	args := append([]string{"run", "--interval", "0", "--every-steps", "1500", "--keep", "3"}, job...)
	runOK(t, nil, append(args, "--store", base)...)
	cuts := committed(t, base, "heat2d")
	if len(cuts) < 2 {
		t.Fatalf("%d cuts, want 2 or more", len(cuts))
	}
	latest := cuts[len(cuts)-1].Epoch
	for _, c := range []struct {
		name   string
		damage func(store string)
		says   string
	}{
		{"chunk", func(s string) { flipByte(t, packOf(t, s, "heat2d", latest, 2), 20) }, "mismatch"},
		{"trailer", func(s string) { flipByte(t, packOf(t, s, "heat2d", latest, 1), -3) }, "pack trailer"},
		{"missing-pack", func(s string) { os.Remove(packOf(t, s, "heat2d", latest, 3)) }, "pack missing"},
		{"manifest", func(s string) {
			flipByte(t, filepath.Join(s, "jobs", "heat2d", "cuts", fmt.Sprintf("%020d.cut", latest)), 40)
		}, "damaged cut manifests left out"},
	} {
		t.Run(c.name, func(t *testing.T) {
			store := filepath.Join(t.TempDir(), "store")
			copyTree(t, base, store)
			c.damage(store)
			r := runOK(t, nil, append(args, "--store", store, "--restore")...)
			if got := r.digest(t); got != want {
				t.Fatalf("digest %s, undisturbed %s\n%s", got, want, tail(r.stderr, 40))
			}
			if !strings.Contains(r.stderr, c.says) {
				t.Fatalf("the damage is not named (%q):\n%s", c.says, tail(r.stderr, 40))
			}
			if c.name != "manifest" {
				if !strings.Contains(r.stderr, fmt.Sprintf("cut %d marked bad, falling back to cut %d", latest, cuts[len(cuts)-2].Epoch)) {
					t.Fatalf("no fallback named:\n%s", tail(r.stderr, 40))
				}
				if bad := badCuts(t, store, "heat2d"); len(bad) != 1 || bad[0] != latest {
					t.Fatalf("job record bad cuts %v, want [%d]", bad, latest)
				}
			}
		})
	}
	// Picked by hand: the oldest cut.
	t.Run("by-hand", func(t *testing.T) {
		store := filepath.Join(t.TempDir(), "store")
		copyTree(t, base, store)
		r := runOK(t, nil, append(args, "--store", store, "--restore", "--cut", strconv.FormatUint(cuts[0].Epoch, 10))...)
		if got := r.digest(t); got != want {
			t.Fatalf("digest %s, undisturbed %s", got, want)
		}
		if !strings.Contains(r.stderr, fmt.Sprintf("restore of cut %d (picked by hand)", cuts[0].Epoch)) {
			t.Fatalf("the picked cut is not named:\n%s", tail(r.stderr, 30))
		}
	})
}

// rankPid finds the process of rank among the launcher's children.
func rankPid(t *testing.T, launcher, rank int) int {
	t.Helper()
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		rest := stat[bytes.LastIndexByte(stat, ')')+2:]
		f := strings.Fields(string(rest))
		if len(f) < 2 || f[1] != strconv.Itoa(launcher) {
			continue
		}
		env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		for _, kv := range bytes.Split(env, []byte{0}) {
			if string(kv) == fmt.Sprintf("CUTPOINT_RANK=%d", rank) {
				return pid
			}
		}
	}
	return 0
}

// TestDamageFoundByRecovery: while the job runs, rank 2's pack of the
// latest cut is damaged and rank 2 is killed; its replacement finds the
// damage, the job falls back to the cut before, and ends with the
// undisturbed digest.
func TestDamageFoundByRecovery(t *testing.T) {
	want := reference(t)
	store := filepath.Join(t.TempDir(), "store")
	args := append([]string{"run", "--store", store, "--interval", "0", "--every-steps", "1500", "--keep", "3"}, job...)
	cmd := cutpoint(t, nil, args...)
	var out, errb syncBuf
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	waitCut(t, store, "heat2d", 2, cmd, &errb)
	cuts := committed(t, store, "heat2d")
	latest := cuts[len(cuts)-1].Epoch
	pid := rankPid(t, cmd.Process.Pid, 2)
	if pid == 0 {
		t.Fatal("rank 2's process not found")
	}
	flipByte(t, packOf(t, store, "heat2d", latest, 2), 20)
	syscall.Kill(pid, syscall.SIGKILL)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("job: %v\n%s", err, tail(errb.String(), 60))
	}
	r := result{stdout: out.String(), stderr: errb.String()}
	if got := r.digest(t); got != want {
		t.Fatalf("digest %s, undisturbed %s", got, want)
	}
	if now := committed(t, store, "heat2d"); len(now) > 0 && now[len(now)-1].Epoch != latest && !strings.Contains(r.stderr, "cut-damaged") {
		// A newer cut committed between the damage and the kill: the
		// recovery never needed the damaged one.
		t.Skipf("cut %d was superseded before the kill; nothing to fall back from", latest)
	}
	if !strings.Contains(r.stderr, fmt.Sprintf("cut %d marked bad", latest)) {
		t.Fatalf("no fallback from cut %d:\n%s", latest, tail(r.stderr, 60))
	}
}

// TestDeterministicFailuresStopAtOnce: an executable that exits at once,
// and a restore with another --size, end the job at once with exit 7 and
// the cause, not after a string of recoveries.
func TestDeterministicFailuresStopAtOnce(t *testing.T) {
	start := time.Now()
	r := runCmd(t, cutpoint(t, nil, "run", "--store", filepath.Join(t.TempDir(), "s"), "--ranks", "2", "--interval", "0", "--", "/bin/false"))
	if r.code != exitDeterministic || !strings.Contains(r.stderr, "exited with code 1 before it completed a step") {
		t.Fatalf("/bin/false: exit %d\n%s", r.code, tail(r.stderr, 20))
	}
	if strings.Contains(r.stderr, "recovery-started") {
		t.Fatalf("/bin/false was respawned:\n%s", tail(r.stderr, 20))
	}

	store := filepath.Join(t.TempDir(), "store")
	// Enough steps that a cut commits before the job ends on a fast
	// machine (3,000 steps once finished before the first commit).
	small := []string{"run", "--store", store, "--ranks", "2", "--steps", "20000", "--heartbeat-interval", "100ms", "--interval", "0", "--every-steps", "500"}
	runOK(t, nil, append(small, "--size", "96")...)
	if len(committed(t, store, "heat2d")) == 0 {
		t.Fatal("the first run committed no cut to restore from")
	}
	r = runCmd(t, cutpoint(t, nil, append(small, "--size", "50", "--restore")...))
	if r.code != exitDeterministic || !strings.Contains(r.stderr, "bytes in the cut") || !strings.Contains(r.stderr, "in the job") {
		t.Fatalf("restore with another size: exit %d\n%s", r.code, tail(r.stderr, 20))
	}
	if strings.Contains(r.stderr, "recovery-started") {
		t.Fatalf("the misfit restore was retried:\n%s", tail(r.stderr, 20))
	}
	if d := time.Since(start); d > time.Minute {
		t.Fatalf("took %v", d)
	}
}

// TestDiskFullStopsCuttingLoudly: a store on a small tmpfs fills up; the
// job finishes with the right digest, but after cutting-stopped (error
// level, "UNPROTECTED since step") and exit 8.
func TestDiskFullStopsCuttingLoudly(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("mount tmpfs: %v %s", err, out)
	}
	defer exec.Command("umount", dir).Run()
	store := filepath.Join(dir, "store")
	args := []string{"run", "--store", store, "--ranks", "4", "--size", "96", "--steps", "20000", "--heartbeat-interval", "100ms",
		"--interval", "0", "--every-steps", "100", "--store-io", "buffered"}
	r := runCmd(t, cutpoint(t, nil, args...))
	if r.code != exitUnprotected {
		t.Fatalf("exit %d, want %d\n%s", r.code, exitUnprotected, tail(r.stderr, 30))
	}
	if !strings.Contains(r.stderr, "level=ERROR msg=\"cutting-stopped") || !strings.Contains(r.stderr, "UNPROTECTED since step") {
		t.Fatalf("no loud cutting-stopped:\n%s", tail(r.stderr, 30))
	}
	if !strings.HasPrefix(strings.TrimSpace(r.stdout), "result ") {
		t.Fatalf("no result line: %q", r.stdout)
	}
}

// startNATS runs `cutpoint nats` on addr ("": its default, a random
// loopback port) and returns once it wrote its client URL to urlFile.
func startNATS(t *testing.T, addr, urlFile string) *exec.Cmd {
	t.Helper()
	os.Remove(urlFile)
	args := []string{"nats", "--url-file", urlFile, "--token", "e2e-token"}
	if addr != "" {
		args = append(args, "--listen", addr)
	}
	n := cutpoint(t, nil, args...)
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if b, _ := os.ReadFile(urlFile); len(bytes.TrimSpace(b)) > 0 {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatal("nats did not come up")
		}
	}
}

// splitJob is a job of the split deployment on a NATS server of its own
// whose token the test knows: `cutpoint nats` and `cutpoint coordinator
// --spawn local` (job's flags, a cut every 500 steps).
type splitJob struct {
	store, addr, urlFile, url string
	nats, coord               *exec.Cmd
	out, errb                 syncBuf
}

// startSplitJob starts a splitJob and returns once its first cut
// committed; the test's cleanup kills both processes.
func startSplitJob(t *testing.T) *splitJob {
	t.Helper()
	dir := t.TempDir()
	j := &splitJob{store: filepath.Join(dir, "store"), urlFile: filepath.Join(dir, "nats.url")}
	if err := os.MkdirAll(j.store, 0o755); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	j.addr = ln.Addr().String()
	ln.Close()
	j.nats = startNATS(t, j.addr, j.urlFile)
	t.Cleanup(func() { j.nats.Process.Kill(); j.nats.Wait() })
	b, _ := os.ReadFile(j.urlFile)
	j.url = strings.TrimSpace(string(b))
	args := append([]string{"coordinator", "--nats", j.url, "--store", j.store, "--spawn", "local",
		"--interval", "0", "--every-steps", "500"}, job...)
	j.coord = cutpoint(t, nil, args...)
	j.coord.Stdout, j.coord.Stderr = &j.out, &j.errb
	if err := j.coord.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-j.coord.Process.Pid, syscall.SIGKILL) })
	waitCut(t, j.store, "heat2d", 1, j.coord, &j.errb)
	return j
}

// TestNATSOutageRiddenOut: the NATS server of a running job (its own
// process, as on a cluster) is killed and restarted on the same port ten
// seconds later; the job rides it out and ends with the undisturbed
// digest.
func TestNATSOutageRiddenOut(t *testing.T) {
	want := reference(t)
	j := startSplitJob(t)
	j.nats.Process.Kill()
	j.nats.Wait()
	time.Sleep(10 * time.Second)
	j.nats = startNATS(t, j.addr, j.urlFile)
	done := make(chan error, 1)
	go func() { done <- j.coord.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("job: %v\n%s", err, tail(j.errb.String(), 60))
		}
	case <-time.After(2 * time.Minute):
		t.Fatalf("job did not finish 2 minutes after NATS came back\n%s", tail(j.errb.String(), 60))
	}
	r := result{stdout: j.out.String(), stderr: j.errb.String()}
	if got := r.digest(t); got != want {
		t.Fatalf("digest after a NATS outage %s, undisturbed %s", got, want)
	}
}

// TestRankLossWhileStoreReadOnly: the store turns read-only (a bind mount
// remounted ro, as a file server that briefly refuses writes) and a rank is
// SIGKILLed meanwhile: the coordinator retries the job record write of the
// recovery instead of failing the job, cuts abort until the store is
// writable again, and the job ends with the undisturbed digest.
func TestRankLossWhileStoreReadOnly(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("a read-only bind mount needs root")
	}
	if testing.Short() {
		t.Skip("end-to-end")
	}
	steps := []string{"--ranks", "4", "--size", "96", "--steps", "20000", "--heartbeat-interval", "100ms"}
	want := runOK(t, nil, append([]string{"run", "--store", filepath.Join(t.TempDir(), "ref"), "--interval", "0"}, steps...)...).digest(t)
	store := filepath.Join(t.TempDir(), "store")
	if err := os.MkdirAll(store, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "--bind", store, store).CombinedOutput(); err != nil {
		t.Skipf("bind mount: %v %s", err, out)
	}
	mounted := true
	defer func() {
		if mounted {
			exec.Command("umount", store).Run()
		}
	}()
	// The lease outlives the read-only spell (its renewals fail meanwhile).
	args := append([]string{"run", "--store", store, "--interval", "0", "--every-steps", "500", "--lease-ttl", "20s"}, steps...)
	cmd := cutpoint(t, nil, args...)
	var out, errb syncBuf
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	waitCut(t, store, "heat2d", 1, cmd, &errb)
	if out, err := exec.Command("mount", "-o", "remount,bind,ro", store).CombinedOutput(); err != nil {
		t.Fatalf("remount ro: %v %s", err, out)
	}
	pid := rankPid(t, cmd.Process.Pid, 1)
	if pid == 0 {
		t.Fatal("rank 1's process not found")
	}
	syscall.Kill(pid, syscall.SIGKILL)
	time.Sleep(3 * time.Second)
	if out, err := exec.Command("umount", store).CombinedOutput(); err != nil {
		t.Fatalf("umount: %v %s", err, out)
	}
	mounted = false
	if err := cmd.Wait(); err != nil {
		t.Fatalf("job: %v\n%s", err, tail(errb.String(), 60))
	}
	r := result{stdout: out.String(), stderr: errb.String()}
	if got := r.digest(t); got != want {
		t.Fatalf("digest %s, undisturbed %s", got, want)
	}
	if !strings.Contains(r.stderr, "job record write failed; retrying") {
		t.Fatalf("the recovery's record write never met the read-only store:\n%s", tail(r.stderr, 60))
	}
}
