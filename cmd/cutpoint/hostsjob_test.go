package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/cutpoint/cutpoint/ckpt"
)

// hostsJob is a background `cutpoint run --hosts` job of the levels e2e
// tests: each host's rank processes write their pids to dir/{host}.pids
// (so that a test can lose a host), the store, node-local root and stats
// directory below dir, and the committed cuts as the shared store holds
// them. The job is killed, and its log shown on failure, at the test's
// end.
type hostsJob struct {
	t                        *testing.T
	dir, store, local, stats string
	cmd                      *exec.Cmd
	errb, outb               syncBuf
	done                     chan struct{}
	shared                   *ckpt.Store
}

// startHostsJob starts `run --hosts hosts` with the levels flags in
// levels (--local is added, below the job's directory) and the job's
// arguments, and waits for its first committed cut.
func startHostsJob(t *testing.T, hosts string, levels []string, job []string) *hostsJob {
	t.Helper()
	j := &hostsJob{t: t, dir: t.TempDir(), done: make(chan struct{})}
	j.store, j.local, j.stats = filepath.Join(j.dir, "store"), filepath.Join(j.dir, "local"), filepath.Join(j.dir, "stats")
	tmpl := `echo $$ >> ` + j.dir + `/{host}.pids; exec {cmd}`
	args := append([]string{"run", "--store", j.store, "--interval", "0", "--every-steps", "100",
		"--hosts", hosts, "--spawn-cmd", tmpl, "--stats-dir", j.stats, "--local", j.local + "/{host}"}, levels...)
	j.cmd = cutpoint(t, nil, append(args, job...)...)
	j.cmd.Stderr, j.cmd.Stdout = &j.errb, &j.outb
	if err := j.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { j.cmd.Wait(); close(j.done) }()
	t.Cleanup(func() {
		syscall.Kill(-j.cmd.Process.Pid, syscall.SIGKILL)
		<-j.done
		if j.shared != nil {
			j.shared.Close()
		}
		if t.Failed() {
			t.Logf("the job's log:\n%s", tail(j.errb.String(), 120))
		}
	})
	waitCut(t, j.store, "heat2d", 1, j.cmd, &j.errb)
	var err error
	if j.shared, err = ckpt.OpenDir(context.Background(), j.store, ckpt.Options{}); err != nil {
		t.Fatal(err)
	}
	return j
}

// latest is the latest committed cut (nil when there is none, or when GC
// removed it meanwhile).
func (j *hostsJob) latest() *ckpt.Cut {
	cuts := committed(j.t, j.store, "heat2d")
	if len(cuts) == 0 {
		return nil
	}
	c, err := j.shared.LoadCut(context.Background(), "heat2d", cuts[len(cuts)-1].Epoch)
	if err != nil {
		return nil
	}
	return c
}

// waitFor polls until a committed cut is as ok wants, for at most 90 s.
func (j *hostsJob) waitFor(what string, ok func(*ckpt.Cut) bool) *ckpt.Cut {
	j.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		if c := j.latest(); c != nil && ok(c) {
			return c
		}
		select {
		case <-j.done:
			j.t.Fatalf("the job ended before %s", what)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			j.t.Fatalf("no %s after 90 s", what)
		}
	}
}

// lose loses host h: every rank process it ran SIGKILLed, its node-local
// directory wiped.
func (j *hostsJob) lose(h string) {
	j.t.Helper()
	for _, pid := range pidsOf(j.t, filepath.Join(j.dir, h+".pids")) {
		syscall.Kill(-pid, syscall.SIGKILL)
	}
	if err := os.RemoveAll(filepath.Join(j.local, h)); err != nil {
		j.t.Fatal(err)
	}
}

// end waits up to limit for the job to end with exit 0 and want's digest,
// and returns its log.
func (j *hostsJob) end(limit time.Duration, want string) string {
	j.t.Helper()
	select {
	case <-j.done:
	case <-time.After(limit):
		j.t.Fatalf("job did not finish in %v", limit)
	}
	log := j.errb.String()
	if code := j.cmd.ProcessState.ExitCode(); code != 0 {
		j.t.Fatalf("exit %d", code)
	}
	if got := (result{stdout: j.outb.String(), stderr: log}).digest(j.t); got != want {
		j.t.Fatalf("digest %s, undisturbed %s", got, want)
	}
	return log
}
