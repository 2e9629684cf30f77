package main

// The MPI mode end to end: heat2d_mpi.c (MPI_Sendrecv halos, a barrier and
// cutpoint_checkpoint_here every step) built with mpicc and run under a
// real `cutpoint run -- mpirun -np 4`, undisturbed and with one MPI
// process SIGKILLed after a cut committed; both must end with the Go
// heat2d's digest, and the killed run must have relaunched the whole world
// from a committed cut.

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// mpiRunArgs is the MPI launcher's command line for n ranks of bin. Open
// MPI refuses to run as root without --allow-run-as-root and to start more
// processes than cores without --oversubscribe; MPICH's hydra needs
// neither.
func mpiRunArgs(t *testing.T, mpirun string, n int, bin string, args ...string) []string {
	t.Helper()
	out, _ := exec.Command(mpirun, "--version").CombinedOutput()
	cmd := []string{mpirun}
	if bytes.Contains(out, []byte("Open MPI")) || bytes.Contains(out, []byte("OpenRTE")) {
		cmd = append(cmd, "--allow-run-as-root", "--oversubscribe")
	}
	cmd = append(cmd, "-np", strconv.Itoa(n), bin)
	return append(cmd, args...)
}

// heat2dMPISteps and heat2dMPIPace (microseconds of sleep per step): the
// run lasts at least 2 s however fast the machine, so cuts commit well
// before the end; the pace does not change the result.
const (
	heat2dMPISteps = "20000"
	heat2dMPIPace  = "100"
)

func TestMPIHeat2DWholeWorldRelaunch(t *testing.T) {
	mpicc := needTool(t, "mpicc")
	mpirun := needTool(t, "mpirun")
	tl := buildTools(t)
	root := moduleRoot(t)
	bin := filepath.Join(t.TempDir(), "heat2d_mpi")
	compile(t, mpicc, "-std=c99", "-O2", "-ffp-contract=off", "-Wall", "-Wextra", "-Werror", "-I"+tl.include,
		"-I"+filepath.Join(root, "examples", "c"), "-o", bin, filepath.Join(root, "examples", "mpi", "heat2d_mpi.c"),
		filepath.Join(root, "examples", "c", "sha256.c"), "-L"+tl.dir, "-lcutpoint", "-Wl,-rpath,"+tl.dir, "-lm")
	world := mpiRunArgs(t, mpirun, 4, bin, heat2dSize, heat2dMPISteps, "0.2", heat2dMPIPace)

	goRef := runJob(t, tl, "--ranks", "4", "--size", heat2dSize, "--steps", heat2dMPISteps)
	plain := runJob(t, tl, append([]string{"--every-steps", "200", "--"}, world...)...)
	if plain.digest != goRef.digest {
		t.Fatalf("MPI heat2d digest %s, Go heat2d %s", plain.digest, goRef.digest)
	}
	if !strings.Contains(plain.stderr, `msg="cut committed" component=coordinator`) {
		t.Fatalf("the undisturbed MPI run committed no cut:\n%s", tailLines(plain.stderr, 40))
	}

	hurt := runKilledMPI(t, tl, bin, append([]string{"--every-steps", "200", "--"}, world...)...)
	if hurt.digest != plain.digest {
		t.Fatalf("MPI heat2d with a process killed: digest %s, undisturbed %s", hurt.digest, plain.digest)
	}
	// The whole world was relaunched from a committed cut: the recovery
	// names its cut, and all four ranks restored it.
	if !regexp.MustCompile(`recovery-started g=2 e=[1-9][0-9]* step=[1-9]`).MatchString(hurt.stderr) ||
		!strings.Contains(hurt.stderr, "recovery-finished g=2") {
		t.Fatalf("no relaunch from a committed cut:\n%s", tailLines(hurt.stderr, 60))
	}
	restored := map[string]bool{}
	for _, m := range regexp.MustCompile(`restored rank=([0-9]+) cut=[1-9]`).FindAllStringSubmatch(hurt.stderr, -1) {
		restored[m[1]] = true
	}
	if len(restored) != 4 {
		t.Fatalf("ranks %v restored a cut, want the whole world of 4:\n%s", restored, tailLines(hurt.stderr, 60))
	}
}

// TestMPIFortranJob: heat1d_mpi.f90 (MPI_Sendrecv, MPI_Barrier,
// cp_checkpoint_here) built with mpifort; with a process killed after a
// cut it ends with the undisturbed run's digest.
func TestMPIFortranJob(t *testing.T) {
	mpifort := needTool(t, "mpifort")
	mpirun := needTool(t, "mpirun")
	tl := buildTools(t)
	root := moduleRoot(t)
	dir := t.TempDir()
	obj := filepath.Join(dir, "cutpoint.o")
	bin := filepath.Join(dir, "heat1d_mpi")
	compile(t, mpifort, "-std=f2018", "-Wall", "-Werror", "-J", dir, "-c", filepath.Join(root, "cmd", "libcutpoint", "include", "cutpoint.f90"), "-o", obj)
	compile(t, mpifort, "-Wall", "-Werror", "-I", dir, "-o", bin, filepath.Join(root, "examples", "mpi", "heat1d_mpi.f90"), obj,
		"-L"+tl.dir, "-lcutpoint", "-Wl,-rpath,"+tl.dir)
	world := append([]string{"--every-steps", "2000", "--"}, mpiRunArgs(t, mpirun, 3, bin, "200", "20000", "100")...)
	plain := runJob(t, tl, world...)
	hurt := runKilledMPI(t, tl, bin, world...)
	if hurt.digest != plain.digest {
		t.Fatalf("Fortran MPI job with a process killed: digest %s, undisturbed %s", hurt.digest, plain.digest)
	}
	if !regexp.MustCompile(`recovery-started g=2 e=[1-9][0-9]* step=[1-9]`).MatchString(hurt.stderr) {
		t.Fatalf("no relaunch from a committed cut:\n%s", tailLines(hurt.stderr, 60))
	}
}

// TestMPIPythonJob: the Python binding's MPI mode (Rank(mpi=True),
// checkpoint_here) under mpirun, undisturbed and with a process killed
// after a cut; the job exchanges nothing, so no barrier is needed.
func TestMPIPythonJob(t *testing.T) {
	mpirun := needTool(t, "mpirun")
	py := python(t)
	tl := buildTools(t)
	root := moduleRoot(t)
	script, err := filepath.Abs(filepath.Join("testdata", "mpi_job.py"))
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("PYTHONPATH", filepath.Join(root, "python", "src"))
	t.Setenv("PYTHONDONTWRITEBYTECODE", "1")
	t.Setenv("CUTPOINT_LIB", filepath.Join(tl.dir, "libcutpoint.so"))
	world := append([]string{"--every-steps", "500", "--"}, mpiRunArgs(t, mpirun, 3, py, script, "10000", "0.0002")...)
	plain := runJob(t, tl, world...)
	hurt := runKilledMPI(t, tl, script, world...)
	if hurt.digest != plain.digest {
		t.Fatalf("Python MPI job with a process killed: digest %s, undisturbed %s", hurt.digest, plain.digest)
	}
	if !regexp.MustCompile(`recovery-started g=2 e=[1-9][0-9]* step=[1-9]`).MatchString(hurt.stderr) {
		t.Fatalf("no relaunch from a committed cut:\n%s", tailLines(hurt.stderr, 60))
	}
}

// runKilledMPI runs `cutpoint run` and, once the first cut committed,
// SIGKILLs one process of the MPI world (found in /proc by prog, its
// executable or script) as a node failure would.
func runKilledMPI(t *testing.T, tl tools, prog string, args ...string) runResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	dir := t.TempDir()
	full := append([]string{"run", "--store", filepath.Join(dir, "store"), "--heartbeat-interval", "100ms"}, args...)
	cmd := exec.CommandContext(ctx, tl.cutpoint, full...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CUTPOINT_CONFIG=/dev/null", "LD_LIBRARY_PATH="+tl.dir)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var stderr strings.Builder
	killed := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pipe)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			mu.Lock()
			stderr.WriteString(line + "\n")
			if killed == 0 && strings.Contains(line, `msg="cut committed" component=coordinator`) {
				if pid := worldProcess(prog); pid > 0 && syscall.Kill(pid, syscall.SIGKILL) == nil {
					killed = pid
					stderr.WriteString("test: SIGKILL of MPI process " + strconv.Itoa(pid) + "\n")
				}
			}
			mu.Unlock()
		}
	}()
	<-done
	werr := cmd.Wait()
	mu.Lock()
	defer mu.Unlock()
	if werr != nil {
		t.Fatalf("cutpoint %s: %v\nstderr:\n%s", strings.Join(full, " "), werr, tailLines(stderr.String(), 60))
	}
	if killed == 0 {
		t.Fatalf("no MPI process was running when the first cut committed:\n%s", tailLines(stderr.String(), 40))
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	d, ok := strings.CutPrefix(lines[len(lines)-1], "result ")
	if !ok || len(d) != 64 {
		t.Fatalf("last stdout line %q, want \"result <digest>\"\nstderr:\n%s", lines[len(lines)-1], tailLines(stderr.String(), 40))
	}
	return runResult{digest: d, stderr: stderr.String()}
}

// worldProcess returns the pid of a running process that has prog in its
// command line and is rank 1 of its MPI world (any rank if none says so),
// or 0.
func worldProcess(prog string) int {
	ents, _ := os.ReadDir("/proc")
	any := 0
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		argv, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !slices.Contains(strings.Split(string(argv), "\x00"), prog) {
			continue
		}
		env, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if bytes.Contains(env, []byte("\x00OMPI_COMM_WORLD_RANK=1\x00")) || bytes.Contains(env, []byte("\x00PMI_RANK=1\x00")) {
			return pid
		}
		any = pid
	}
	return any
}
