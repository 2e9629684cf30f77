package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/cutpoint/cutpoint/coordinator"
)

// TestUsageErrorsExit2: every mistake on the command line exits 2, as the
// README's table says, and names what is wrong.
func TestUsageErrorsExit2(t *testing.T) {
	store := filepath.Join(t.TempDir(), "store")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "--bogus"}, "--bogus"},
		{[]string{"run", "--ranks", "abc"}, "--ranks"},
		{[]string{"run", "--interval", "5"}, "--interval"},
		{[]string{"bogus"}, `unknown command "bogus"`},
		{[]string{"rank", "extra"}, "extra"},
		{[]string{"ls", "--store", store, "--cut"}, "--cut"},
		{[]string{"run", "--store", store, "--grace", "-1s"}, "--grace"},
		{[]string{"run", "--store", store, "--grace", "0s"}, "--grace"},
		{[]string{"run", "--store", store, "--restore=sometimes"}, "--restore"},
	} {
		_, errOut, code := runCLI(t, c.args...)
		if code != exitUsage || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d naming %q", c.args, code, errOut, exitUsage, c.want)
		}
	}
}

// TestStopMessagesNameOnlyRealCuts: a stop with no cut committed must not
// speak of "the previous cut (0)".
func TestStopMessagesNameOnlyRealCuts(t *testing.T) {
	err := outcomeError(coordinator.Outcome{Code: coordinator.CodeStoppedNoCut, Reason: "stop requested"})
	if exitCode(err) != exitStoppedNone || strings.Contains(err.Error(), "previous cut") || !strings.Contains(err.Error(), "no cut") {
		t.Errorf("no cut committed: exit %d, %q", exitCode(err), err)
	}
	err = outcomeError(coordinator.Outcome{Code: coordinator.CodeStoppedNoCut, Reason: "stop requested", Epoch: 3})
	if exitCode(err) != exitStoppedNone || !strings.Contains(err.Error(), "previous cut (3) is intact") {
		t.Errorf("cut 3 committed: exit %d, %q", exitCode(err), err)
	}
}

// TestRestoreWithoutCut: --restore of a job that has no committed cut is
// a usage error; --restore=if-any starts it from step 0 (or creates it).
func TestRestoreWithoutCut(t *testing.T) {
	store := filepath.Join(t.TempDir(), "store")
	small := []string{"--ranks", "2", "--size", "32", "--steps", "300", "--heartbeat-interval", "100ms", "--interval", "0"}
	// if-any on a store that does not exist yet: a new job.
	first := runOK(t, nil, append([]string{"run", "--store", store, "--restore=if-any"}, small...)...)
	// The job has its record but no cut.
	r := runCmd(t, cutpoint(t, nil, append([]string{"run", "--store", store, "--restore"}, small...)...))
	if r.code != exitUsage || !strings.Contains(r.stderr, "no committed cut to resume from") || !strings.Contains(r.stderr, "if-any") {
		t.Fatalf("--restore without a cut: exit %d, want %d naming the missing cut and if-any\n%s", r.code, exitUsage, tail(r.stderr, 20))
	}
	again := runOK(t, nil, append([]string{"run", "--store", store, "--restore=if-any"}, small...)...)
	if again.digest(t) != first.digest(t) {
		t.Fatalf("if-any from step 0: digest %s, first run %s", again.digest(t), first.digest(t))
	}
}

// TestVersion: --version names the build (module version and toolchain).
func TestVersion(t *testing.T) {
	out, errOut, code := runCLI(t, "--version")
	if code != 0 || !strings.HasPrefix(out, "cutpoint version ") || !strings.Contains(out, "go1.") {
		t.Fatalf("--version: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// TestShortJobSaysUnprotected: a job that asked for cuts but finished
// before the first one committed says so (it exits 0: the result is right,
// and there was nothing to lose), and one without cuts asked for says
// nothing of the kind.
func TestShortJobSaysUnprotected(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	const warn = "the job finished before any cut committed"
	store := t.TempDir() + "/s"
	r := runOK(t, nil, "run", "--store", store, "--ranks", "2", "--size", "48", "--steps", "200", "--interval", "1h")
	if !strings.Contains(r.stderr, warn) {
		t.Fatalf("a job that finished with no cut said nothing of it:\n%s", tail(r.stderr, 20))
	}
	r = runOK(t, nil, "run", "--store", store, "--job", "nocuts", "--ranks", "2", "--size", "48", "--steps", "200", "--interval", "0")
	if strings.Contains(r.stderr, warn) {
		t.Fatalf("a job with cutting off warned of it:\n%s", tail(r.stderr, 20))
	}
}
