package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCoordinatorStandby: a standby coordinator (same flags, --standby)
// watches the job of a `coordinator --spawn local`. The coordinator is
// SIGKILLed after the first cut together with one of its ranks, as when
// its host dies with a rank on it; the three other ranks keep computing.
// The standby takes the job over once the lease expired, respawns the rank
// it does not hear (through its own --spawn local), and the job ends with
// the undisturbed digest, every old rank gone. A standby started after the
// job ended stands down at once with exit 0.
func TestCoordinatorStandby(t *testing.T) {
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

	// The standby first: it waits for the store and the job to appear.
	standby := cutpoint(t, nil, append(coordArgs, "--standby")...)
	var sout, serr syncBuf
	standby.Stdout, standby.Stderr = &sout, &serr
	if err := standby.Start(); err != nil {
		t.Fatal(err)
	}
	sdone := make(chan struct{})
	go func() { standby.Wait(); close(sdone) }()
	defer func() {
		syscall.Kill(-standby.Process.Pid, syscall.SIGKILL)
		<-sdone
	}()

	coord := cutpoint(t, nil, coordArgs...)
	logf, err := os.Create(filepath.Join(dir, "coord1.log")) // a file: the ranks write to it too
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	coord.Stderr = logf
	if err := coord.Start(); err != nil {
		t.Fatal(err)
	}
	var errb syncBuf
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
	select {
	case <-sdone:
		t.Fatalf("the standby exited while the coordinator ran\n%s", tail(serr.String(), 40))
	default:
	}
	if strings.Contains(serr.String(), "expired: taking over") {
		t.Fatalf("the standby took over a live job\n%s", tail(serr.String(), 40))
	}
	syscall.Kill(coord.Process.Pid, syscall.SIGKILL)
	syscall.Kill(-ranks[0], syscall.SIGKILL)
	coord.Wait()
	time.Sleep(300 * time.Millisecond)
	for _, p := range ranks[1:] {
		if !running(p) {
			t.Fatalf("rank process %d died with its coordinator", p)
		}
	}
	select {
	case <-sdone:
	case <-time.After(3 * time.Minute):
		t.Fatalf("the standby did not finish the job\n%s", tail(serr.String(), 60))
	}
	log := serr.String()
	if code := standby.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("standby exit %d\n%s", code, tail(log, 60))
	}
	r := result{stdout: sout.String(), stderr: log}
	if got := r.digest(t); got != want {
		t.Fatalf("digest after the takeover %s, undisturbed %s", got, want)
	}
	if !strings.Contains(log, "expired: taking over") || !strings.Contains(log, "mode=rejoin") {
		t.Fatalf("no takeover in the standby's log\n%s", tail(log, 60))
	}
	if !strings.Contains(log, "ranks not heard") {
		t.Fatalf("the standby did not respawn the rank it did not hear\n%s", tail(log, 60))
	}
	for _, p := range ranks {
		for deadline := time.Now().Add(10 * time.Second); running(p); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("rank process %d still runs after the job ended", p)
			}
		}
	}
	verifyStore(t, store)

	late := runOK(t, nil, append(coordArgs, "--standby")...)
	if !strings.Contains(late.stderr, "standing down") || strings.Contains(late.stderr, "expired: taking over") {
		t.Fatalf("a standby of an ended job did not stand down\n%s", tail(late.stderr, 20))
	}
}
