package main

// End-to-end tests: real `cutpoint run` processes (this test binary, re-run
// as the cutpoint command), real rank processes, an embedded nats-server on
// a random loopback port, a real store with fsync, real SIGKILLs.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cutpoint/cutpoint/ckpt"
)

const envAsMain = "CUTPOINT_TEST_AS_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(envAsMain) == "1" {
		// Re-executed as the cutpoint command (by a test, or by `run` to
		// start a rank).
		hostileRank()
		os.Exit(run(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// job is a small heat2d job that runs a few seconds on two cores.
// A short lease ttl (a restore after a SIGKILL waits for the killed
// coordinator's lease to expire), but well above an fsync stall on a
// loaded machine, which would end a job that cannot renew in time.
var job = []string{"--ranks", "4", "--size", "96", "--steps", "6000", "--heartbeat-interval", "100ms", "--lease-ttl", "3s"}

// cmdline builds a cutpoint process.
func cutpoint(t *testing.T, env []string, args ...string) *exec.Cmd {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, args...)
	cmd.Env = append(append(os.Environ(), envAsMain+"=1", "CUTPOINT_CONFIG=/dev/null"), env...)
	cmd.Dir = t.TempDir()
	// Own process group, so a test can kill a launcher with its ranks.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd
}

type result struct {
	stdout, stderr string
	code           int
}

func (r result) digest(t *testing.T) string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	last := lines[len(lines)-1]
	d, ok := strings.CutPrefix(last, "result ")
	if !ok || len(d) != 64 {
		t.Fatalf("last stdout line is %q, want \"result <digest>\"\nstderr:\n%s", last, tail(r.stderr, 60))
	}
	return d
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// runCmd runs cmd to its end (bounded) and returns its output and exit code.
func runCmd(t *testing.T, cmd *exec.Cmd) result {
	t.Helper()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(3 * time.Minute):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		t.Fatalf("%v did not finish in 3 minutes\nstderr:\n%s", cmd.Args, tail(errb.String(), 80))
	}
	return result{out.String(), errb.String(), cmd.ProcessState.ExitCode()}
}

func runOK(t *testing.T, env []string, args ...string) result {
	t.Helper()
	r := runCmd(t, cutpoint(t, env, args...))
	if r.code != 0 {
		t.Fatalf("cutpoint %s: exit %d\nstderr:\n%s", strings.Join(args, " "), r.code, tail(r.stderr, 80))
	}
	return r
}

var (
	refOnce   sync.Once
	refDigest string
)

// reference is the digest of the job run without cuts or failures.
func reference(t *testing.T) string {
	refOnce.Do(func() {
		store := filepath.Join(t.TempDir(), "store")
		refDigest = runOK(t, nil, append([]string{"run", "--store", store, "--interval", "0"}, job...)...).digest(t)
	})
	if refDigest == "" {
		t.Fatal("no reference digest")
	}
	return refDigest
}

func committed(t *testing.T, store, jobName string) []ckpt.CutInfo {
	t.Helper()
	s, err := ckpt.OpenDir(context.Background(), store, ckpt.Options{})
	if err != nil {
		return nil
	}
	defer s.Close()
	cuts, _ := s.List(context.Background(), jobName)
	return cuts
}

func verifyStore(t *testing.T, store string) {
	t.Helper()
	out, errs, code := runCLI(t, "verify", "--store", store)
	if code != 0 {
		t.Fatalf("verify: exit %d\n%s%s", code, out, errs)
	}
}

func TestRunDigestUnchangedByCuts(t *testing.T) {
	want := reference(t)
	store := filepath.Join(t.TempDir(), "store")
	r := runOK(t, nil, append([]string{"run", "--store", store, "--interval", "0", "--every-steps", "50"}, job...)...)
	if got := r.digest(t); got != want {
		t.Fatalf("digest with cuts %s, without %s", got, want)
	}
	if n := len(committed(t, store, "heat2d")); n == 0 {
		t.Fatal("no cut committed")
	}
	verifyStore(t, store)
	// Packs through the page cache instead of O_DIRECT: the same cuts.
	buffered := filepath.Join(t.TempDir(), "buffered")
	if got := runOK(t, nil, append([]string{"run", "--store", buffered, "--interval", "0", "--every-steps", "50", "--store-io", "buffered"}, job...)...).digest(t); got != want {
		t.Fatalf("digest with buffered cuts %s, without %s", got, want)
	}
	verifyStore(t, buffered)
	// The same global grid on one rank: the digest is of the grid, not of
	// the decomposition.
	one := runOK(t, nil, "run", "--store", filepath.Join(t.TempDir(), "s1"), "--interval", "0",
		"--ranks", "1", "--size", "192", "--steps", "6000").digest(t)
	if want != one {
		t.Fatalf("4 ranks of 96x96: %s; 1 rank of 192x192: %s", want, one)
	}
}

// TestRunSurvivesRankKills kills ranks with SIGKILL at chosen protocol
// points (in the middle of a capture, of a shard write, after a shard is
// durable, after its report, in the middle of a restore) and at random
// steps; every run must end with the undisturbed digest.
func TestRunSurvivesRankKills(t *testing.T) {
	want := reference(t)
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("CUTPOINT_E2E_SEED"); s != "" {
		fmt.Sscan(s, &seed)
	}
	t.Logf("seed %d (replay with CUTPOINT_E2E_SEED=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	cases := []struct {
		name  string
		fault string
		kills int // random --kill R@S
	}{
		{"mid-capture", "2:capture:2", 0},
		{"mid-write", "1:write:2", 0},
		{"durable-unreported", "3:durable:1", 0},
		{"reported-before-commit", "0:reported:2", 0},
		{"two-faults-and-random-kills", "1:write:3,2:reported:4", 2},
		{"random-kills", "", 3},
		{"restore-of-a-survivor", "0:durable:2,3:restore:1", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			store := filepath.Join(t.TempDir(), "store")
			args := append([]string{"run", "--store", store, "--interval", "0", "--every-steps", "60"}, job...)
			// Random kills spare the ranks armed with a fault, so that
			// every fault still strikes in the process it was set for.
			armed := map[int]bool{}
			for _, f := range strings.Split(c.fault, ",") {
				var r int
				if _, err := fmt.Sscanf(f, "%d:", &r); err == nil {
					armed[r] = true
				}
			}
			for range c.kills {
				r := rng.IntN(4)
				for armed[r] {
					r = rng.IntN(4)
				}
				// After the first commits: a loss before any commit
				// restarts every rank, armed ones included.
				args = append(args, "--kill", fmt.Sprintf("%d@%d", r, 2500+rng.IntN(3000)))
			}
			var env []string
			if c.fault != "" {
				env = append(env, "CUTPOINT_FAULT="+c.fault)
			}
			r := runOK(t, env, args...)
			if got := r.digest(t); got != want {
				t.Fatalf("digest %s, undisturbed %s (args %v, fault %q)", got, want, args, c.fault)
			}
			if !strings.Contains(r.stderr, "recovery-finished") {
				t.Fatalf("no recovery happened (args %v, fault %q)\n%s", args, c.fault, tail(r.stderr, 40))
			}
			// Every planned fault must really have struck, unless a
			// loss before the first commit restarted every rank.
			restartAll := strings.Count(r.stderr, "4 ranks to spawn") > 1
			for _, f := range strings.Split(c.fault, ",") {
				if restartAll {
					break
				}
				if f == "" {
					continue
				}
				p := strings.Split(f, ":")
				want := fmt.Sprintf("[rank %s] fault injection: SIGKILL at %s", p[0], p[1])
				if !strings.Contains(r.stderr, want) {
					dump := filepath.Join(os.TempDir(), "cutpoint-e2e-"+c.name+".log")
					os.WriteFile(dump, []byte(r.stderr), 0o644)
					t.Fatalf("fault %s did not strike (no %q in the log, full log in %s)\n%s", f, want, dump, tail(r.stderr, 40))
				}
			}
			verifyStore(t, store)
		})
	}
}

// waitCut waits until the store holds at least n cuts of job.
func waitCut(t *testing.T, store, jobName string, n int, proc *exec.Cmd, errb *syncBuf) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for len(committed(t, store, jobName)) < n {
		if time.Now().After(deadline) {
			t.Fatalf("no %d cuts after 90s\n%s", n, tail(errb.String(), 60))
		}
		if proc.ProcessState != nil {
			t.Fatalf("job ended before %d cuts\n%s", n, tail(errb.String(), 60))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestRestoreAfterWholeJobKilled(t *testing.T) {
	want := reference(t)
	store := filepath.Join(t.TempDir(), "store")
	args := append([]string{"run", "--store", store, "--interval", "0", "--every-steps", "100"}, job...)
	cmd := cutpoint(t, nil, args...)
	var errb syncBuf
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitCut(t, store, "heat2d", 1, cmd, &errb)
	// The whole job: launcher, embedded NATS, coordinator, ranks.
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	cmd.Wait()
	verifyStore(t, store)
	r := runOK(t, nil, append(args, "--restore")...)
	if got := r.digest(t); got != want {
		t.Fatalf("restored digest %s, undisturbed %s", got, want)
	}
	if !strings.Contains(r.stderr, "restored") {
		t.Fatalf("the ranks did not restore from a cut:\n%s", tail(r.stderr, 40))
	}
}

// TestSignals: SIGUSR1 takes a cut now; SIGTERM takes a final cut and stops
// with exit 5; --restore finishes the job with the undisturbed digest.
func TestSignals(t *testing.T) {
	want := reference(t)
	store := filepath.Join(t.TempDir(), "store")
	long := job
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	metricsAddr := ln.Addr().String()
	ln.Close()
	args := append([]string{"run", "--store", store, "--interval", "0", "--metrics", metricsAddr}, long...)
	cmd := cutpoint(t, nil, args...)
	var errb, outb syncBuf
	cmd.Stderr, cmd.Stdout = &errb, &outb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	waitLog(t, &errb, "job-running")
	syscall.Kill(cmd.Process.Pid, syscall.SIGUSR1)
	waitCut(t, store, "heat2d", 1, cmd, &errb)
	// The coordinator's Prometheus metrics count the cut (once the
	// driver has seen the manifest land, a moment after the rename).
	// With the current step (once a heartbeat of every rank says it ran)
	// and the live ranks, every metric labelled with the job.
	counted := regexp.MustCompile(`(?m)^cutpoint_cuts_committed_total\{job="heat2d"\} [1-9]`)
	stepped := regexp.MustCompile(`(?m)^cutpoint_step\{job="heat2d"\} [1-9]`)
	live := regexp.MustCompile(`(?m)^cutpoint_live_ranks\{job="heat2d"\} 4$`)
	var body []byte
	for deadline := time.Now().Add(10 * time.Second); !counted.Match(body) || !stepped.Match(body) || !live.Match(body); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("metrics do not count the committed cut, the step and the 4 live ranks:\n%s", body)
		}
		resp, err := http.Get("http://" + metricsAddr + "/metrics")
		if err != nil {
			t.Fatalf("metrics: %v", err)
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	syscall.Kill(cmd.Process.Pid, syscall.SIGTERM)
	cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != exitStoppedCut {
		if code == 0 {
			t.Skipf("the job finished before SIGTERM took effect (machine too fast for this job size)")
		}
		t.Fatalf("after SIGTERM: exit %d, want %d\n%s", code, exitStoppedCut, tail(errb.String(), 40))
	}
	cuts := committed(t, store, "heat2d")
	if len(cuts) < 2 || cuts[len(cuts)-1].Meta["final"] != "true" {
		t.Fatalf("want a final cut after the SIGUSR1 one, have %+v", cuts)
	}
	r := runOK(t, nil, append(args, "--restore")...)
	if got := r.digest(t); got != want {
		t.Fatalf("digest after stop and restore %s, undisturbed %s", got, want)
	}
}

// waitLog waits until the log holds text.
func waitLog(t *testing.T, b *syncBuf, text string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(b.String(), text) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the log after 60s:\n%s", text, tail(b.String(), 40))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// syncBuf is a buffer a child process writes into while the test reads it.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestCoordinatorKilled runs NATS, the coordinator and the ranks as
// separate processes, kills the coordinator with SIGKILL while the ranks run,
// and starts a new one with --rejoin: the job finishes with the undisturbed
// digest and the store verifies.
func TestCoordinatorKilled(t *testing.T) {
	want := reference(t)
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	if err := os.MkdirAll(store, 0o755); err != nil {
		t.Fatal(err)
	}
	urlFile := filepath.Join(dir, "nats.url")
	natsCmd := cutpoint(t, nil, "nats", "--url-file", urlFile, "--token", "e2e-token")
	if err := natsCmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { natsCmd.Process.Kill(); natsCmd.Wait() }()
	var url string
	for deadline := time.Now().Add(20 * time.Second); url == ""; time.Sleep(20 * time.Millisecond) {
		b, _ := os.ReadFile(urlFile)
		url = strings.TrimSpace(string(b))
		if time.Now().After(deadline) {
			t.Fatal("nats did not come up")
		}
	}
	coordArgs := []string{"coordinator", "--nats", url, "--store", store, "--ranks", "4", "--spawn", "none",
		"--interval", "0", "--every-steps", "100", "--heartbeat-interval", "100ms", "--lease-ttl", "3s"}
	// The ranks are started by hand (--spawn none): they, the coordinator
	// and the one that rejoins hold one job key.
	key := jobKeyEnv()
	coord := cutpoint(t, key, coordArgs...)
	var cerr syncBuf
	coord.Stderr = &cerr
	if err := coord.Start(); err != nil {
		t.Fatal(err)
	}
	var ranks []*exec.Cmd
	for r := range 4 {
		rc := cutpoint(t, append([]string{"CUTPOINT_NATS=" + url, "CUTPOINT_JOB=heat2d", "CUTPOINT_WORLD=4",
			"CUTPOINT_STORE=" + store, fmt.Sprintf("CUTPOINT_RANK=%d", r), "CUTPOINT_HEARTBEAT_INTERVAL=100ms"}, key...),
			"rank", "--size", "96", "--steps", "6000")
		rlog, _ := os.Create(filepath.Join(dir, fmt.Sprintf("rank%d.log", r)))
		rc.Stderr = rlog
		if err := rc.Start(); err != nil {
			t.Fatal(err)
		}
		ranks = append(ranks, rc)
	}
	defer func() {
		for _, rc := range ranks {
			syscall.Kill(-rc.Process.Pid, syscall.SIGKILL)
		}
	}()
	waitCut(t, store, "heat2d", 1, coord, &cerr)
	// A rejoin while the coordinator lives is refused, naming it.
	if r := runCmd(t, cutpoint(t, key, append(coordArgs, "--rejoin")...)); r.code != exitUsage ||
		!strings.Contains(r.stderr, fmt.Sprintf("pid %d", coord.Process.Pid)) {
		t.Fatalf("rejoin with a live coordinator: exit %d\n%s", r.code, tail(r.stderr, 10))
	}
	syscall.Kill(-coord.Process.Pid, syscall.SIGKILL)
	coord.Wait()
	time.Sleep(300 * time.Millisecond) // the ranks run on without it
	r := runOK(t, key, append(coordArgs, "--rejoin")...)
	if got := r.digest(t); got != want {
		t.Fatalf("digest after a coordinator restart %s, undisturbed %s", got, want)
	}
	// The killed coordinator's lease was taken over only once it expired.
	if !strings.Contains(r.stderr, "waiting for it to expire") {
		t.Fatalf("the rejoin did not wait for the killed coordinator's lease:\n%s", tail(r.stderr, 30))
	}
	for _, rc := range ranks {
		if err := rc.Wait(); err != nil {
			t.Errorf("rank process: %v", err)
		}
	}
	verifyStore(t, store)
}

// treeDigest fingerprints every file of a directory tree (names and bytes).
func treeDigest(t *testing.T, dir string) string {
	t.Helper()
	h := sha256.New()
	var names []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			names = append(names, p)
		}
		return nil
	})
	sort.Strings(names)
	for _, n := range names {
		b, _ := os.ReadFile(n)
		fmt.Fprintf(h, "%s %d\n", n, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestBadInput: each mistake is a clear error naming the problem, a
// non-zero exit, and no change to the store.
func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	small := []string{"--size", "32", "--steps", "300", "--heartbeat-interval", "100ms", "--interval", "0", "--every-steps", "50"}
	runOK(t, nil, append([]string{"run", "--store", store, "--ranks", "2"}, small...)...)
	before := treeDigest(t, store)

	cfgDir := t.TempDir()
	badCfg := filepath.Join(cfgDir, "bad.yaml")
	os.WriteFile(badCfg, []byte("ranks: many\n"), 0o644)
	typoCfg := filepath.Join(cfgDir, "typo.yaml")
	os.WriteFile(typoCfg, []byte("rnaks: 4\n"), 0o644)

	cases := []struct {
		name string
		env  []string
		args []string
		code int
		want string
	}{
		{"wrong ranks on restore", nil, append([]string{"run", "--store", store, "--ranks", "3", "--restore"}, small...), exitUsage, "2 ranks"},
		{"store from another job", nil, append([]string{"run", "--store", store, "--ranks", "2", "--restore", "--job", "other"}, small...), exitUsage, `"other"`},
		{"new job over an existing one", nil, append([]string{"run", "--store", store, "--ranks", "2"}, small...), exitUsage, "--restore"},
		{"missing store", nil, append([]string{"run", "--store", filepath.Join(dir, "nowhere"), "--ranks", "2", "--restore"}, small...), exitUsage, "nowhere"},
		{"unreachable nats", nil, append([]string{"run", "--store", store, "--job", "x", "--ranks", "2", "--nats", "nats://127.0.0.1:1"}, small...), exitUsage, "127.0.0.1:1"},
		{"bad nats url", nil, append([]string{"run", "--store", store, "--job", "x", "--nats", "http://h:1"}, small...), exitUsage, "--nats"},
		{"bad config value", []string{"CUTPOINT_CONFIG=" + badCfg}, []string{"run", "--store", store}, exitUsage, `"ranks"`},
		{"unknown config key", []string{"CUTPOINT_CONFIG=" + typoCfg}, []string{"run", "--store", store}, exitUsage, `"rnaks"`},
		{"bad environment value", []string{"CUTPOINT_EVERY_STEPS=often"}, []string{"run", "--store", store}, exitUsage, "CUTPOINT_EVERY_STEPS"},
		{"bad flag value", nil, []string{"run", "--store", store, "--ranks", "0"}, exitUsage, "--ranks"},
		{"bad store-io", []string{"CUTPOINT_STORE_IO=sometimes"}, []string{"run", "--store", store}, exitUsage, "--store-io"},
		{"bad hash", nil, []string{"run", "--store", store, "--job", "x", "--hash", "sha1"}, exitUsage, "--hash"},
		{"another hash than the store's", nil, append([]string{"run", "--store", store, "--ranks", "2", "--restore", "--hash", "blake3"}, small...), exitUsage, "created with hash xxh3"},
		{"cuda on the default build", nil, []string{"run", "--store", store, "--job", "y", "--device", "cuda"}, exitNotBuilt, "make build-cuda"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// c.env comes last in the environment, so its CUTPOINT_CONFIG
			// wins over the default /dev/null.
			r := runCmd(t, cutpoint(t, c.env, c.args...))
			if r.code != c.code {
				t.Fatalf("exit %d, want %d\nstderr:\n%s", r.code, c.code, tail(r.stderr, 20))
			}
			if !strings.Contains(r.stderr, c.want) {
				t.Fatalf("the error does not name %s:\n%s", c.want, tail(r.stderr, 20))
			}
		})
	}
	if after := treeDigest(t, filepath.Join(store)); after != before {
		t.Logf("store changed by a rejected command; listing:\n%s", listTree(store))
		t.Fatal("a rejected command changed the store")
	}
}

func listTree(dir string) string {
	var b strings.Builder
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil {
			fmt.Fprintln(&b, p)
		}
		return nil
	})
	return b.String()
}

// TestRunUserExecutable launches a job that is not cutpoint itself (the
// ring example, built here) and kills one of its ranks.
func TestRunUserExecutable(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "ring")
	build := exec.Command("go", "build", "-o", bin, "github.com/cutpoint/cutpoint/rank/examples/ring")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the ring example: %v\n%s", err, out)
	}
	base := []string{"--ranks", "3", "--heartbeat-interval", "100ms", "--interval", "0"}
	plain := runOK(t, nil, append(append([]string{"run", "--store", filepath.Join(t.TempDir(), "s")}, base...), "--", bin)...)
	store := filepath.Join(t.TempDir(), "store")
	hurt := runOK(t, nil, append(append([]string{"run", "--store", store, "--every-steps", "400", "--kill", "1@6000"}, base...), "--", bin)...)
	if plain.stdout != hurt.stdout || !strings.HasPrefix(plain.stdout, "result ") {
		t.Fatalf("ring results differ: %q vs %q", plain.stdout, hurt.stdout)
	}
	if !strings.Contains(hurt.stderr, "recovery-finished") {
		t.Fatalf("no recovery:\n%s", tail(hurt.stderr, 30))
	}
	if cuts := committed(t, store, "ring"); len(cuts) == 0 {
		t.Fatal("no cut of job \"ring\" (named after the executable)")
	}
}

// TestStoreCommandsOnARealRun: ls, inspect, verify and gc behave as the
// contract says on a store written by `cutpoint run`.
func TestStoreCommandsOnARealRun(t *testing.T) {
	store := filepath.Join(t.TempDir(), "store")
	runOK(t, nil, append([]string{"run", "--store", store, "--interval", "0", "--every-steps", "40", "--keep", "3"}, job...)...)
	cuts := committed(t, store, "heat2d")
	if len(cuts) < 2 {
		t.Fatalf("want >= 2 committed cuts, have %d", len(cuts))
	}
	out, errs, code := runCLI(t, "ls", "--store", store, "--job", "heat2d")
	if code != 0 {
		t.Fatalf("ls: exit %d: %s", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(cuts)+1 {
		t.Fatalf("ls printed %d lines for %d cuts:\n%s", len(lines), len(cuts), out)
	}
	for i, c := range cuts {
		f := strings.Fields(lines[i+1])
		if f[0] != fmt.Sprint(c.Epoch) || f[1] != fmt.Sprint(c.Step) || f[2] != "4" {
			t.Fatalf("ls line %q: want epoch %d step %d ranks 4", lines[i+1], c.Epoch, c.Step)
		}
	}
	last := cuts[len(cuts)-1]
	out, errs, code = runCLI(t, "inspect", "--store", store, "--job", "heat2d", "--cut", fmt.Sprint(last.Epoch))
	if code != 0 || !strings.Contains(out, "u") {
		t.Fatalf("inspect: exit %d\n%s%s", code, out, errs)
	}
	verifyStore(t, store)
	if _, errs, code = runCLI(t, "gc", "--store", store, "--job", "heat2d", "--keep", "1"); code != 0 {
		t.Fatalf("gc: exit %d: %s", code, errs)
	}
	if n := len(committed(t, store, "heat2d")); n != 1 {
		t.Fatalf("after gc --keep 1: %d cuts", n)
	}
	verifyStore(t, store)
	// The cut left restores: resume the finished job from it and compare.
	r := runOK(t, nil, append([]string{"run", "--store", store, "--interval", "0", "--restore"}, job...)...)
	if got, want := r.digest(t), reference(t); got != want {
		t.Fatalf("restore after gc: digest %s, want %s", got, want)
	}
}
