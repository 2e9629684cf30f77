package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestStandbyKnowsPlacement: `coordinator --hosts a:2,b:2,c:2` (a spawn
// template that runs locally and fails with 255, as ssh does, on a host
// marked dead) loses host b whole after the first cut: its ranks 2 and 3
// move to the spares on c, and the coordinator records b down and the
// moves in the store. Then the coordinator is SIGKILLed with rank 2 (on
// c). The standby takes over: it adopts the record, so it respawns rank 2
// on c at once, never trying b, and the job ends with the undisturbed
// digest.
func TestStandbyKnowsPlacement(t *testing.T) {
	want := reference(t)
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	urlFile := filepath.Join(dir, "nats.url")
	natsCmd := startNATS(t, "", urlFile)
	defer func() { natsCmd.Process.Kill(); natsCmd.Wait() }()
	b, _ := os.ReadFile(urlFile)
	url := strings.TrimSpace(string(b))
	// $$ is the template's shell, the rank's process group leader; exec
	// keeps the pid for the rank.
	tmpl := `echo $$ >> ` + dir + `/{host}.tries; test -e ` + dir + `/{host}.dead && exit 255; ` +
		`echo $$ >> ` + dir + `/{host}.pids; exec env HOSTTAG={host} {cmd}`
	coordArgs := append([]string{"coordinator", "--nats", url, "--store", store, "--spawn", "local",
		"--hosts", "a:2,b:2,c:2", "--spawn-cmd", tmpl, "--interval", "0", "--every-steps", "100"}, job...)
	keyEnv := jobKeyEnv()

	sb := cutpoint(t, keyEnv, append(coordArgs, "--standby")...)
	var sout, serr syncBuf
	sb.Stdout, sb.Stderr = &sout, &serr
	if err := sb.Start(); err != nil {
		t.Fatal(err)
	}
	sdone := make(chan struct{})
	go func() { sb.Wait(); close(sdone) }()
	defer func() {
		syscall.Kill(-sb.Process.Pid, syscall.SIGKILL)
		<-sdone
	}()

	coord := cutpoint(t, keyEnv, coordArgs...)
	logName := filepath.Join(dir, "coord1.log")
	logf, err := os.Create(logName) // a file: the ranks write to it too
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
	var all []int
	defer func() {
		for _, p := range all {
			syscall.Kill(-p, syscall.SIGKILL)
		}
	}()
	all = append(all, pidsOf(t, filepath.Join(dir, "a.pids"))...)
	// Host b dies whole: its ranks, and its spawns fail from now on.
	if err := os.WriteFile(filepath.Join(dir, "b.dead"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range pidsOf(t, filepath.Join(dir, "b.pids")) {
		syscall.Kill(-p, syscall.SIGKILL)
	}
	// Both come back on c, and the coordinator records it.
	rec := filepath.Join(store, "jobs", "heat2d", "placement.json")
	deadline := time.Now().Add(90 * time.Second)
	for {
		var pr struct {
			Down  []struct{ Host string }
			Moved []struct {
				Rank int
				Host string
			}
		}
		b, err := os.ReadFile(rec)
		if err == nil && json.Unmarshal(b, &pr) == nil && len(pr.Down) == 1 && pr.Down[0].Host == "b" && len(pr.Moved) == 2 {
			break
		}
		if time.Now().After(deadline) {
			lb, _ := os.ReadFile(logName)
			t.Fatalf("no placement record with b down and 2 ranks moved (%s, %v)\n%s", b, err, tail(string(lb), 60))
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Running on c again, past a cut of the new incarnation.
	waitCut(t, store, "heat2d", len(committed(t, store, "heat2d"))+1, coord, &errb)
	onC := pidsOf(t, filepath.Join(dir, "c.pids"))
	if len(onC) != 2 {
		t.Fatalf("%d ranks started on c, want 2", len(onC))
	}
	all = append(all, onC...)
	var rank2 int
	for _, p := range onC {
		env, _ := os.ReadFile("/proc/" + strconv.Itoa(p) + "/environ")
		if strings.Contains(string(env), "\x00CUTPOINT_RANK=2\x00") {
			rank2 = p
		}
	}
	if rank2 == 0 {
		t.Fatalf("rank 2 is not among c's processes %v", onC)
	}
	syscall.Kill(coord.Process.Pid, syscall.SIGKILL)
	syscall.Kill(-rank2, syscall.SIGKILL)
	coord.Wait()
	tries := len(pidsOf(t, filepath.Join(dir, "b.tries")))

	select {
	case <-sdone:
	case <-time.After(3 * time.Minute):
		t.Fatalf("the standby did not end\n%s", tail(serr.String(), 60))
	}
	log := serr.String()
	if code := sb.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("standby exit %d\n%s", code, tail(log, 60))
	}
	r := result{stdout: sout.String(), stderr: log}
	if got := r.digest(t); got != want {
		t.Fatalf("digest after the takeover %s, undisturbed %s", got, want)
	}
	if !strings.Contains(log, "rank started\" rank=2 host=c") && !strings.Contains(log, "rank started rank=2 host=c") {
		t.Fatalf("rank 2 not respawned on c by the standby\n%s", tail(log, 60))
	}
	if n := len(pidsOf(t, filepath.Join(dir, "b.tries"))); n != tries {
		t.Fatalf("the standby tried the dead host b %d times", n-tries)
	}
	if !strings.Contains(log, "expired: taking over") || !strings.Contains(log, "placement of the previous coordinator adopted") {
		t.Fatalf("no takeover with the recorded placement in the standby's log\n%s", tail(log, 60))
	}
	for _, p := range all {
		for deadline := time.Now().Add(10 * time.Second); running(p); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("rank process %d still runs after the job ended", p)
			}
		}
	}
	verifyStore(t, store)
}
