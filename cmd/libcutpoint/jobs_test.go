package main

// End-to-end tests of jobs written in other languages on libcutpoint: the
// library is built as a real shared library, the job with gcc (gfortran,
// Python), and each runs under a real `cutpoint run` with 4 rank processes,
// undisturbed and with a rank SIGKILLed mid-run; both must end with the
// digest of the Go heat2d (or of the undisturbed run).

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// tools holds what every test builds once: the cutpoint command, the
// shared library and the header folder.
type tools struct {
	dir      string // bin folder: cutpoint, libcutpoint.so
	cutpoint string
	include  string
	err      error
}

var (
	toolsOnce sync.Once
	built     tools
)

// TestMain removes the tools built for the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

// buildTools builds the cutpoint command and libcutpoint.so (once per test
// binary; the go build cache makes later runs quick).
func buildTools(t *testing.T) tools {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: builds the shared library and runs real jobs")
	}
	root := moduleRoot(t)
	toolsOnce.Do(func() {
		dir, err := os.MkdirTemp("", "libcutpoint-test-")
		if err != nil {
			built.err = err
			return
		}
		built = tools{dir: dir, cutpoint: filepath.Join(dir, "cutpoint"), include: filepath.Join(root, "cmd", "libcutpoint", "include")}
		for _, args := range [][]string{
			{"build", "-o", built.cutpoint, "./cmd/cutpoint"},
			{"build", "-buildmode=c-shared", "-o", filepath.Join(dir, "libcutpoint.so"), "./cmd/libcutpoint"},
		} {
			cmd := exec.Command("go", args...)
			cmd.Dir = root
			if out, err := cmd.CombinedOutput(); err != nil {
				built.err = &buildError{args: args, out: string(out), err: err}
				return
			}
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built
}

type buildError struct {
	args []string
	out  string
	err  error
}

func (e *buildError) Error() string {
	return "go " + strings.Join(e.args, " ") + ": " + e.err.Error() + "\n" + e.out
}

// needTool skips the test when a compiler or interpreter is missing.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed (scripts/deps.sh installs it): skipping the job built with it", name)
	}
	return p
}

// compile runs a compiler command, failing the test with its output.
func compile(t *testing.T, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

type runResult struct {
	digest string
	stderr string
}

// runJob runs `cutpoint run` with args in a fresh folder and returns the
// digest of its last stdout line.
func runJob(t *testing.T, tl tools, args ...string) runResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	dir := t.TempDir()
	full := append([]string{"run", "--store", filepath.Join(dir, "store"), "--heartbeat-interval", "100ms"}, args...)
	cmd := exec.CommandContext(ctx, tl.cutpoint, full...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CUTPOINT_CONFIG=/dev/null", "LD_LIBRARY_PATH="+tl.dir)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("cutpoint %s: %v\nstderr:\n%s", strings.Join(full, " "), err, tailLines(stderr.String(), 40))
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	d, ok := strings.CutPrefix(lines[len(lines)-1], "result ")
	if !ok || len(d) != 64 {
		t.Fatalf("cutpoint %s: last stdout line %q, want \"result <digest>\"\nstderr:\n%s", strings.Join(full, " "), lines[len(lines)-1], tailLines(stderr.String(), 40))
	}
	return runResult{digest: d, stderr: stderr.String()}
}

func tailLines(s string, n int) string {
	l := strings.Split(s, "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// checkRecovered fails unless the run lost a rank and recovered it.
func checkRecovered(t *testing.T, r runResult) {
	t.Helper()
	if !strings.Contains(r.stderr, "fault injection: SIGKILL") || !strings.Contains(r.stderr, "recovery-finished") {
		t.Fatalf("no kill and recovery in the run:\n%s", tailLines(r.stderr, 40))
	}
}

// heat2dSize and heat2dSteps are small enough for a few seconds on two
// cores, long enough for cuts to commit before the kill.
const (
	heat2dSize  = "64"
	heat2dSteps = "5000"
	killSpec    = "1@2000"
)

func TestCHeat2DMatchesGo(t *testing.T) {
	cc := needTool(t, "gcc")
	tl := buildTools(t)
	root := moduleRoot(t)
	bin := filepath.Join(t.TempDir(), "heat2d-c")
	src := filepath.Join(root, "examples", "c")
	compile(t, cc, "-std=c99", "-O2", "-ffp-contract=off", "-Wall", "-Wextra", "-Werror", "-I"+tl.include,
		"-o", bin, filepath.Join(src, "heat2d.c"), filepath.Join(src, "sha256.c"),
		"-L"+tl.dir, "-lcutpoint", "-Wl,-rpath,"+tl.dir, "-lm")

	goRef := runJob(t, tl, "--ranks", "4", "--size", heat2dSize, "--steps", heat2dSteps)
	plain := runJob(t, tl, "--ranks", "4", "--", bin, heat2dSize, heat2dSteps)
	if plain.digest != goRef.digest {
		t.Fatalf("C heat2d digest %s, Go heat2d %s", plain.digest, goRef.digest)
	}
	hurt := runJob(t, tl, "--ranks", "4", "--every-steps", "100", "--kill", killSpec, "--", bin, heat2dSize, heat2dSteps)
	checkRecovered(t, hurt)
	if hurt.digest != goRef.digest {
		t.Fatalf("C heat2d with rank 1 killed: digest %s, Go heat2d %s", hurt.digest, goRef.digest)
	}

	// The same program linked with the static archive.
	archive := filepath.Join(t.TempDir(), "libcutpoint.a")
	build := exec.Command("go", "build", "-buildmode=c-archive", "-o", archive, "./cmd/libcutpoint")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build -buildmode=c-archive: %v\n%s", err, out)
	}
	static := filepath.Join(t.TempDir(), "heat2d-static")
	compile(t, cc, "-std=c99", "-O2", "-ffp-contract=off", "-Wall", "-Werror", "-I"+tl.include,
		"-o", static, filepath.Join(src, "heat2d.c"), filepath.Join(src, "sha256.c"), archive, "-lpthread", "-lm")
	if st := runJob(t, tl, "--ranks", "4", "--", static, heat2dSize, heat2dSteps); st.digest != goRef.digest {
		t.Fatalf("C heat2d linked statically: digest %s, Go heat2d %s", st.digest, goRef.digest)
	}
}

// TestHeaderCompiles: cutpoint.h compiles as C99 and C++ with every warning
// an error, and a program calling every function links against the
// library (so each declared function exists).
func TestHeaderCompiles(t *testing.T) {
	tl := buildTools(t)
	dir := t.TempDir()
	prog := `#include "cutpoint.h"
#include <stdio.h>
int main(void) {
    cutpoint_rank r = 0;
    int64_t s = 0, c = 0, b = 0;
    int32_t me = 0, w = 0;
    size_t n = 0;
    char buf[8];
    void *ring[2] = {buf, buf};
    if (cutpoint_abi_version() < CUTPOINT_ABI_VERSION) return 1;
    /* No launcher environment: join fails with a message. */
    int rc = cutpoint_join(NULL, 0, 0, &r);
    printf("join %d %s: %s\n", rc, cutpoint_status_string(rc), cutpoint_last_error());
    if (rc != CUTPOINT_ERROR) return 2;
    rc = cutpoint_send(12345, 0, buf, 1);
    printf("send %d: %s\n", rc, cutpoint_last_error());
    if (rc != CUTPOINT_INVALID) return 3;
    (void)cutpoint_identity(r, &me, &w);
    (void)cutpoint_protect_host(r, "x", buf, sizeof buf, 8);
    (void)cutpoint_protect_host_ring(r, "y", ring, 2, sizeof buf, 8);
    (void)cutpoint_protect_cuda(r, "z", 0, 0, 8);
    (void)cutpoint_start(r, &s);
    (void)cutpoint_recv(r, 0, buf, sizeof buf, &n);
    (void)cutpoint_safe_point(r, 1, &s);
    (void)cutpoint_join_mpi(0, &r);
    (void)cutpoint_checkpoint_here(r, 1);
    (void)cutpoint_finish(r, NULL, 0);
    (void)cutpoint_exit_code(r);
    (void)cutpoint_stats(r, &c, &b);
    (void)cutpoint_close(r);
    uint8_t d[32];
    if (cutpoint_sha256("abc", 3, d) != CUTPOINT_OK || d[0] != 0xba || d[31] != 0xad) return 4;
    return 0;
}
`
	cases := []struct{ compiler, file string }{{"gcc", "t.c"}, {"g++", "t.cc"}}
	for _, c := range cases {
		t.Run(c.compiler, func(t *testing.T) {
			cc := needTool(t, c.compiler)
			src := filepath.Join(dir, c.file)
			if err := os.WriteFile(src, []byte(prog), 0o644); err != nil {
				t.Fatal(err)
			}
			std := "-std=c99"
			if c.compiler == "g++" {
				std = "-std=c++11"
			}
			bin := filepath.Join(dir, c.compiler+".bin")
			compile(t, cc, std, "-Wall", "-Wextra", "-pedantic", "-Werror", "-I"+tl.include, "-o", bin, src,
				"-L"+tl.dir, "-lcutpoint", "-Wl,-rpath,"+tl.dir)
			cmd := exec.Command(bin)
			cmd.Env = []string{"PATH=/usr/bin:/bin"} // no CUTPOINT_* variables
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%s: %v\n%s", bin, err, out)
			}
			if !strings.Contains(string(out), "CUTPOINT_NATS") {
				t.Fatalf("join's message does not name the missing variable:\n%s", out)
			}
		})
	}
}

// TestHeaderDeclaresEveryExport: every function the library exports is
// declared in cutpoint.h and every function cutpoint.h declares is exported
// (by exports.go or written in status.c).
func TestHeaderDeclaresEveryExport(t *testing.T) {
	read := func(name string) string {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	header := read(filepath.Join("include", "cutpoint.h"))
	exported := map[string]bool{}
	for _, line := range strings.Split(read("exports.go"), "\n") {
		if name, ok := strings.CutPrefix(line, "//export "); ok {
			exported[strings.TrimSpace(name)] = true
		}
	}
	for _, name := range []string{"cutpoint_abi_version", "cutpoint_status_string", "cutpoint_last_error"} {
		if !strings.Contains(read("status.c"), name+"(") {
			t.Errorf("status.c does not define %s", name)
		}
		exported[name] = true
	}
	declared := map[string]bool{}
	for _, line := range strings.Split(header, "\n") {
		// Declarations start at column 0 with a return type.
		if line == "" || line[0] == ' ' || line[0] == '#' || line[0] == '/' || line[0] == '*' {
			continue
		}
		i := strings.Index(line, "cutpoint_")
		j := strings.Index(line, "(")
		if i < 0 || j < i {
			continue
		}
		declared[strings.TrimLeft(line[i:j], "*")] = true
	}
	for name := range exported {
		if !declared[name] {
			t.Errorf("%s is exported but not declared in cutpoint.h", name)
		}
	}
	for name := range declared {
		if !exported[name] {
			t.Errorf("cutpoint.h declares %s, which the library does not export", name)
		}
	}
	if len(declared) < 15 {
		t.Errorf("found only %d declarations in cutpoint.h: %v", len(declared), declared)
	}
}

// python finds an interpreter with NumPy and pytest (Debian's python3 when
// scripts/deps.sh installed python3-numpy and python3-pytest).
func python(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(p, "-c", "import numpy, pytest, setuptools").Run() == nil {
			return p
		}
	}
	t.Skip("no python3 with numpy, pytest and setuptools (scripts/deps.sh installs them): skipping the Python job")
	return ""
}

// copyTree copies the files under src to dst.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			if d.Name() == "build" || d.Name() == "__pycache__" || strings.HasSuffix(d.Name(), ".egg-info") || strings.HasPrefix(d.Name(), ".") && rel != "." {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestPythonPackage installs the package with pip the documented way (no
// build isolation: setuptools from the system, nothing downloaded) and runs
// its pytest suite, whose job runs under cutpoint run with a rank killed.
func TestPythonPackage(t *testing.T) {
	py := python(t)
	tl := buildTools(t)
	root := moduleRoot(t)
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	copyTree(t, filepath.Join(root, "python"), src) // pip builds in the source tree
	site := filepath.Join(tmp, "site")
	pip := exec.Command(py, "-m", "pip", "install", "-q", "--no-build-isolation", "--no-deps", "--no-index", "--target", site, src)
	if out, err := pip.CombinedOutput(); err != nil {
		t.Fatalf("pip install: %v\n%s", err, out)
	}
	cmd := exec.Command(py, "-m", "pytest", "-q", "-p", "no:cacheprovider", filepath.Join(src, "tests"))
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "PYTHONPATH="+site, "CUTPOINT_BIN="+tl.cutpoint,
		"CUTPOINT_LIB="+filepath.Join(tl.dir, "libcutpoint.so"), "PYTHONDONTWRITEBYTECODE=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("pytest: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "3 passed") {
		t.Fatalf("pytest did not run all three tests:\n%s", out)
	}
	t.Logf("pytest: %s", tailLines(strings.TrimSpace(string(out)), 1))
}

// TestFortranJob builds cutpoint.f90 and a Fortran heat job with gfortran;
// with a rank killed mid-run it ends with the undisturbed run's digest.
func TestFortranJob(t *testing.T) {
	fc := needTool(t, "gfortran")
	tl := buildTools(t)
	root := moduleRoot(t)
	dir := t.TempDir()
	obj := filepath.Join(dir, "cutpoint.o")
	bin := filepath.Join(dir, "heat1d")
	compile(t, fc, "-std=f2018", "-Wall", "-Werror", "-J", dir, "-c", filepath.Join(root, "cmd", "libcutpoint", "include", "cutpoint.f90"), "-o", obj)
	compile(t, fc, "-Wall", "-Werror", "-I", dir, "-o", bin, filepath.Join(root, "examples", "fortran", "heat1d.f90"), obj,
		"-L"+tl.dir, "-lcutpoint", "-Wl,-rpath,"+tl.dir)
	args := []string{"--", bin, "200", "16000"}
	plain := runJob(t, tl, append([]string{"--ranks", "4"}, args...)...)
	hurt := runJob(t, tl, append([]string{"--ranks", "4", "--every-steps", "400", "--kill", "2@6000"}, args...)...)
	checkRecovered(t, hurt)
	if hurt.digest != plain.digest {
		t.Fatalf("Fortran job with rank 2 killed: digest %s, undisturbed %s", hurt.digest, plain.digest)
	}
}

// TestABIContracts runs testdata/abi.c as a 3-rank job: argument checks,
// status codes before and after start, a message too large for the buffer
// kept for the next receive, the per-thread last error, empty messages,
// closing twice.
func TestABIContracts(t *testing.T) {
	cc := needTool(t, "gcc")
	tl := buildTools(t)
	bin := filepath.Join(t.TempDir(), "abi")
	compile(t, cc, "-std=c99", "-Wall", "-Wextra", "-Werror", "-pthread", "-I"+tl.include, "-o", bin,
		filepath.Join("testdata", "abi.c"), "-L"+tl.dir, "-lcutpoint", "-Wl,-rpath,"+tl.dir)
	res := runJob(t, tl, "--ranks", "3", "--", bin)
	ok := sha256.Sum256([]byte("ok"))
	if res.digest != hex.EncodeToString(ok[:]) {
		t.Fatalf("abi.c reported failures (digest %s):\n%s", res.digest, tailLines(res.stderr, 40))
	}
}
