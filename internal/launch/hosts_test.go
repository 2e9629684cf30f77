package launch

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// groupCmdlines returns the command lines of every process in process
// group pgid.
func groupCmdlines(t *testing.T, pgid int) []string {
	t.Helper()
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	var out []string
	for _, d := range dirs {
		var pid, ppid, pg int
		var comm, state string
		st, err := os.ReadFile(d + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp: comm has no spaces here.
		if _, err := fmt.Sscanf(string(st), "%d %s %s %d %d", &pid, &comm, &state, &ppid, &pg); err != nil || pg != pgid {
			continue
		}
		b, _ := os.ReadFile(d + "/cmdline")
		out = append(out, strings.ReplaceAll(string(b), "\x00", " "))
	}
	return out
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestHostsSpawner runs ranks through a local template on three "hosts",
// checks what each rank receives (host, secrets on stdin, none on any
// command line), kills every rank of host b and sees them come back on
// the spares of c, then runs out of slots.
func TestHostsSpawner(t *testing.T) {
	var out buf
	script := `read -r s; echo "stdin <$s>"; ` +
		`echo "rank $CUTPOINT_RANK host $CUTPOINT_HOST tag $HOSTTAG from $CUTPOINT_SECRETS"; exec sleep 60`
	h, err := NewHosts(HostsConfig{
		Hosts: []Host{{"a", 2}, {"b", 2}, {"c", 2}}, Ranks: 4,
		Template: "env HOSTTAG={host} {cmd}",
		Argv:     []string{"sh", "-c", script},
		Env:      []string{"CUTPOINT_JOB=j", "CUTPOINT_NATS_TOKEN=s3cret word"},
		Secret:   []string{"CUTPOINT_NATS_TOKEN"}, SecretsVar: "CUTPOINT_SECRETS", HostVar: "CUTPOINT_HOST",
		Out: &out,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	for r := range 4 {
		if err := h.Spawn(r, 1, []string{fmt.Sprintf("CUTPOINT_RANK=%d", r)}); err != nil {
			t.Fatal(err)
		}
	}
	want := map[int]string{0: "a", 1: "a", 2: "b", 3: "b"}
	for r, host := range want {
		line := fmt.Sprintf("[rank %d] rank %d host %s tag %s from stdin", r, r, host, host)
		waitFor(t, line, func() bool { return strings.Contains(out.String(), line) })
	}
	if n := strings.Count(out.String(), "stdin <CUTPOINT_NATS_TOKEN=s3cret word>"); n != 4 {
		t.Fatalf("%d ranks got the secret on stdin:\n%s", n, out.String())
	}
	for r := range 4 {
		for _, c := range groupCmdlines(t, h.Pid(r)) {
			if strings.Contains(c, "s3cret") {
				t.Fatalf("the secret is on a command line: %q", c)
			}
		}
	}
	// Host b dies: both its ranks at once.
	syscall.Kill(-h.Pid(2), syscall.SIGKILL)
	syscall.Kill(-h.Pid(3), syscall.SIGKILL)
	for range 2 {
		e := nextExit(t, h.Local)
		if e.Killed || (e.Rank != 2 && e.Rank != 3) {
			t.Fatalf("exit %+v", e)
		}
	}
	if d, _ := h.pl.Down("b"); !d {
		t.Fatalf("b not down: %s", h.Summary())
	}
	for _, r := range []int{2, 3} {
		if err := h.Spawn(r, 2, []string{fmt.Sprintf("CUTPOINT_RANK=%d", r)}); err != nil {
			t.Fatal(err)
		}
		if got := h.HostOf(r); got != "c" {
			t.Fatalf("rank %d respawned on %s, want c", r, got)
		}
		line := fmt.Sprintf("[rank %d] rank %d host c tag c", r, r)
		waitFor(t, line, func() bool { return strings.Contains(out.String(), line) })
	}
	// A rank killed by the launcher goes back to its own slot.
	if err := h.Kill(context.Background(), 0, 1); err != nil {
		t.Fatal(err)
	}
	nextExit(t, h.Local)
	if err := h.Spawn(0, 2, []string{"CUTPOINT_RANK=0"}); err != nil || h.HostOf(0) != "a" {
		t.Fatalf("rank 0 respawned on %s: %v", h.HostOf(0), err)
	}
	// c loses both: no slot is left anywhere.
	syscall.Kill(-h.Pid(2), syscall.SIGKILL)
	syscall.Kill(-h.Pid(3), syscall.SIGKILL)
	nextExit(t, h.Local)
	nextExit(t, h.Local)
	err = h.Spawn(2, 3, nil)
	if !errors.Is(err, ErrNoSlot) || !strings.Contains(err.Error(), "b down") || !strings.Contains(err.Error(), "c down") {
		t.Fatalf("want ErrNoSlot naming the down hosts, got %v", err)
	}
}

// TestHostsSettle: the exits of a dead host's ranks arrive one by one; a
// respawn of the first waits for the others, so it does not go back to
// the dead host.
func TestHostsSettle(t *testing.T) {
	h, err := NewHosts(HostsConfig{
		Hosts: []Host{{"a", 2}, {"b", 2}}, Ranks: 2, Template: "{cmd}",
		Argv: []string{"sleep", "60"}, HostVar: "CUTPOINT_HOST", Out: &buf{}, Settle: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	for r := range 2 {
		if err := h.Spawn(r, 1, nil); err != nil {
			t.Fatal(err)
		}
	}
	p1 := h.Pid(1)
	syscall.Kill(-h.Pid(0), syscall.SIGKILL)
	if e := nextExit(t, h.Local); e.Rank != 0 {
		t.Fatalf("exit %+v", e)
	}
	go func() { time.Sleep(300 * time.Millisecond); syscall.Kill(-p1, syscall.SIGKILL) }()
	if err := h.Spawn(0, 2, nil); err != nil {
		t.Fatal(err)
	}
	if got := h.HostOf(0); got != "b" {
		t.Fatalf("rank 0 respawned on %s, want b (a died)", got)
	}
}

func TestHostsTemplateChecks(t *testing.T) {
	if _, err := NewHosts(HostsConfig{Hosts: []Host{{"a", 1}}, Ranks: 1, Template: "ssh {host}", Argv: []string{"x"}}); err == nil || !strings.Contains(err.Error(), "{cmd}") {
		t.Fatalf("template without {cmd}: %v", err)
	}
	if _, err := NewHosts(HostsConfig{Hosts: []Host{{"a", 1}}, Ranks: 2, Argv: []string{"x"}}); err == nil {
		t.Fatal("2 ranks on 1 slot: no error")
	}
	h, err := NewHosts(HostsConfig{Hosts: []Host{{"a", 1}}, Ranks: 1, Argv: []string{"/bin/rank", "it's"}, Env: []string{"A=1 2"}, HostVar: "H"})
	if err != nil {
		t.Fatal(err)
	}
	line, stdin := h.command("a", []string{"R=0"})
	if want := `env 'A=1 2' R=0 H=a /bin/rank 'it'\''s'`; line != want || stdin != nil {
		t.Fatalf("command %q (stdin %q), want %q", line, stdin, want)
	}
	if q := shellQuote(line); !strings.HasPrefix(q, "'env ") {
		t.Fatalf("qcmd %q", q)
	}
}

// TestHostsSpawnCmdFailure: a spawn command that fails itself (exit 255,
// as ssh does when it cannot reach the host) takes its host down at once,
// although another rank still runs there; the rank goes to a spare.
func TestHostsSpawnCmdFailure(t *testing.T) {
	dead := filepath.Join(t.TempDir(), "b-dead")
	h, err := NewHosts(HostsConfig{
		Hosts: []Host{{"a", 1}, {"b", 2}, {"c", 1}}, Ranks: 3,
		Template: `[ {host} = b ] && [ -e ` + dead + ` ] && exit 255; exec {cmd}`,
		Argv:     []string{"sleep", "60"}, HostVar: "CUTPOINT_HOST", Out: &buf{}, Settle: time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	for r := range 3 {
		if err := h.Spawn(r, 1, nil); err != nil {
			t.Fatal(err)
		}
	}
	for r := range 3 {
		// Past the template's check: the rank runs.
		waitFor(t, "rank exec", func() bool {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", h.Pid(r)))
			return strings.HasPrefix(string(b), "sleep\x00")
		})
	}
	if err := os.WriteFile(dead, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	syscall.Kill(-h.Pid(1), syscall.SIGKILL)
	nextExit(t, h.Local)
	// b still runs rank 2: rank 1 goes back to b, where ssh "fails".
	if err := h.Spawn(1, 2, nil); err != nil || h.HostOf(1) != "b" {
		t.Fatalf("rank 1 on %s: %v", h.HostOf(1), err)
	}
	if e := nextExit(t, h.Local); e.Code != SpawnCmdFailed {
		t.Fatalf("exit %+v", e)
	}
	if d, why := h.pl.Down("b"); !d || !strings.Contains(why, "255") {
		t.Fatalf("b down %v (%s); %s", d, why, h.Summary())
	}
	if err := h.Spawn(1, 3, nil); err != nil || h.HostOf(1) != "c" {
		t.Fatalf("rank 1 on %s, want the spare on c: %v", h.HostOf(1), err)
	}
}

// TestHostsVerdictNotLost: a rank exiting with a verdict code (the cut it
// was to restore is damaged) does not take its host down, although it was
// the host's only process; any other failure does.
func TestHostsVerdictNotLost(t *testing.T) {
	h, err := NewHosts(HostsConfig{
		Hosts: []Host{{"a", 1}, {"b", 1}, {"c", 1}}, Ranks: 2,
		Template: `exec {cmd}`, Argv: []string{"sh", "-c", `exit $CODE`}, HostVar: "CUTPOINT_HOST",
		Verdicts: []int{3}, Out: &buf{}, Settle: time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	for r, code := range []string{"3", "1"} {
		if err := h.Spawn(r, 1, []string{"CODE=" + code}); err != nil {
			t.Fatal(err)
		}
		if e := nextExit(t, h.Local); e.Rank != r {
			t.Fatalf("exit %+v", e)
		}
	}
	if d, why := h.pl.Down("a"); d {
		t.Fatalf("a down after its rank found the cut damaged (%s); %s", why, h.Summary())
	}
	if d, _ := h.pl.Down("b"); !d {
		t.Fatalf("b up after its only rank failed with code 1; %s", h.Summary())
	}
}
