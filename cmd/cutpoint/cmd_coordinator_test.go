package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cutpoint/cutpoint/ckpt"
	"github.com/cutpoint/cutpoint/coordinator/driver"
)

func TestCoordinatorSrunNeedsAnAllocation(t *testing.T) {
	t.Setenv("SLURM_JOB_ID", "")
	_, stderr, code := runCLI(t, "coordinator", "--nats", "nats://127.0.0.1:1", "--spawn", "srun", "--store", t.TempDir())
	if code != exitUsage || !strings.Contains(stderr, "not inside a Slurm allocation") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}

	t.Setenv("SLURM_JOB_ID", "77")
	t.Setenv("SLURM_NTASKS", "")
	_, stderr, code = runCLI(t, "coordinator", "--nats", "nats://127.0.0.1:1", "--spawn", "srun", "--store", t.TempDir())
	if code != exitUsage || !strings.Contains(stderr, "sbatch -n N") {
		t.Errorf("no task count: exit %d, stderr %q", code, stderr)
	}

	t.Setenv("SLURM_NTASKS", "2")
	_, stderr, code = runCLI(t, "coordinator", "--nats", "nats://127.0.0.1:1", "--spawn", "srun", "--ranks", "4", "--store", t.TempDir())
	if code != exitUsage || !strings.Contains(stderr, "--ranks 4 but the allocation has 2 tasks") {
		t.Errorf("too many ranks: exit %d, stderr %q", code, stderr)
	}
}

func TestCoordinatorFlagChecks(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--spawn", "mpirun"}, `--spawn "mpirun": want local, srun or none`},
		{[]string{"--srun-args", "--gpus-per-task=1"}, "--srun-args needs --spawn srun"},
		{[]string{"--rejoin", "--restore-if-exists"}, "--rejoin excludes --restore and --restore-if-exists"},
		{[]string{"--standby", "--rejoin"}, "--standby excludes --rejoin"},
		{[]string{"--standby", "--restore"}, "--standby excludes --rejoin"},
		{[]string{"--standby", "--spawn", "srun"}, "--standby needs --spawn local or none"},
		{[]string{"--standby", "--heartbeat-interval", "1ms"}, "--heartbeat-interval 1ms"},
		{[]string{"--standby"}, "--standby needs the job key"},
	} {
		args := append([]string{"coordinator", "--nats", "nats://127.0.0.1:1", "--store", t.TempDir()}, c.args...)
		_, stderr, code := runCLI(t, args...)
		if code != exitUsage || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q", c.args, code, stderr)
		}
	}
}

func TestJobInStore(t *testing.T) {
	ctx := context.Background()
	g := &GlobalOptions{}
	_ = g.setupLogging()
	dir := t.TempDir()
	for _, d := range []string{filepath.Join(dir, "absent"), dir} {
		found, err := jobInStore(ctx, g, d, "j")
		if err != nil || found {
			t.Errorf("%s: found=%v err=%v, want a new job", d, found, err)
		}
	}
	s, err := ckpt.OpenDir(ctx, dir, ckpt.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutJobFile(ctx, "j", driver.JobRecordFile, []byte("{}")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if found, err := jobInStore(ctx, g, dir, "j"); err != nil || !found {
		t.Errorf("job with a record: found=%v err=%v", found, err)
	}
	if found, err := jobInStore(ctx, g, dir, "other"); err != nil || found {
		t.Errorf("another job: found=%v err=%v", found, err)
	}
	if _, err := jobInStore(ctx, g, dir, "../x"); exitCode(err) != exitUsage {
		t.Errorf("bad job name: %v", err)
	}
	// A file is no store: no job to restore (opening it as the new job's
	// store then fails with its own message).
	if err := os.WriteFile(filepath.Join(dir, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if found, err := jobInStore(ctx, g, filepath.Join(dir, "file"), "j"); err != nil || found {
		t.Errorf("a file: found=%v err=%v", found, err)
	}
}
