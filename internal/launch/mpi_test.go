package launch

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeMPIRun is a stand-in for mpirun that behaves as Open MPI does where
// it matters here: it starts -np processes, each in a process group of its
// own with its rank in OMPI_COMM_WORLD_RANK, and when one dies it exits at
// once with that status, leaving the others orphaned (the spawner must
// find and end them). On SIGTERM it exits without killing them.
const fakeMPIRun = `#!/bin/bash
[ "$1" = -np ] || exit 2
n=$2; shift 2
echo "fake mpirun: $n ranks, token=${CUTPOINT_NATS_TOKEN:-none} fwd=${OMPI_MCA_mca_base_env_list:-none}"
for ((i = 0; i < n; i++)); do
  OMPI_COMM_WORLD_RANK=$i OMPI_COMM_WORLD_SIZE=$n setsid "$@" &
done
trap 'exit 143' TERM
wait -n
exit $?
`

func writeFakeMPIRun(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "mpirun")
	if err := os.WriteFile(p, []byte(fakeMPIRun), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func worldExits(t *testing.T, m *MPI, n int) []Exit {
	t.Helper()
	var out []Exit
	for len(out) < n {
		select {
		case e := <-m.Exits():
			out = append(out, e)
		case <-time.After(20 * time.Second):
			t.Fatalf("%d of %d exits reported", len(out), n)
		}
	}
	return out
}

func worldProcsLeft(m *MPI) []worldProc {
	return worldProcs(func(v string) bool { return strings.HasPrefix(v, m.nonce+".") })
}

func group(n int, spawn uint64, env ...string) []Proc {
	procs := make([]Proc, n)
	for r := range n {
		procs[r] = Proc{Rank: r, Spawn: spawn, Env: append([]string{"CUTPOINT_RANK=" + string(rune('0'+r))}, env...)}
	}
	return procs
}

func TestMPIWorldLifecycle(t *testing.T) {
	if _, err := os.Stat("/proc/self/environ"); err != nil {
		t.Skip("no /proc: the MPI spawner finds a world's processes there")
	}
	var out buf
	m, err := NewMPI(MPIConfig{Argv: []string{writeFakeMPIRun(t), "-np", "3", "sleep", "60"}, World: 3,
		Env: []string{"CUTPOINT_NATS_TOKEN=s3cret"}, Out: &out, TermWait: 200 * time.Millisecond, KillWait: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()

	// A part of the world cannot start: MPI replaces no single process.
	if err := m.SpawnGroup(group(3, 1)[:2]); err == nil || !strings.Contains(err.Error(), "whole") {
		t.Fatalf("a partial world: %v", err)
	}
	if err := m.Spawn(1, 1, nil); err == nil {
		t.Fatal("a single rank of a world of 3 started")
	}
	if err := m.SpawnGroup(group(3, 1, "CUTPOINT_SPAWN=1")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(worldProcsLeft(m)) < 3 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	ps := worldProcsLeft(m)
	var ranks []int
	for _, p := range ps {
		ranks = append(ranks, p.rank)
	}
	slices.Sort(ranks)
	// The launcher itself carries the marker too (rank -1).
	if !slices.Equal(ranks, []int{-1, 0, 1, 2}) {
		t.Fatalf("world processes %+v", ps)
	}
	// One rank killed: the world ends, every rank's exit is reported, and
	// the orphaned ranks are gone by then.
	if err := m.Signal(1, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	exits := worldExits(t, m, 3)
	for r, e := range exits {
		if e.Rank != r || e.Spawn != 1 || e.Killed || e.Code != 137 || !e.World {
			t.Fatalf("exit %d: %+v (want rank %d, spawn 1, code 137 from the launcher)", r, e, r)
		}
	}
	if left := worldProcsLeft(m); len(left) != 0 {
		t.Fatalf("processes of the ended world left: %+v", left)
	}
	// The relaunch at spawn 2; Kill of any rank ends the whole world.
	if err := m.SpawnGroup(group(3, 2)); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(10 * time.Second)
	for len(worldProcsLeft(m)) < 4 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if err := m.Kill(context.Background(), 2, 2); err != nil {
		t.Fatal(err)
	}
	if left := worldProcsLeft(m); len(left) != 0 {
		t.Fatalf("Kill returned with processes of the world left: %+v", left)
	}
	for _, e := range worldExits(t, m, 3) {
		if e.Spawn != 2 || !e.Killed {
			t.Fatalf("exit after Kill: %+v", e)
		}
	}
	// Killing an ended world again is no error.
	if err := m.Kill(context.Background(), 0, 2); err != nil {
		t.Fatal(err)
	}
	o := out.String()
	if !strings.Contains(o, "fake mpirun: 3 ranks, token=s3cret") {
		t.Fatalf("launcher output %q", o)
	}
	// Open MPI is told to pass the variables on to other nodes.
	if !strings.Contains(o, "fwd=CUTPOINT_NATS_TOKEN;CUTPOINT_SPAWN;"+EnvMPIWorld) {
		t.Fatalf("forward list missing in %q", o)
	}
}

func TestMPIForwardList(t *testing.T) {
	m := &MPI{cfg: MPIConfig{Argv: []string{"mpirun", "-np", "2", "./a"}, Env: []string{"A=1", "B=2"}}}
	if got := m.forwardList(nil, []string{"C=3", "A=9"}); got != "A;B;C;"+EnvMPIWorld {
		t.Fatalf("forward list %q", got)
	}
	m.cfg.Argv = []string{"mpirun", "-x", "FOO", "-np", "2", "./a"}
	if got := m.forwardList(nil, nil); got != "" {
		t.Fatalf("with -x: %q (Open MPI refuses -x and mca_base_env_list together)", got)
	}
	m.cfg.Argv = []string{"mpirun", "./a"}
	if got := m.forwardList([]string{"OMPI_MCA_mca_base_env_list=X"}, nil); got != "" {
		t.Fatalf("with the list set: %q", got)
	}
}

func TestParentPid(t *testing.T) {
	if pp := parentPid(os.Getpid()); pp != os.Getppid() {
		t.Fatalf("parentPid %d, want %d", pp, os.Getppid())
	}
}
