package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cutpoint/cutpoint/ckpt"
)

// The probes of a local attacker (docs/operations.md, Security).

// TestRunRefusesPlantedJobLink: another user of a shared store plants
// jobs/<name> as a link to a directory of theirs (or to one of the
// victim's): the run refuses, naming the link, and writes nothing there.
func TestRunRefusesPlantedJobLink(t *testing.T) {
	store := t.TempDir()
	elsewhere := t.TempDir()
	if err := os.MkdirAll(filepath.Join(store, "jobs"), 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(store, "jobs", "heat")
	if err := os.Symlink(elsewhere, link); err != nil {
		t.Fatal(err)
	}
	r := runCmd(t, cutpoint(t, nil, "run", "--store", store, "--job", "heat", "--ranks", "2", "--size", "32", "--steps", "300",
		"--every-steps", "100", "--heartbeat-interval", "100ms"))
	if r.code == 0 {
		t.Fatalf("run through a planted link succeeded\nstderr:\n%s", tail(r.stderr, 20))
	}
	if !strings.Contains(r.stderr, link) || !strings.Contains(r.stderr, "symbolic link") {
		t.Fatalf("exit %d; the error does not name the link %s:\n%s", r.code, link, tail(r.stderr, 20))
	}
	if es, _ := os.ReadDir(elsewhere); len(es) != 0 {
		t.Fatalf("the run wrote through the link: %v", es)
	}
}

// plantAtPack replaces rank 1's pack of cut 2 with what plant makes there.
func plantAtPack(t *testing.T, dir string, plant func(pack, saved string) error) string {
	t.Helper()
	ctx := context.Background()
	s, err := ckpt.OpenDir(ctx, dir, ckpt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cut, err := s.LoadCut(ctx, "heat", 2)
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	name := cut.Shards[1].Pack()
	pack := filepath.Join(dir, filepath.FromSlash(name))
	saved := filepath.Join(t.TempDir(), "saved.pack")
	if err := os.Rename(pack, saved); err != nil {
		t.Fatal(err)
	}
	if err := plant(pack, saved); err != nil {
		t.Fatal(err)
	}
	return name
}

// verifyPlanted runs verify in a process of its own, bounded, and wants
// damage reported (exit 3) naming the pack.
func verifyPlanted(t *testing.T, dir, name, what string) {
	t.Helper()
	start := time.Now()
	cmd := cutpoint(t, nil, "verify", "--store", dir)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// A blocked open never ends; a process start on a loaded machine
	// takes a fraction of this bound.
	timer := time.AfterFunc(10*time.Second, func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	cmd.Wait()
	if !timer.Stop() {
		t.Fatalf("verify with a %s for a pack did not finish in 10 s (blocked)", what)
	}
	took := time.Since(start)
	r := result{out.String(), errb.String(), cmd.ProcessState.ExitCode()}
	if r.code != exitDamaged {
		t.Fatalf("verify with a %s for a pack: exit %d, want %d\n%s%s", what, r.code, exitDamaged, r.stdout, r.stderr)
	}
	all := r.stdout + r.stderr
	for _, want := range []string{"DAMAGED job heat cut 2 rank 1", name, what} {
		if !strings.Contains(all, want) {
			t.Errorf("verify output lacks %q:\n%s", want, all)
		}
	}
	t.Logf("verify took %v", took)
}

// TestVerifyFIFOPack: a FIFO in place of a pack would block a reader
// forever; verify reports it as damage at once.
func TestVerifyFIFOPack(t *testing.T) {
	dir := t.TempDir()
	makeStore(t, dir, "heat", 3)
	name := plantAtPack(t, dir, func(pack, _ string) error { return syscall.Mkfifo(pack, 0o666) })
	verifyPlanted(t, dir, name, "not a regular file")
}

// TestVerifyLinkedPack: a link to a pack, even to its own good content,
// is not followed.
func TestVerifyLinkedPack(t *testing.T) {
	dir := t.TempDir()
	makeStore(t, dir, "heat", 3)
	name := plantAtPack(t, dir, func(pack, saved string) error { return os.Symlink(saved, pack) })
	verifyPlanted(t, dir, name, "symbolic link")
}

// asOtherUser makes path another user's (nobody, uid 65534), as a second
// user of the machine would have created it. It needs root, as CI runs.
func asOtherUser(t *testing.T, path string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a file owned by another user (uid 65534); CI runs as root")
	}
	if err := os.Lchown(path, 65534, 65534); err != nil {
		t.Fatal(err)
	}
}

// TestConfigOfAnotherUserRefused: a cutpoint.yaml another user could have
// written (theirs, or writable by group or others) would redirect the
// store: refused, naming the file, its owner and mode.
func TestConfigOfAnotherUserRefused(t *testing.T) {
	store := t.TempDir()
	makeStore(t, store, "heat", 1)
	elsewhere := t.TempDir()
	writeConfig := func(t *testing.T, dir string, mode os.FileMode) string {
		p := filepath.Join(dir, "cutpoint.yaml")
		if err := os.WriteFile(p, []byte("store: "+elsewhere+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	refusedCfg := func(t *testing.T, args []string, path string, wants ...string) {
		t.Helper()
		out, errOut, code := runCLI(t, args...)
		if code != exitUsage {
			t.Fatalf("%v with config %s: exit %d, want %d (refused)\n%s%s", args, path, code, exitUsage, out, errOut)
		}
		for _, w := range append([]string{path}, wants...) {
			if !strings.Contains(errOut, w) {
				t.Fatalf("error lacks %q: %s", w, errOut)
			}
		}
	}
	t.Run("own file is read", func(t *testing.T) {
		p := writeConfig(t, t.TempDir(), 0o600)
		// The config names an empty directory as the store: ls says so,
		// proving the file was read.
		_, errOut, code := runCLI(t, "--config", p, "ls")
		if code != exitUsage || !strings.Contains(errOut, elsewhere+": no cutpoint-store.json") {
			t.Fatalf("exit %d: %s", code, errOut)
		}
	})
	t.Run("world-writable", func(t *testing.T) {
		p := writeConfig(t, t.TempDir(), 0o666)
		refusedCfg(t, []string{"--config", p, "ls", "--store", store}, p, "-rw-rw-rw-", "writable by group or others")
	})
	t.Run("group-writable", func(t *testing.T) {
		p := writeConfig(t, t.TempDir(), 0o620)
		refusedCfg(t, []string{"--config", p, "ls", "--store", store}, p, "-rw--w----")
	})
	t.Run("FIFO", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "cutpoint.yaml")
		if err := syscall.Mkfifo(p, 0o600); err != nil {
			t.Fatal(err)
		}
		// A blocking open would hang here for good.
		refusedCfg(t, []string{"--config", p, "ls", "--store", store}, p, "not a regular file")
	})
	t.Run("owned by uid 65534", func(t *testing.T) {
		p := writeConfig(t, t.TempDir(), 0o644)
		asOtherUser(t, p)
		refusedCfg(t, []string{"--config", p, "ls", "--store", store}, p, "uid 65534", "-rw-r--r--", "refused")
	})
	t.Run("owned by uid 65534 in the working directory", func(t *testing.T) {
		dir := t.TempDir()
		p := writeConfig(t, dir, 0o644)
		asOtherUser(t, p)
		t.Chdir(dir)
		t.Setenv("CUTPOINT_CONFIG", "")
		refusedCfg(t, []string{"ls", "--store", store}, "cutpoint.yaml", "uid 65534")
	})
	if es, _ := os.ReadDir(elsewhere); len(es) != 0 {
		t.Fatalf("a refused config's store was used: %v", es)
	}
}

// startNats starts `cutpoint nats` with args and waits for it to write
// urlFile or exit. It returns the exit code (-1: still running, killed at
// the test's end) and stderr.
func startNats(t *testing.T, env []string, urlFile string, args ...string) (int, *syncBuf) {
	t.Helper()
	cmd := cutpoint(t, env, append([]string{"nats", "--url-file", urlFile}, args...)...)
	var errb syncBuf
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); <-exited })
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		select {
		case <-exited:
			return cmd.ProcessState.ExitCode(), &errb
		default:
		}
		if strings.Contains(errb.String(), "nats-server ready") {
			return -1, &errb
		}
	}
	t.Fatalf("cutpoint nats neither became ready nor exited\n%s", errb.String())
	return 0, nil
}

// TestURLFile: the URL file holds the token: created 0600, never through
// a file or link another user prepared, never in a directory others can
// swap it in.
func TestURLFile(t *testing.T) {
	tokenEnv := []string{"CUTPOINT_TOKEN=s3cret-token"}
	t.Run("created 0600", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "nats.url")
		code, errb := startNats(t, tokenEnv, f)
		if code != -1 {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
		fi, err := os.Lstat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != 0o600 {
			t.Fatalf("url file mode %v, want -rw-------", fi.Mode())
		}
		if b, _ := os.ReadFile(f); !strings.Contains(string(b), "s3cret-token@") {
			t.Fatalf("url file %q lacks the token", b)
		}
		if strings.Contains(errb.String(), "command line") {
			t.Fatalf("warned of a secret on the command line when it came from the environment:\n%s", errb.String())
		}
	})
	refusedURL := func(t *testing.T, f string, wants ...string) {
		t.Helper()
		code, errb := startNats(t, tokenEnv, f)
		if code != exitUsage {
			t.Fatalf("exit %d, want %d (refused)\n%s", code, exitUsage, errb.String())
		}
		for _, w := range append([]string{f}, wants...) {
			if !strings.Contains(errb.String(), w) {
				t.Fatalf("error lacks %q:\n%s", w, errb.String())
			}
		}
	}
	t.Run("pre-created by another user", func(t *testing.T) {
		dir := t.TempDir()
		f := filepath.Join(dir, "nats.url")
		os.WriteFile(f, []byte("planted\n"), 0o666)
		os.Chmod(f, 0o666)
		asOtherUser(t, f)
		refusedURL(t, f, "exists")
		if b, _ := os.ReadFile(f); string(b) != "planted\n" {
			t.Fatalf("the planted file now holds %q", b)
		}
	})
	t.Run("pre-created", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "nats.url")
		os.WriteFile(f, []byte("old\n"), 0o666)
		refusedURL(t, f, "exists")
	})
	t.Run("symlink", func(t *testing.T) {
		dir := t.TempDir()
		target := filepath.Join(t.TempDir(), "victim")
		os.WriteFile(target, []byte("victim\n"), 0o644)
		f := filepath.Join(dir, "nats.url")
		os.Symlink(target, f)
		refusedURL(t, f, "exists")
		if b, _ := os.ReadFile(target); string(b) != "victim\n" {
			t.Fatalf("written through the link: %q", b)
		}
		dangling := filepath.Join(dir, "dangling.url")
		os.Symlink(filepath.Join(dir, "created-by-link"), dangling)
		refusedURL(t, dangling, "exists")
		if _, err := os.Lstat(filepath.Join(dir, "created-by-link")); err == nil {
			t.Fatal("a file was created through a dangling link")
		}
	})
	t.Run("world-writable directory", func(t *testing.T) {
		dir := t.TempDir()
		os.Chmod(dir, 0o777)
		refusedURL(t, filepath.Join(dir, "nats.url"), "writable by other users")
		// Sticky, like /tmp: accepted.
		os.Chmod(dir, os.ModeSticky|0o777)
		if code, errb := startNats(t, tokenEnv, filepath.Join(dir, "ok.url")); code != -1 {
			t.Fatalf("sticky directory: exit %d\n%s", code, errb.String())
		}
	})
}

// TestArgvSecretWarned: a token on the command line works, with one
// warning that every user can read it; the warning names the flag, never
// the value; a token from the environment is not warned about.
func TestArgvSecretWarned(t *testing.T) {
	const warning = "secret was given on the command line"
	t.Setenv("CUTPOINT_CONFIG", os.DevNull)
	t.Chdir(t.TempDir())
	store := t.TempDir()
	for _, c := range []struct {
		args []string
		flag string
	}{
		{[]string{"coordinator", "--nats-token", "argv-token", "--nats", "nats://127.0.0.1:1"}, "--nats-token"},
		{[]string{"coordinator", "--nats", "nats://argv-token@127.0.0.1:1"}, "--nats (credentials in the URL)"},
		{[]string{"coordinator", "--nats=nats://u:argv-token@127.0.0.1:1,nats://127.0.0.1:2"}, "--nats (credentials in the URL)"},
	} {
		// Nothing listens at port 1: the command fails once the flags
		// were read.
		_, errOut, _ := runCLI(t, append(c.args, "--store", store)...)
		if n := strings.Count(errOut, warning); n != 1 {
			t.Errorf("%v: warned %d times, want once:\n%s", c.args, n, errOut)
		}
		if !strings.Contains(errOut, c.flag) {
			t.Errorf("%v: the warning does not name %s:\n%s", c.args, c.flag, errOut)
		}
		if strings.Contains(errOut, "argv-token") {
			t.Errorf("%v: the secret is logged:\n%s", c.args, errOut)
		}
	}
	t.Setenv("CUTPOINT_NATS_TOKEN", "env-token")
	t.Setenv("CUTPOINT_NATS", "nats://env-token@127.0.0.1:1")
	if _, errOut, _ := runCLI(t, "coordinator", "--store", store); strings.Contains(errOut, warning) || strings.Contains(errOut, "env-token") {
		t.Errorf("secrets from the environment warned about or logged:\n%s", errOut)
	}
}

func TestURLHasSecret(t *testing.T) {
	for s, want := range map[string]bool{
		"nats://tok@host:4222":       true,
		"nats://user:pass@host:4222": true,
		"nats://a:1,nats://tok@b:2":  true,
		"nats://host:4222":           false,
		"127.0.0.1:4222":             false,
		"":                           false,
		"/path/with@sign/in/it":      false,
	} {
		if got := urlHasSecret(s); got != want {
			t.Errorf("urlHasSecret(%q) = %v, want %v", s, got, want)
		}
	}
}
