package main

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/cutpoint/cutpoint/internal/natsutil"
	"github.com/cutpoint/cutpoint/internal/subjects"
	"github.com/cutpoint/cutpoint/internal/wire"
	"github.com/cutpoint/cutpoint/rank"
)

// envHostileOut, set for a test's `run`, makes its rank 1 (first spawn)
// try, with its own NATS credentials, to speak as rank 2, as the
// coordinator and as rank 0, and write what the server answered there.
const envHostileOut = "CUTPOINT_TEST_HOSTILE_OUT"

// hostileRank is called by TestMain in every re-executed process; it acts
// only in rank 1's first process of a test that asked for it.
func hostileRank() {
	out := os.Getenv(envHostileOut)
	if out == "" || os.Getenv(rank.EnvRank) != "1" || len(os.Args) < 2 || os.Args[1] != "rank" {
		return
	}
	f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return // a respawned rank 1: done once
	}
	defer f.Close()
	space := subjects.Space(os.Getenv(rank.EnvJob), os.Getenv(rank.EnvJobID))
	var mu sync.Mutex
	var violations []string
	ca, _ := base64.StdEncoding.DecodeString(os.Getenv(rank.EnvNATSTLSCAData))
	user, password := os.Getenv(rank.EnvNATSUser), os.Getenv(rank.EnvNATSPassword)
	if d := os.Getenv(rank.EnvNATSUsers); user == "" && d != "" {
		if user, password, err = natsutil.RankLogin(d, 1); err != nil {
			fmt.Fprintf(f, "users: %v\n", err)
			return
		}
	}
	nc, err := natsutil.Connect(os.Getenv(rank.EnvNATS), natsutil.ConnectOptions{Name: "hostile rank 1",
		Auth: natsutil.Auth{User: user, Password: password, TLS: natsutil.ClientTLS{CAPEM: ca}},
		OnAsyncError: func(_ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrPermissionViolation) {
				mu.Lock()
				violations = append(violations, err.Error())
				mu.Unlock()
			}
		}})
	if err != nil {
		fmt.Fprintf(f, "connect: %v\n", err)
		return
	}
	defer nc.Close()
	fmt.Fprintf(f, "tls %v\n", nc.TLSRequired())
	finished := wire.EncodeRank(&wire.Status{RankHeader: wire.RankHeader{Rank: 2, Spawn: 1, G: 1}, State: wire.StateFinished, Step: 1, Peer: -1})
	stop := wire.EncodeCoord(&wire.Stop{CoordHeader: wire.CoordHeader{CGen: 1 << 62, G: 1}})
	res, _ := wire.EncodeResult(wire.Result{Rank: 0, G: 1, Data: make([]byte, 32)})
	forged := []string{subjects.ToCoordinator(space, 2), subjects.ToAll(space), subjects.ToRank(space, 0), subjects.Result(space),
		"cp." + space + ".1.d.0.2"}
	for i, s := range forged {
		data := [][]byte{finished, stop, stop, res, []byte("junk frame")}[i]
		_ = nc.Publish(s, data)
	}
	_, _ = nc.SubscribeSync("cp." + space + ".*.d.2.*") // rank 2's frames
	_, _ = nc.SubscribeSync("cp.>")                     // every job's subjects
	want := len(forged) + 2
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		_ = nc.Flush()
		mu.Lock()
		n := len(violations)
		mu.Unlock()
		if n >= want {
			break
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, v := range violations {
		fmt.Fprintln(f, v)
	}
}

// TestRankCredentialsBounded: a job on run's embedded server, listening on
// every interface (so TLS with a certificate made for the job), whose
// rank 1 tries with its own credentials to report as rank 2, to send the
// coordinator's broadcast and rank 0's control message, to hand in the
// result, to send a data frame as rank 2, and to read rank 2's frames and
// every subject: NATS refuses each (a permissions violation), and the job
// ends with the undisturbed digest.
func TestRankCredentialsBounded(t *testing.T) {
	want := reference(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "hostile.txt")
	r := runOK(t, []string{envHostileOut + "=" + out},
		append([]string{"run", "--store", filepath.Join(dir, "store"), "--interval", "0", "--every-steps", "1000",
			"--nats-listen", "0.0.0.0:0"}, job...)...)
	if got := r.digest(t); got != want {
		t.Fatalf("digest %s, undisturbed %s", got, want)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("rank 1 did not try: %v", err)
	}
	report := string(b)
	t.Logf("rank 1's attempts:\n%s", report)
	checkHostileReport(t, report, true)
	if strings.Contains(r.stderr, "result from") && strings.Contains(r.stderr, "forged") {
		t.Errorf("the coordinator saw a forged result:\n%s", tail(r.stderr, 40))
	}
}

// checkHostileReport checks hostileRank's report: every attempt refused.
func checkHostileReport(t *testing.T, report string, tls bool) {
	t.Helper()
	if !strings.HasPrefix(report, fmt.Sprintf("tls %v\n", tls)) {
		t.Fatalf("rank 1's connection: want tls %v:\n%s", tls, report)
	}
	space := "cp.heat2d."
	for _, s := range []string{"Publish to \"" + space + "%s.ctl.r2c.2\"", "Publish to \"" + space + "%s.ctl.c2r.all\"",
		"Publish to \"" + space + "%s.ctl.c2r.0\"", "Publish to \"" + space + "%s.ctl.result\"", "Publish to \"" + space + "%s.1.d.0.2\"",
		"Subscription to \"" + space + "%s.*.d.2.*\"", "Subscription to \"cp.>\""} {
		frag := strings.SplitN(s, "%s", 2)
		if !strings.Contains(report, frag[0]) || (len(frag) > 1 && !strings.Contains(report, frag[len(frag)-1])) {
			t.Errorf("no permissions violation for %s in:\n%s", s, report)
		}
	}
	if n := strings.Count(report, "Permissions Violation"); n != 7 {
		t.Errorf("%d permissions violations, want 7:\n%s", n, report)
	}
}

// TestNatsTLSGenerated: `cutpoint nats` on every interface without a
// certificate makes one for the run, writes its CA next to the URL file
// and a tls:// URL; a coordinator given that CA (--nats-tls-ca, from the
// environment) hands it to its ranks, and the job ends with the
// undisturbed digest. A client without the CA is refused.
func TestNatsTLSGenerated(t *testing.T) {
	want := reference(t)
	dir := t.TempDir()
	urlFile := filepath.Join(dir, "nats.url")
	n := cutpoint(t, []string{"CUTPOINT_NATS_TOKEN=tls-e2e-token"}, "nats", "--listen", "0.0.0.0:0", "--url-file", urlFile)
	var nerr syncBuf
	n.Stderr = &nerr
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Process.Kill(); n.Wait() })
	var url string
	for deadline := time.Now().Add(20 * time.Second); url == ""; time.Sleep(20 * time.Millisecond) {
		b, _ := os.ReadFile(urlFile)
		url = strings.TrimSpace(string(b))
		if time.Now().After(deadline) {
			t.Fatalf("no URL file\n%s", nerr.String())
		}
	}
	if !strings.HasPrefix(url, "tls://tls-e2e-token@") {
		t.Fatalf("URL %q, want tls://TOKEN@...", url)
	}
	caFile := urlFile + ".ca.pem"
	st, err := os.Lstat(caFile)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("CA file %s: %v %v", caFile, st, err)
	}
	if nc, err := natsutil.Connect(url, natsutil.ConnectOptions{Name: "no CA"}); err == nil {
		nc.Close()
		t.Fatal("connected without the server's CA")
	}
	if strings.Contains(nerr.String(), "tls-e2e-token") {
		t.Fatalf("the server's log shows the token:\n%s", nerr.String())
	}
	store := filepath.Join(dir, "store")
	r := runOK(t, []string{"CUTPOINT_NATS=" + url, "CUTPOINT_NATS_TLS_CA=" + caFile},
		append([]string{"coordinator", "--store", store, "--spawn", "local", "--interval", "0", "--every-steps", "1500"}, job...)...)
	if got := r.digest(t); got != want {
		t.Fatalf("digest over TLS %s, undisturbed %s", got, want)
	}
	if strings.Contains(r.stderr, "tls-e2e-token") {
		t.Fatalf("the job's log shows the token:\n%s", tail(r.stderr, 40))
	}
}

// TestNatsListenerChecks: a listener other hosts reach without
// authentication, cluster routes there without TLS, and half a
// certificate are refused before anything listens.
func TestNatsListenerChecks(t *testing.T) {
	dir := t.TempDir()
	tok := filepath.Join(dir, "tok")
	os.WriteFile(tok, []byte("checks-token\n"), 0o600)
	open := filepath.Join(dir, "open")
	os.WriteFile(open, []byte("checks-token\n"), 0o644)
	os.Chmod(open, 0o644)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"nats", "--listen", "0.0.0.0:0"}, "without authentication"},
		{[]string{"nats", "--listen", "0.0.0.0:0", "--token-file", tok, "--cluster", "0.0.0.0:0"}, "without TLS"},
		{[]string{"nats", "--listen", "127.0.0.1:0", "--tls-cert", tok}, "go together"},
		{[]string{"nats", "--listen", "127.0.0.1:0", "--tls-ca", tok}, "--tls-ca needs"},
		{[]string{"nats", "--token-file", open}, "group or others"},
		{[]string{"run", "--nats", "nats://127.0.0.1:1", "--nats-listen", "0.0.0.0:0"}, "--nats-listen"},
		{[]string{"coordinator", "--nats", "nats://127.0.0.1:1", "--job-id", "XYZ"}, "--job-id"},
		{[]string{"nats", "--token-file", tok, "--auth-file", tok}, "not both"},
		{[]string{"coordinator", "--nats", "nats://127.0.0.1:1", "--nats-user", "u"}, "--nats-password-file"},
		{[]string{"coordinator", "--nats", "nats://127.0.0.1:1", "--nats-tls-key", open, "--nats-tls-cert", tok}, "group or others"},
	} {
		_, errs, code := runCLI(t, c.args...)
		if code != exitUsage || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d naming %q", c.args, code, errs, exitUsage, c.want)
		}
		if strings.Contains(errs, "checks-token") {
			t.Errorf("%v: stderr shows the token", c.args)
		}
	}
}

// TestTwoJobsOfOneNameOnOneServer: two jobs named heat2d (two stores) run
// at once on one NATS server with one token; each run has its own id in
// its subjects, so neither sees the other's messages and both end with
// the undisturbed digest.
func TestTwoJobsOfOneNameOnOneServer(t *testing.T) {
	want := reference(t)
	dir := t.TempDir()
	urlFile := filepath.Join(dir, "nats.url")
	n := startNATS(t, "", urlFile)
	t.Cleanup(func() { n.Process.Kill(); n.Wait() })
	b, _ := os.ReadFile(urlFile)
	url := strings.TrimSpace(string(b))
	type run struct {
		out, errb syncBuf
		done      chan error
	}
	var runs []*run
	for i := range 2 {
		r := &run{done: make(chan error, 1)}
		c := cutpoint(t, []string{"CUTPOINT_NATS=" + url}, append([]string{"coordinator", "--store", filepath.Join(dir, fmt.Sprint("store", i)),
			"--spawn", "local", "--interval", "0", "--every-steps", "2000"}, job...)...)
		c.Stdout, c.Stderr = &r.out, &r.errb
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Process.Kill() })
		go func() { r.done <- c.Wait() }()
		runs = append(runs, r)
	}
	for i, r := range runs {
		select {
		case err := <-r.done:
			if err != nil {
				t.Fatalf("job %d: %v\n%s", i, err, tail(r.errb.String(), 40))
			}
		case <-time.After(4 * time.Minute):
			t.Fatalf("job %d did not finish\n%s", i, tail(r.errb.String(), 40))
		}
		if got := (result{stdout: r.out.String(), stderr: r.errb.String()}).digest(t); got != want {
			t.Fatalf("job %d: digest %s, undisturbed %s", i, got, want)
		}
	}
}

// TestNatsCertsCluster: `cutpoint nats certs` makes one CA and one
// certificate; two `cutpoint nats` servers on every interface take it for
// their clients and for their routes (which need one CA: a certificate a
// server makes for itself cannot be checked by the other), and ask
// clients for a certificate of that CA. A client without one is refused;
// a coordinator with the job's certificate (from the environment, as
// slurm/cutpoint.sbatch gives it) reaches both servers and the job ends
// with the undisturbed digest.
func TestNatsCertsCluster(t *testing.T) {
	want := reference(t)
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	out, err := cutpoint(t, nil, "nats", "certs", "--dir", dir, "--host", "127.0.0.1,localhost").Output()
	if err != nil {
		t.Fatalf("nats certs: %v", err)
	}
	certs := strings.TrimSpace(string(out))
	for _, f := range []string{"ca.pem", "server.pem", "server-key.pem"} {
		st, err := os.Lstat(filepath.Join(certs, f))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", f, st, err)
		}
	}
	tlsFlags := []string{"--tls-cert", filepath.Join(certs, "server.pem"), "--tls-key", filepath.Join(certs, "server-key.pem"), "--tls-ca", filepath.Join(certs, "ca.pem")}
	env := []string{"CUTPOINT_NATS_TOKEN=certs-e2e-token", "CUTPOINT_NATS_CLUSTER_TOKEN=certs-e2e-route"}
	start := func(i int, routes string) string {
		url, nerr := startClusterServer(t, env, dir, i, routes, append([]string{"--listen", "0.0.0.0:0", "--advertise", "127.0.0.1", "--cluster", "0.0.0.0:0"}, tlsFlags...)...)
		if strings.Contains(nerr.String(), "certs-e2e") {
			t.Fatalf("server %d's log shows a token:\n%s", i, nerr.String())
		}
		return url
	}
	u0 := start(0, "")
	route0, err := os.ReadFile(filepath.Join(dir, "route.0"))
	if err != nil {
		t.Fatal(err)
	}
	u1 := start(1, strings.TrimSpace(string(route0)))
	if nc, err := natsutil.Connect(u0, natsutil.ConnectOptions{Name: "no client certificate",
		Auth: natsutil.Auth{TLS: natsutil.ClientTLS{CA: filepath.Join(certs, "ca.pem")}}}); err == nil {
		nc.Close()
		t.Fatal("connected without a client certificate")
	}
	store := filepath.Join(dir, "store")
	r := runOK(t, []string{"CUTPOINT_NATS=" + u1 + "," + u0, "CUTPOINT_NATS_TLS_CA=" + filepath.Join(certs, "ca.pem"),
		"CUTPOINT_NATS_TLS_CERT=" + filepath.Join(certs, "server.pem"), "CUTPOINT_NATS_TLS_KEY=" + filepath.Join(certs, "server-key.pem")},
		append([]string{"coordinator", "--store", store, "--spawn", "local", "--interval", "0", "--every-steps", "1500"}, job...)...)
	if got := r.digest(t); got != want {
		t.Fatalf("digest over the TLS cluster %s, undisturbed %s", got, want)
	}
}

// TestNatsUsers: `cutpoint nats users` makes a job's users for servers
// the job does not start; two clustered `cutpoint nats --auth-file`
// servers take them; a coordinator given the directory (CUTPOINT_NATS_USERS)
// logs in as its user and its ranks as theirs, and rank 1, trying with its
// own credentials to speak as rank 2, as the coordinator and as rank 0, is
// refused each time by NATS; a rank's password does not log in as the
// coordinator; no password shows in a log; the job ends with the
// undisturbed digest.
func TestNatsUsers(t *testing.T) {
	want := reference(t)
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if r := runCmd(t, cutpoint(t, nil, "nats", "users", "--dir", dir, "--ranks", "0")); r.code != 2 || !strings.Contains(r.stderr, "--ranks 0") {
		t.Fatalf("--ranks 0: exit %d, want 2 naming it:\n%s", r.code, r.stderr)
	}
	out, err := cutpoint(t, nil, "nats", "users", "--dir", dir, "--ranks", "4", "--job", "heat2d").Output()
	if err != nil {
		t.Fatalf("nats users: %v", err)
	}
	users := strings.TrimSpace(string(out))
	if st, err := os.Lstat(users); err != nil || st.Mode().Perm() != 0o700 || !st.IsDir() {
		t.Fatalf("users directory %s: %v %v", users, st, err)
	}
	ents, err := os.ReadDir(users)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	var passwords []string
	for _, e := range ents {
		names = append(names, e.Name())
		st, err := os.Lstat(filepath.Join(users, e.Name()))
		if err != nil || st.Mode().Perm() != 0o600 || !st.Mode().IsRegular() {
			t.Fatalf("%s: %v %v", e.Name(), st, err)
		}
		if e.Name() != natsutil.UsersAuthFile {
			p, err := natsutil.ReadUserPassword(users, e.Name())
			if err != nil {
				t.Fatal(err)
			}
			passwords = append(passwords, p)
		}
	}
	if got := strings.Join(names, " "); got != "auth.conf coordinator rank-0 rank-1 rank-2 rank-3" {
		t.Fatalf("users directory holds %s", got)
	}
	env := []string{"CUTPOINT_NATS_CLUSTER_TOKEN=users-e2e-route"}
	var logs []*syncBuf
	start := func(i int, routes string) string {
		url, nerr := startClusterServer(t, env, dir, i, routes, "--listen", "127.0.0.1:0", "--cluster", "127.0.0.1:0",
			"--auth-file", filepath.Join(users, natsutil.UsersAuthFile))
		logs = append(logs, nerr)
		return url
	}
	u0 := start(0, "")
	route0, err := os.ReadFile(filepath.Join(dir, "route.0"))
	if err != nil {
		t.Fatal(err)
	}
	u1 := start(1, strings.TrimSpace(string(route0)))
	p1, err := natsutil.ReadUserPassword(users, "rank-1")
	if err != nil {
		t.Fatal(err)
	}
	if nc, err := natsutil.Connect(u0, natsutil.ConnectOptions{Name: "rank 1 as the coordinator",
		Auth: natsutil.Auth{User: natsutil.CoordinatorUser, Password: p1}}); err == nil {
		nc.Close()
		t.Fatal("rank 1's password logged in as the coordinator")
	}
	hostile := filepath.Join(dir, "hostile.txt")
	r := runOK(t, []string{"CUTPOINT_NATS=" + u1 + "," + u0, "CUTPOINT_NATS_USERS=" + users, envHostileOut + "=" + hostile},
		append([]string{"coordinator", "--store", filepath.Join(dir, "store"), "--spawn", "local", "--interval", "0", "--every-steps", "1500"}, job...)...)
	if got := r.digest(t); got != want {
		t.Fatalf("digest with the job's users %s, undisturbed %s", got, want)
	}
	b, err := os.ReadFile(hostile)
	if err != nil {
		t.Fatalf("rank 1 did not try: %v", err)
	}
	checkHostileReport(t, string(b), false)
	for _, p := range passwords {
		for i, l := range logs {
			if strings.Contains(l.String(), p) {
				t.Errorf("server %d's log shows a password", i)
			}
		}
		if strings.Contains(r.stderr, p) || strings.Contains(r.stdout, p) {
			t.Errorf("the coordinator's output shows a password")
		}
	}
}

// startClusterServer starts `cutpoint nats` server i of a test's cluster
// with flags, writing its URL files into dir (url.I, route.I) and routing
// to routes, and returns its client URL once written and its log.
func startClusterServer(t *testing.T, env []string, dir string, i int, routes string, flags ...string) (string, *syncBuf) {
	t.Helper()
	urlFile, routeFile := filepath.Join(dir, fmt.Sprintf("url.%d", i)), filepath.Join(dir, fmt.Sprintf("route.%d", i))
	args := append(append([]string{"nats"}, flags...), "--cluster-url-file", routeFile, "--url-file", urlFile)
	if routes != "" {
		args = append(args, "--routes", routes)
	}
	n := cutpoint(t, env, args...)
	nerr := &syncBuf{}
	n.Stderr = nerr
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Process.Kill(); n.Wait() })
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if b, _ := os.ReadFile(urlFile); len(b) > 0 {
			return strings.TrimSpace(string(b)), nerr
		}
		if time.Now().After(deadline) {
			t.Fatalf("server %d wrote no URL\n%s", i, nerr.String())
		}
	}
}
