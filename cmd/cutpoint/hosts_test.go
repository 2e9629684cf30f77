package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// pidsOf reads the pids a spawn template wrote, one a line.
func pidsOf(t *testing.T, file string) []int {
	t.Helper()
	b, _ := os.ReadFile(file)
	var out []int
	for _, f := range strings.Fields(string(b)) {
		p, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("%s: %q", file, f)
		}
		out = append(out, p)
	}
	return out
}

// TestRunOnHosts: four ranks on hosts a:2, b:2 with two spares on c,
// started through a spawn template that runs locally. Every rank of host
// b is SIGKILLed after the first cut: b is taken for dead, its ranks come
// back on c, and the job ends with the undisturbed digest. The NATS token
// and the rank's keys reach the ranks on stdin, never on a command line.
func TestRunOnHosts(t *testing.T) {
	want := reference(t)
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	// $$ is the template's shell, the rank's process group leader; exec
	// keeps the pid for the rank.
	tmpl := `echo $$ >> ` + dir + `/{host}.pids; exec env HOSTTAG={host} {cmd}`
	args := append([]string{"run", "--store", store, "--interval", "0", "--every-steps", "100",
		"--hosts", "a:2,b:2,c:2", "--spawn-cmd", tmpl}, job...)
	cmd := cutpoint(t, nil, args...)
	var errb syncBuf
	var outb syncBuf
	cmd.Stderr, cmd.Stdout = &errb, &outb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	defer func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}()
	waitCut(t, store, "heat2d", 1, cmd, &errb)
	if n := len(pidsOf(t, filepath.Join(dir, "a.pids"))); n != 2 {
		t.Fatalf("%d ranks started on a, want 2 (block placement)", n)
	}
	if _, err := os.Stat(filepath.Join(dir, "c.pids")); err == nil {
		t.Fatal("a rank started on the spare host c before any loss")
	}
	for _, pid := range pidsOf(t, filepath.Join(dir, "b.pids")) {
		cl, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if strings.Contains(string(cl), "NATS_TOKEN") || strings.Contains(string(cl), "NATS_PASSWORD") || !strings.Contains(string(env), "\x00CUTPOINT_HOST=b\x00") {
			t.Errorf("rank %d: command line %q: want no token or password, and CUTPOINT_HOST=b in its environment", pid, strings.ReplaceAll(string(cl), "\x00", " "))
		}
		// The rank's keys came on stdin too; the job key reaches no rank.
		if strings.Contains(string(cl), "_KEY") || strings.Contains(string(env), "CUTPOINT_RANK_KEYS=") || strings.Contains(string(env), "CUTPOINT_JOB_KEY=") {
			t.Errorf("rank %d: a key on its command line or in its environment", pid)
		}
		syscall.Kill(-pid, syscall.SIGKILL)
	}
	select {
	case <-done:
	case <-time.After(3 * time.Minute):
		t.Fatalf("job did not finish\n%s", tail(errb.String(), 60))
	}
	log := errb.String()
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit %d\n%s", code, tail(log, 60))
	}
	r := result{stdout: outb.String(), stderr: log}
	if got := r.digest(t); got != want {
		t.Fatalf("digest %s, undisturbed %s", got, want)
	}
	if !strings.Contains(log, "host down") || !strings.Contains(log, "host=b") {
		t.Fatalf("host b not taken for dead\n%s", tail(log, 60))
	}
	for _, rk := range []int{2, 3} {
		if !strings.Contains(log, fmt.Sprintf("rank started\" rank=%d host=c", rk)) && !strings.Contains(log, fmt.Sprintf("rank started rank=%d host=c", rk)) {
			t.Errorf("rank %d not respawned on c\n%s", rk, tail(log, 60))
		}
	}
	if n := len(pidsOf(t, filepath.Join(dir, "b.pids"))); n != 2 {
		t.Errorf("%d starts on b, want 2 (none after it died)", n)
	}
	verifyStore(t, store)
}

// TestRunHostsNoSlot: one rank on a, no spare: its loss leaves no slot and
// the job fails at once with a message naming the hosts.
func TestRunHostsNoSlot(t *testing.T) {
	store := filepath.Join(t.TempDir(), "store")
	args := append([]string{"run", "--store", store, "--interval", "0", "--every-steps", "100",
		"--hosts", "a:1,b:3", "--spawn-cmd", "{cmd}", "--kill", "0@300"}, job...)
	r := runCmd(t, cutpoint(t, nil, args...))
	if r.code != exitFailure || !strings.Contains(r.stderr, "no free slot on a live host") || !strings.Contains(r.stderr, "a down") {
		t.Fatalf("exit %d, want %d and a clear message\n%s", r.code, exitFailure, tail(r.stderr, 30))
	}
	if strings.Contains(r.stderr, "recoveries without a commit") {
		t.Fatalf("the job retried a spawn that cannot succeed\n%s", tail(r.stderr, 30))
	}
}

// running says whether pid is a live process (not gone, not a zombie
// that nobody reaped yet).
func running(pid int) bool {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(st), ") ")
	return !strings.HasPrefix(rest, "Z") && !strings.HasPrefix(rest, "X")
}

// childPids returns the pids of pid's children.
func childPids(pid int) []int {
	var out []int
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		for _, w := range strings.Fields(string(b)) {
			if p, err := strconv.Atoi(w); err == nil {
				out = append(out, p)
			}
		}
	}
	return out
}

// TestCoordinatorSpawnLocalKilled: the ranks of `coordinator --spawn
// local` outlive their coordinator. It is SIGKILLed after the first cut;
// the very same rank processes are still computing when `coordinator
// --rejoin` takes over, no rank is respawned, and the job ends with the
// undisturbed digest.
func TestCoordinatorSpawnLocalKilled(t *testing.T) {
	want := reference(t)
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	urlFile := filepath.Join(dir, "nats.url")
	natsCmd := startNATS(t, "", urlFile)
	defer func() { natsCmd.Process.Kill(); natsCmd.Wait() }()
	b, _ := os.ReadFile(urlFile)
	url := strings.TrimSpace(string(b))
	coordArgs := append([]string{"coordinator", "--nats", url, "--store", store, "--spawn", "local",
		"--interval", "0", "--every-steps", "100"}, job...)
	key := jobKeyEnv() // the coordinator that rejoins holds the first one's key
	coord := cutpoint(t, key, coordArgs...)
	// A file, as a deployment's log would be: the ranks write to it too,
	// and a pipe read by this test would keep Wait waiting for them.
	logPath := filepath.Join(dir, "coord1.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	coord.Stderr = logf
	if err := coord.Start(); err != nil {
		t.Fatal(err)
	}
	var errb syncBuf // waitCut's log: read the file instead
	waitCut(t, store, "heat2d", 1, coord, &errb)
	ranks := childPids(coord.Process.Pid)
	if len(ranks) != 4 {
		t.Fatalf("coordinator has %d children, want 4 ranks", len(ranks))
	}
	defer func() {
		for _, p := range ranks {
			syscall.Kill(-p, syscall.SIGKILL)
		}
	}()
	syscall.Kill(coord.Process.Pid, syscall.SIGKILL)
	coord.Wait()
	time.Sleep(500 * time.Millisecond)
	for _, p := range ranks {
		if !running(p) {
			b, _ := os.ReadFile(logPath)
			t.Fatalf("rank process %d died with its coordinator\n%s", p, tail(string(b), 40))
		}
	}
	r := runOK(t, key, append(coordArgs, "--rejoin")...)
	if got := r.digest(t); got != want {
		t.Fatalf("digest after a coordinator restart %s, undisturbed %s", got, want)
	}
	if strings.Contains(r.stderr, "ranks to spawn") {
		t.Fatalf("the rejoining coordinator respawned ranks\n%s", tail(r.stderr, 40))
	}
	for _, p := range ranks {
		for deadline := time.Now().Add(10 * time.Second); running(p); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("rank process %d still runs after the job ended", p)
			}
		}
	}
	verifyStore(t, store)
}

// envOf returns the value of name in pid's environment.
func envOf(pid int, name string) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	for _, kv := range strings.Split(string(b), "\x00") {
		if v, ok := strings.CutPrefix(kv, name+"="); ok {
			return v
		}
	}
	return ""
}

// TestPartitionedRankFenced: a rank that runs on beyond the reach of the
// launcher (setsid: as the remote side of ssh does when the connection is
// cut) goes silent (SIGSTOP, a partition). The coordinator kills what the
// launcher holds (setsid) and respawns the rank; when the partition heals
// (SIGCONT) the old process reports with a stale incarnation, is fenced
// and exits: no duplicate rank stays alive, and the digest is undisturbed.
func TestPartitionedRankFenced(t *testing.T) {
	want := reference(t)
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	tmpl := `setsid -w sh -c 'echo $$ >> ` + dir + `/{host}.pids; eval "exec $0"' {qcmd} >> ` + dir + `/{host}.log 2>&1`
	args := append([]string{"run", "--store", store, "--interval", "0", "--every-steps", "100",
		"--hosts", "a:2,b:2", "--spawn-cmd", tmpl}, job...)
	cmd := cutpoint(t, nil, args...)
	var errb, outb syncBuf
	cmd.Stderr, cmd.Stdout = &errb, &outb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	var old int
	defer func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		if old != 0 {
			syscall.Kill(old, syscall.SIGKILL)
		}
		for _, p := range append(pidsOf(t, filepath.Join(dir, "a.pids")), pidsOf(t, filepath.Join(dir, "b.pids"))...) {
			syscall.Kill(p, syscall.SIGKILL)
		}
	}()
	waitCut(t, store, "heat2d", 1, cmd, &errb)
	for _, p := range pidsOf(t, filepath.Join(dir, "a.pids")) {
		if envOf(p, "CUTPOINT_RANK") == "1" {
			old = p
		}
	}
	if old == 0 {
		t.Fatal("rank 1 not found on host a")
	}
	syscall.Kill(old, syscall.SIGSTOP)
	waitLog(t, &errb, "recovery-finished")
	if !running(old) {
		t.Fatal("the partitioned rank died (the test's premise is that the launcher cannot reach it)")
	}
	syscall.Kill(old, syscall.SIGCONT)
	for deadline := time.Now().Add(20 * time.Second); running(old); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the stale rank 1 (pid %d) still runs 20s after the partition healed\n%s", old, tail(errb.String(), 40))
		}
	}
	select {
	case <-done:
	case <-time.After(3 * time.Minute):
		t.Fatalf("job did not finish\n%s", tail(errb.String(), 60))
	}
	log := errb.String()
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit %d\n%s", code, tail(log, 60))
	}
	if got := (result{stdout: outb.String(), stderr: log}).digest(t); got != want {
		t.Fatalf("digest %s, undisturbed %s", got, want)
	}
	hostLog, _ := os.ReadFile(filepath.Join(dir, "a.log"))
	if !strings.Contains(string(hostLog), "fenced") {
		t.Fatalf("the stale rank did not report being fenced\n%s", tail(string(hostLog), 30))
	}
}

func TestSecretVars(t *testing.T) {
	for _, c := range []struct {
		url, token, want string
	}{
		{"nats://127.0.0.1:4222", "", ""},
		{"nats://127.0.0.1:4222", "t", "CUTPOINT_NATS_TOKEN"},
		{"nats://tok@10.0.0.1:4222", "", "CUTPOINT_NATS"},
		{"nats://u:p@10.0.0.1:4222", "t", "CUTPOINT_NATS_TOKEN,CUTPOINT_NATS"},
	} {
		if got := strings.Join(secretVars(c.url, c.token, false), ","); got != c.want {
			t.Errorf("%s token %q: %q, want %q", c.url, c.token, got, c.want)
		}
	}
}

func TestHostsFlagChecks(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"coordinator", "--nats", "nats://127.0.0.1:1", "--spawn-cmd", "{cmd}"}, "--spawn-cmd needs --hosts"},
		{[]string{"coordinator", "--nats", "nats://127.0.0.1:1", "--hosts", "a:4", "--spawn", "none"}, "--hosts needs --spawn local"},
		{[]string{"run", "--hosts", "a:x"}, `--hosts: host "a": slots "x"`},
		{[]string{"run", "--hosts", "a:2", "--ranks", "4"}, "2 slots for 4 ranks"},
		{[]string{"run", "--hosts", "a:4", "--spawn-cmd", "ssh {host}"}, "has no {cmd}"},
	} {
		args := append(c.args, "--store", t.TempDir())
		_, stderr, code := runCLI(t, args...)
		if code != exitUsage || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q", c.args, code, stderr)
		}
	}
	// The environment binds like every flag.
	t.Setenv("CUTPOINT_HOSTS", "a:1")
	_, stderr, code := runCLI(t, "run", "--ranks", "2", "--store", t.TempDir())
	if code != exitUsage || !strings.Contains(stderr, "1 slots for 2 ranks") {
		t.Errorf("CUTPOINT_HOSTS: exit %d, stderr %q", code, stderr)
	}
}

// TestRunKillWithHeldStdout: every rank leaves a daemonized grandchild
// that holds its stdout open for 30 s (as a process behind ssh may). A
// rank SIGKILLed mid-run is still seen lost and respawned at once, and the
// job ends well before the grandchildren let go of the pipes.
func TestRunKillWithHeldStdout(t *testing.T) {
	want := reference(t)
	dir := t.TempDir()
	held := filepath.Join(dir, "held.pids")
	defer func() {
		for _, p := range pidsOf(t, held) {
			syscall.Kill(p, syscall.SIGKILL)
		}
	}()
	store := filepath.Join(dir, "store")
	tmpl := `setsid sh -c 'echo $$ >> ` + held + `; exec sleep 30' & exec {cmd}`
	args := append([]string{"run", "--store", store, "--interval", "0", "--every-steps", "100",
		"--hosts", "a:2,b:2", "--spawn-cmd", tmpl, "--kill", "2@400"}, job...)
	t0 := time.Now()
	r := runOK(t, nil, args...)
	if d := time.Since(t0); d > 25*time.Second {
		t.Fatalf("the job took %v: something waited for the held pipes", d)
	}
	if got := r.digest(t); got != want {
		t.Fatalf("digest %s, undisturbed %s", got, want)
	}
	if !strings.Contains(r.stderr, "recovery-finished") || !strings.Contains(r.stderr, "rank output still held open") {
		t.Fatalf("no recovery, or the held output went unnoticed\n%s", tail(r.stderr, 40))
	}
	if strings.Contains(r.stderr, "still running") {
		t.Fatalf("a respawn found the old process running\n%s", tail(r.stderr, 40))
	}
}
