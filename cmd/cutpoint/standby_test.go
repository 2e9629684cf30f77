package main

import (
	"os"
	"os/exec"
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
// Of two standbys exactly one takes the job over once the lease expired,
// respawns the rank it does not hear (through its own --spawn local), and
// the job ends with the undisturbed digest, every old rank gone; the other
// stands down (exit 0). A standby started after the job ended stands down
// at once.
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

	// Every coordinator holds the job key the ranks hold.
	keyEnv := jobKeyEnv()
	// Two standbys first: they wait for the store and the job to appear.
	var standbys [2]*exec.Cmd
	var souts, serrs [2]syncBuf
	var sdones [2]chan struct{}
	for i := range standbys {
		sb := cutpoint(t, keyEnv, append(coordArgs, "--standby")...)
		sb.Stdout, sb.Stderr = &souts[i], &serrs[i]
		if err := sb.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { sb.Wait(); close(done) }()
		defer func() {
			syscall.Kill(-sb.Process.Pid, syscall.SIGKILL)
			<-done
		}()
		standbys[i], sdones[i] = sb, done
	}

	coord := cutpoint(t, keyEnv, coordArgs...)
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
	for i := range standbys {
		select {
		case <-sdones[i]:
			t.Fatalf("standby %d exited while the coordinator ran\n%s", i, tail(serrs[i].String(), 40))
		default:
		}
		if strings.Contains(serrs[i].String(), "expired: taking over") {
			t.Fatalf("standby %d took over a live job\n%s", i, tail(serrs[i].String(), 40))
		}
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
	// Exactly one standby runs the job to its end; the other stands down
	// once the job is over (it lost the race for the lease, or never saw
	// it expire).
	winner := -1
	for i := range standbys {
		select {
		case <-sdones[i]:
		case <-time.After(3 * time.Minute):
			t.Fatalf("standby %d did not end\n%s", i, tail(serrs[i].String(), 60))
		}
		if code := standbys[i].ProcessState.ExitCode(); code != 0 {
			t.Fatalf("standby %d exit %d\n%s", i, code, tail(serrs[i].String(), 60))
		}
		if strings.Contains(souts[i].String(), "result ") {
			if winner >= 0 {
				t.Fatalf("both standbys ran the job\n%s\n---\n%s", tail(serrs[0].String(), 30), tail(serrs[1].String(), 30))
			}
			winner = i
		} else if !strings.Contains(serrs[i].String(), "standing down") {
			t.Fatalf("standby %d neither finished the job nor stood down\n%s", i, tail(serrs[i].String(), 40))
		}
	}
	if winner < 0 {
		t.Fatalf("no standby finished the job\n%s\n---\n%s", tail(serrs[0].String(), 40), tail(serrs[1].String(), 40))
	}
	log := serrs[winner].String()
	r := result{stdout: souts[winner].String(), stderr: log}
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

	late := runOK(t, keyEnv, append(coordArgs, "--standby")...)
	if !strings.Contains(late.stderr, "standing down") || strings.Contains(late.stderr, "expired: taking over") {
		t.Fatalf("a standby of an ended job did not stand down\n%s", tail(late.stderr, 20))
	}
}
