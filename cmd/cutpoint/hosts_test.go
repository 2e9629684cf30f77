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
// reaches the ranks on stdin, never on a command line.
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
		if strings.Contains(string(cl), "NATS_TOKEN") || !strings.Contains(string(env), "\x00CUTPOINT_HOST=b\x00") {
			t.Errorf("rank %d: command line %q: want no token, and CUTPOINT_HOST=b in its environment", pid, strings.ReplaceAll(string(cl), "\x00", " "))
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
