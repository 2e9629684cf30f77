package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/cutpoint/cutpoint/ckpt"
	"github.com/cutpoint/cutpoint/internal/natsutil"
)

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// natsCluster starts n `cutpoint nats` processes joined into one cluster
// on loopback, the secrets in their environment, and returns them with
// their client URLs (token included).
func natsCluster(t *testing.T, dir string, n int, env []string) ([]*exec.Cmd, []string) {
	t.Helper()
	ports := make([]int, n)
	for i := range ports {
		ports[i] = freePort(t)
	}
	var procs []*exec.Cmd
	var urls []string
	for i := 0; i < n; i++ {
		var routes []string
		for j, p := range ports {
			if j != i {
				routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
			}
		}
		urlFile := filepath.Join(dir, fmt.Sprintf("nats%d.url", i))
		c := cutpoint(t, env, "nats", "--url-file", urlFile,
			"--cluster", fmt.Sprintf("127.0.0.1:%d", ports[i]), "--routes", strings.Join(routes, ","))
		lf, _ := os.Create(filepath.Join(dir, fmt.Sprintf("nats%d.log", i)))
		c.Stderr = lf
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		procs = append(procs, c)
		t.Cleanup(func() { c.Process.Kill(); c.Wait() })
		var u string
		for deadline := time.Now().Add(20 * time.Second); u == ""; time.Sleep(20 * time.Millisecond) {
			b, _ := os.ReadFile(urlFile)
			u = strings.TrimSpace(string(b))
			if time.Now().After(deadline) {
				t.Fatalf("nats server %d did not come up", i)
			}
		}
		urls = append(urls, u)
	}
	return procs, urls
}

func hostPort(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

func latestEpoch(t *testing.T, store string) uint64 {
	var e uint64
	for _, c := range committed(t, store, "heat2d") {
		e = max(e, c.Epoch)
	}
	return e
}

// waitStore waits until the coordinator has created the store. A rank
// started earlier waits for the store too but can read its settings file
// while the coordinator is still writing it (ckpt creates it with
// CreateExclusive, which claims the name before writing) and fail.
func waitStore(t *testing.T, store string, errb *syncBuf) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		s, err := ckpt.OpenDir(context.Background(), store, ckpt.Options{})
		if err == nil {
			s.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no store after 30s: %v\n%s", err, tail(errb.String(), 60))
		}
	}
}

// waitEpoch waits until a cut of epoch e or later is committed.
func waitEpoch(t *testing.T, store string, e uint64, errb *syncBuf) {
	t.Helper()
	for deadline := time.Now().Add(90 * time.Second); latestEpoch(t, store) < e; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no cut %d after 90s\n%s", e, tail(errb.String(), 60))
		}
	}
}

// TestNatsClusterServersKilled runs a job on a cluster of three `cutpoint
// nats` servers (on loopback, each standing for one host: every process is
// told its "own" server by CUTPOINT_NATS_LOCAL and gets the whole list),
// SIGKILLs a server that two ranks use after the first cut and then the
// coordinator's own server: the processes fail over to the survivor and
// the job ends with the undisturbed digest. No process logs the token.
func TestNatsClusterServersKilled(t *testing.T) {
	want := reference(t)
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	if err := os.MkdirAll(store, 0o755); err != nil {
		t.Fatal(err)
	}
	const tok = "clustertok3n"
	servers, urls := natsCluster(t, dir, 3, []string{"CUTPOINT_NATS_TOKEN=" + tok, "CUTPOINT_NATS_CLUSTER_TOKEN=routetok"})
	for _, u := range urls {
		if !strings.Contains(u, tok+"@") {
			t.Fatalf("url file %q lacks the token", u)
		}
	}
	list := strings.Join(urls, ",")
	coordArgs := []string{"coordinator", "--store", store, "--ranks", "4", "--spawn", "none",
		"--interval", "0", "--every-steps", "100", "--heartbeat-interval", "100ms"}
	key := jobKeyEnv() // --spawn none: the coordinator and the ranks hold one job key
	coord := cutpoint(t, append([]string{"CUTPOINT_NATS=" + list, "CUTPOINT_NATS_LOCAL=" + hostPort(t, urls[0])}, key...), coordArgs...)
	var cout bytes.Buffer
	var cerr syncBuf
	coord.Stdout, coord.Stderr = &cout, &cerr
	if err := coord.Start(); err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(-coord.Process.Pid, syscall.SIGKILL)
	waitStore(t, store, &cerr)
	home := []int{0, 1, 2, 2} // rank -> its "host's" server
	var ranks []*exec.Cmd
	var logs []string
	for r := range 4 {
		rc := cutpoint(t, append([]string{"CUTPOINT_NATS=" + list, "CUTPOINT_NATS_LOCAL=" + hostPort(t, urls[home[r]]),
			"CUTPOINT_JOB=heat2d", "CUTPOINT_WORLD=4", "CUTPOINT_STORE=" + store, fmt.Sprintf("CUTPOINT_RANK=%d", r),
			"CUTPOINT_HEARTBEAT_INTERVAL=100ms"}, key...),
			"--log-level", "debug", "rank", "--size", "96", "--steps", "6000")
		name := filepath.Join(dir, fmt.Sprintf("rank%d.log", r))
		rlog, _ := os.Create(name)
		rc.Stderr = rlog
		if err := rc.Start(); err != nil {
			t.Fatal(err)
		}
		ranks = append(ranks, rc)
		logs = append(logs, name)
	}
	defer func() {
		for _, rc := range ranks {
			syscall.Kill(-rc.Process.Pid, syscall.SIGKILL)
		}
	}()
	t.Cleanup(func() {
		if t.Failed() {
			for i, name := range logs {
				b, _ := os.ReadFile(name)
				t.Logf("rank %d log:\n%s", i, tail(string(b), 30))
			}
			for i := range servers {
				b, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("nats%d.log", i)))
				t.Logf("nats %d log:\n%s", i, tail(string(b), 10))
			}
		}
	})
	waitEpoch(t, store, 1, &cerr)
	// Ranks 2 and 3 lose their server; two cuts later (the job went on
	// across the failover) the coordinator and rank 0 lose theirs.
	syscall.Kill(servers[2].Process.Pid, syscall.SIGKILL)
	waitEpoch(t, store, latestEpoch(t, store)+2, &cerr)
	syscall.Kill(servers[0].Process.Pid, syscall.SIGKILL)

	done := make(chan error, 1)
	go func() { done <- coord.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("coordinator: %v\n%s", err, tail(cerr.String(), 60))
		}
	case <-time.After(3 * time.Minute):
		t.Fatalf("the job did not finish in 3 minutes after the servers were killed\n%s", tail(cerr.String(), 60))
	}
	r := result{stdout: cout.String(), stderr: cerr.String()}
	if got := r.digest(t); got != want {
		t.Fatalf("digest with two of three NATS servers killed %s, undisturbed %s", got, want)
	}
	for _, rc := range ranks {
		if err := rc.Wait(); err != nil {
			t.Errorf("rank process: %v", err)
		}
	}
	all := cerr.String()
	reconnects := 0
	for _, name := range logs {
		b, _ := os.ReadFile(name)
		all += string(b)
		reconnects += strings.Count(string(b), "nats reconnected")
	}
	if reconnects < 3 {
		t.Errorf("%d rank reconnects logged, want at least 3 (ranks 0, 2, 3)", reconnects)
	}
	if !strings.Contains(cerr.String(), "nats reconnected") {
		t.Errorf("the coordinator logged no reconnect after its server was killed")
	}
	if strings.Contains(all, tok) {
		t.Errorf("a log shows the NATS token")
	}
	verifyStore(t, store)
}

// TestNatsFlagErrors: cluster flags without --cluster, both token sources,
// an empty token file and a bad route are usage errors naming the flag.
func TestNatsFlagErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o600)
	tokFile := filepath.Join(dir, "tok")
	os.WriteFile(tokFile, []byte("secretroute\n"), 0o600)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"nats", "--routes", "nats-route://127.0.0.1:1"}, "--cluster"},
		{[]string{"nats", "--cluster-token-file", tokFile}, "--cluster"},
		{[]string{"nats", "--token", "a", "--token-file", tokFile}, "--token-file"},
		{[]string{"nats", "--token-file", empty}, "empty"},
		{[]string{"nats", "--cluster", "127.0.0.1:0", "--cluster-token-file", empty}, "empty"},
		{[]string{"nats", "--cluster", "127.0.0.1:0", "--routes", "nats://127.0.0.1:1"}, "nats-route://"},
		{[]string{"nats", "--cluster", "127.0.0.1:0", "--cluster-token-file", tokFile, "--routes", "nats-route://u:p@127.0.0.1:1"}, "credentials"},
		{[]string{"coordinator", "--nats", "nats://127.0.0.1:1", "--nats-token", "a", "--nats-token-file", tokFile}, "--nats-token-file"},
	} {
		_, errs, code := runCLI(t, c.args...)
		if code != exitUsage || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d naming %q", c.args, code, errs, exitUsage, c.want)
		}
		if strings.Contains(errs, "secretroute") {
			t.Errorf("%v: stderr shows the token: %s", c.args, errs)
		}
	}
}

// waitFile returns the trimmed contents of path once it is non-empty.
func waitFile(t *testing.T, path string) string {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if b, _ := os.ReadFile(path); len(bytes.TrimSpace(b)) > 0 {
			return string(bytes.TrimSpace(b))
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not written after 20s", path)
		}
	}
}

// TestNatsClusterURLFile: a seed server on a cluster port picked at start
// writes its route URL (no token in it) to --cluster-url-file; a second
// server started later names it in --routes, and a message published on
// the seed reaches a subscriber of the second (slurm/cutpoint.sbatch
// starts its per-node servers this way).
func TestNatsClusterURLFile(t *testing.T) {
	dir := t.TempDir()
	env := []string{"CUTPOINT_NATS_TOKEN=tok1", "CUTPOINT_NATS_CLUSTER_TOKEN=routetok"}
	start := func(i int, routes string) string {
		args := []string{"nats", "--url-file", filepath.Join(dir, fmt.Sprintf("n%d.url", i)),
			"--cluster", "127.0.0.1:0", "--cluster-url-file", filepath.Join(dir, fmt.Sprintf("n%d.route", i))}
		if routes != "" {
			args = append(args, "--routes", routes)
		}
		c := cutpoint(t, env, args...)
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Process.Kill(); c.Wait() })
		return waitFile(t, filepath.Join(dir, fmt.Sprintf("n%d.url", i)))
	}
	seedURL := start(0, "")
	// The route file is written before the URL file.
	route, err := os.ReadFile(filepath.Join(dir, "n0.route"))
	if err != nil {
		t.Fatal(err)
	}
	r := strings.TrimSpace(string(route))
	if !strings.HasPrefix(r, "nats-route://127.0.0.1:") || strings.HasSuffix(r, ":0") || strings.Contains(r, "@") {
		t.Fatalf("route file %q: want nats-route://127.0.0.1:PORT without credentials", r)
	}
	otherURL := start(1, r)
	sub, err := natsutil.Connect(otherURL, natsutil.ConnectOptions{Name: "sub"})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ch := make(chan []byte, 1)
	if _, err := sub.Subscribe("probe", func(m *nats.Msg) { ch <- m.Data }); err != nil {
		t.Fatal(err)
	}
	if err := sub.Flush(); err != nil {
		t.Fatal(err)
	}
	pub, err := natsutil.Connect(seedURL, natsutil.ConnectOptions{Name: "pub"})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	// Until the route is up the message has nowhere to go: publish again.
	for deadline := time.Now().Add(20 * time.Second); ; {
		if err := pub.Publish("probe", []byte("hello")); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-ch:
			if string(got) != "hello" {
				t.Fatalf("got %q", got)
			}
			return
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("no message across the route after 20s")
		}
	}
}
