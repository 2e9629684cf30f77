package main

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cutpoint/cutpoint/ckpt"
	"github.com/cutpoint/cutpoint/internal/jobstats"
)

// restoreBytes sums what the rank processes' stats files say their
// restores read, by level, and per rank.
func restoreBytes(t *testing.T, dir string) (map[string]int64, map[int]map[string]int64) {
	t.Helper()
	_, ranks, err := jobstats.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	all := map[string]int64{}
	per := map[int]map[string]int64{}
	for _, r := range ranks {
		if per[r.Rank] == nil {
			per[r.Rank] = map[string]int64{}
		}
		for l, n := range r.RestoreBytes {
			all[l] += n
			per[r.Rank][l] += n
		}
	}
	return all, per
}

// TestLevelsHostLoss: four ranks on hosts a and b (spare c), node-local
// cuts with partner copies, every third epoch flushed. Every rank of b is
// SIGKILLed and b's node-local directory wiped: b's ranks come back on c
// and rebuild from their partner copies on a, a's ranks roll back from
// their own copies, no byte is read from the shared store, and the job
// ends with the undisturbed digest.
func TestLevelsHostLoss(t *testing.T) {
	want := reference(t)
	j := startHostsJob(t, "a:2,b:2,c:2", []string{"--redundancy", "partner", "--flush-every", "3"}, job)
	store, local, stats := j.store, j.local, j.stats
	cuts := committed(t, store, "heat2d")
	if lv := cuts[0].Levels(); !lv.Local || !lv.Partner {
		t.Fatalf("cut %d levels %q, want local and partner", cuts[0].Epoch, lv)
	}
	j.lose("b")
	log := j.end(3*time.Minute, want)
	if !strings.Contains(log, "recovery-finished") {
		t.Fatalf("no recovery\n%s", tail(log, 60))
	}
	all, per := restoreBytes(t, stats)
	if all[ckpt.LevelShared] != 0 {
		t.Fatalf("the recovery read %d bytes from the shared store (by level %v, per rank %v)", all[ckpt.LevelShared], all, per)
	}
	for _, rk := range []int{0, 1} {
		if per[rk][ckpt.LevelLocal] == 0 {
			t.Errorf("survivor rank %d read nothing from its own node-local copy: %v", rk, per[rk])
		}
	}
	for _, rk := range []int{2, 3} {
		if per[rk][ckpt.LevelPartner] == 0 {
			t.Errorf("respawned rank %d read nothing from its partner copy: %v", rk, per[rk])
		}
	}
	// Every third epoch went to the shared store too.
	_, ranks, _ := jobstats.ReadDir(stats)
	var flushed, partner int64
	for _, r := range ranks {
		flushed += r.FlushBytes
		partner += r.PartnerBytes
	}
	if flushed == 0 || partner == 0 {
		t.Errorf("%d bytes flushed to the shared store, %d copied to partners: want both", flushed, partner)
	}
	t.Logf("restore bytes by level %v; %d bytes flushed, %d copied to partners", all, flushed, partner)

	// The store commands see every level.
	tmpl := local + "/{host}"
	out, errs, code := runCLI(t, "ls", "--store", store, "--local", tmpl)
	if code != 0 || !strings.Contains(out, "LEVELS") || !strings.Contains(out, "local,partner") || !strings.Contains(out, "a=") {
		t.Fatalf("ls: exit %d\n%s%s", code, out, errs)
	}
	out, errs, code = runCLI(t, "verify", "--store", store, "--local", tmpl)
	if code != 0 || !strings.Contains(out, "node-local a: ") || strings.Contains(out, "node-local a: 0 shard") {
		t.Fatalf("verify: exit %d\n%s%s", code, out, errs)
	}
	out, errs, code = runCLI(t, "gc", "--store", store, "--keep", "1", "--local", tmpl)
	if code != 0 || !strings.Contains(out, "node-local a: deleted") {
		t.Fatalf("gc: exit %d\n%s%s", code, out, errs)
	}
	out, errs, code = runCLI(t, "verify", "--store", store, "--local", tmpl)
	if code != 0 {
		t.Fatalf("verify after gc: exit %d\n%s%s", code, out, errs)
	}
	t.Logf("after gc:\n%s", out)
}

// levelsFixture is a job with node-local cuts and redundancy across
// hosts (flush every 1000 cuts: only a final cut reaches the shared
// store), stopped after two cuts: by SIGKILL of the whole job, or by
// SIGTERM (a final cut, in the shared store too). newLevelsFixture: hosts
// a and b, partner copies; newLevelsFixtureOn: any hosts and redundancy.
type levelsFixture struct {
	store, local, stats string
	base                []string // the run's arguments without the levels
	last                *ckpt.Cut
}

func newLevelsFixture(t *testing.T, sig syscall.Signal) *levelsFixture {
	t.Helper()
	return newLevelsFixtureOn(t, sig, "a:2,b:2", "partner")
}

func newLevelsFixtureOn(t *testing.T, sig syscall.Signal, hosts, redundancy string) *levelsFixture {
	t.Helper()
	dir := t.TempDir()
	f := &levelsFixture{store: filepath.Join(dir, "store"), local: filepath.Join(dir, "local"), stats: filepath.Join(dir, "stats")}
	f.base = append([]string{"run", "--store", f.store, "--interval", "0", "--every-steps", "100",
		"--hosts", hosts, "--spawn-cmd", "{cmd}"}, job...)
	args := append(append([]string{}, f.base...), "--local", f.local+"/{host}", "--redundancy", redundancy, "--flush-every", "1000")
	cmd := cutpoint(t, nil, args...)
	var errb syncBuf
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitCut(t, f.store, "heat2d", 2, cmd, &errb)
	if sig == syscall.SIGKILL {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	} else {
		syscall.Kill(cmd.Process.Pid, sig)
	}
	cmd.Wait()
	time.Sleep(300 * time.Millisecond) // the ranks die with their launcher
	cuts := committed(t, f.store, "heat2d")
	last := cuts[len(cuts)-1]
	if lv := last.Levels(); !lv.Local || !strings.Contains(lv.String(), strings.Split(redundancy, ":")[0]) || lv.Shared != (sig != syscall.SIGKILL) {
		t.Fatalf("cut %d levels %q after %v\n%s", last.Epoch, lv, sig, tail(errb.String(), 40))
	}
	s, err := ckpt.OpenDir(context.Background(), f.store, ckpt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f.last, err = s.LoadCut(context.Background(), "heat2d", last.Epoch)
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// damage flips one bit of rank's pack of the latest cut in host's
// node-local directory (its own copy, or the partner copy it keeps for
// a rank of the other host: the same path).
func (f *levelsFixture) damage(t *testing.T, host string, rank int) {
	t.Helper()
	pack := filepath.Join(f.local, host, filepath.FromSlash(f.last.Shards[rank].Pack()))
	data, err := os.ReadFile(pack)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/3] ^= 0x10
	if err := os.WriteFile(pack, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// damagedCopies sums the rank processes' damaged_copies counters per
// rank.
func damagedCopies(t *testing.T, dir string) map[int]map[string]int64 {
	t.Helper()
	_, ranks, err := jobstats.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	per := map[int]map[string]int64{}
	for _, r := range ranks {
		if per[r.Rank] == nil {
			per[r.Rank] = map[string]int64{}
		}
		for l, n := range r.DamagedCopies {
			per[r.Rank][l] += n
		}
	}
	return per
}

// TestLevelsRestoreFallback: the whole job is SIGKILLed; rank 0's own
// node-local copy of the latest cut is damaged. --restore (the levels
// come from the store's record) rebuilds rank 0 from its partner copy,
// reports and counts the damage, reads nothing from the shared store, and
// the job ends with the undisturbed digest.
func TestLevelsRestoreFallback(t *testing.T) {
	want := reference(t)
	f := newLevelsFixture(t, syscall.SIGKILL)
	f.damage(t, "a", 0)
	out, errs, code := runCLI(t, "verify", "--store", f.store, "--local", f.local+"/{host}")
	if code != exitDamaged || !strings.Contains(out, "DAMAGED node-local a") {
		t.Fatalf("verify of a damaged node-local copy: exit %d\n%s%s", code, out, errs)
	}
	r := runOK(t, nil, append(append([]string{}, f.base...), "--restore", "--stats-dir", f.stats)...)
	if got := r.digest(t); got != want {
		t.Fatalf("restored digest %s, undisturbed %s", got, want)
	}
	if !strings.Contains(r.stderr, "damaged copy") {
		t.Fatalf("the damaged copy went unreported\n%s", tail(r.stderr, 60))
	}
	all, per := restoreBytes(t, f.stats)
	if all[ckpt.LevelShared] != 0 || per[0][ckpt.LevelPartner] == 0 || per[1][ckpt.LevelLocal] == 0 {
		t.Fatalf("restore bytes by level %v, per rank %v: want rank 0 from its partner copy, rank 1 from its own, nothing shared\n%s", all, per, tail(r.stderr, 80))
	}
	dmg := damagedCopies(t, f.stats)
	for rk, d := range dmg {
		want := map[string]int64{}
		if rk == 0 {
			want[ckpt.LevelLocal] = 1
		}
		if !maps.Equal(d, want) {
			t.Fatalf("damaged copies per rank %v: want rank 0's node-local copy alone", dmg)
		}
	}
	if len(dmg) != 4 {
		t.Fatalf("stats of ranks %v, want 4", dmg)
	}
}

// TestLevelsInspectNodeLocal: inspect --local describes a cut held on the
// node-local levels only (the whole job SIGKILLed before any flush) from
// the node-local copies and names the hosts holding each rank's shard;
// without --local the shard indexes are not found in the shared store.
func TestLevelsInspectNodeLocal(t *testing.T) {
	f := newLevelsFixture(t, syscall.SIGKILL)
	e := fmt.Sprint(f.last.Epoch)
	out, errs, code := runCLI(t, "inspect", "--store", f.store, "--cut", e, "--local", f.local+"/{host}")
	if code != 0 || strings.Contains(out, "unreadable") || !strings.Contains(out, "RANK  COPIES") {
		t.Fatalf("inspect --local of node-local cut %s: exit %d\n%s%s", e, code, out, errs)
	}
	for rk := range 4 {
		if !strings.Contains(out, fmt.Sprintf("\n%d     u ", rk)) || !strings.Contains(out, fmt.Sprintf("\n%d     a b\n", rk)) {
			t.Fatalf("inspect --local: rank %d not described from its node-local copies on a and b\n%s", rk, out)
		}
	}
	if _, _, code := runCLI(t, "inspect", "--store", f.store, "--cut", e); code != exitDamaged {
		t.Fatalf("inspect of node-local cut %s without --local: exit %d, want %d (no shard index in the shared store)", e, code, exitDamaged)
	}
}

// TestLevelsRestoreDamagedPartner: SIGTERM's final cut is in the shared
// store as well as node-local; both node-local copies of rank 0's shard
// (its own on a, the partner copy on b) are damaged. --restore passes
// over both, counts them, reads rank 0 from the shared store, and the
// job ends with the undisturbed digest.
func TestLevelsRestoreDamagedPartner(t *testing.T) {
	want := reference(t)
	f := newLevelsFixture(t, syscall.SIGTERM)
	f.damage(t, "a", 0)
	f.damage(t, "b", 0)
	r := runOK(t, nil, append(append([]string{}, f.base...), "--restore", "--stats-dir", f.stats)...)
	if got := r.digest(t); got != want {
		t.Fatalf("restored digest %s, undisturbed %s", got, want)
	}
	all, per := restoreBytes(t, f.stats)
	if per[0][ckpt.LevelShared] == 0 || per[0][ckpt.LevelLocal]+per[0][ckpt.LevelPartner] != 0 || per[1][ckpt.LevelLocal] == 0 {
		t.Fatalf("restore bytes by level %v, per rank %v: want rank 0 from the shared store, rank 1 from its own copy\n%s", all, per, tail(r.stderr, 80))
	}
	dmg := damagedCopies(t, f.stats)
	if d := dmg[0]; d[ckpt.LevelLocal] != 1 || d[ckpt.LevelPartner] != 1 || len(d) != 2 {
		t.Fatalf("damaged copies per rank %v: want rank 0's node-local and partner copies", dmg)
	}
	for rk := 1; rk < 4; rk++ {
		if len(dmg[rk]) != 0 {
			t.Fatalf("damaged copies per rank %v: rank %d found damage in intact copies", dmg, rk)
		}
	}
}

// TestLevelsRestoreDamagedNoShared: the whole job is SIGKILLed before any
// cut reached the shared store; both node-local copies of rank 0's shard
// of the latest cut are damaged. Rank 0's restore of that cut fails,
// naming both damaged copies and the shared store's missing one; the
// coordinator marks the cut bad and falls back to the cut before it
// (intact node-local copies): the job ends with the undisturbed digest,
// never having read the damaged bytes into the job, and nothing read
// from the shared store.
func TestLevelsRestoreDamagedNoShared(t *testing.T) {
	want := reference(t)
	f := newLevelsFixture(t, syscall.SIGKILL)
	f.damage(t, "a", 0)
	f.damage(t, "b", 0)
	r := runOK(t, nil, append(append([]string{}, f.base...), "--restore", "--stats-dir", f.stats)...)
	if got := r.digest(t); got != want {
		t.Fatalf("restored digest %s, undisturbed %s", got, want)
	}
	for _, s := range []string{
		fmt.Sprintf("restore cut %d: no level holds an intact copy", f.last.Epoch),
		"local a: ", "partner b: ", "the stored bytes are damaged", "shared: ",
		fmt.Sprintf("cut %d marked bad, falling back to cut", f.last.Epoch),
	} {
		if !strings.Contains(r.stderr, s) {
			t.Fatalf("the failed restore does not say %q\n%s", s, tail(r.stderr, 80))
		}
	}
	all, per := restoreBytes(t, f.stats)
	if all[ckpt.LevelShared] != 0 || per[0][ckpt.LevelLocal] == 0 {
		t.Fatalf("restore bytes by level %v, per rank %v: want rank 0 from its own copy of the older cut, nothing shared", all, per)
	}
	dmg := damagedCopies(t, f.stats)
	if d := dmg[0]; d[ckpt.LevelLocal] != 1 || d[ckpt.LevelPartner] != 1 || len(d) != 2 {
		t.Fatalf("damaged copies per rank %v: want rank 0's node-local and partner copies", dmg)
	}
}

// TestLevelsErasureBeyondM: rs:2+1 over four one-slot hosts (e a spare):
// each shard's fragments are on the three other hosts. SIGTERM's final
// cut is in the shared store as well; then hosts b, c and d lose their
// node-local directories, so ranks 1-3 keep neither their own copy nor
// more than one fragment each (M = 1 host per group at most). --restore
// rebuilds rank 0 from its own copy and reads ranks 1-3 from the shared
// store; the digest is undisturbed.
func TestLevelsErasureBeyondM(t *testing.T) {
	want := reference(t)
	f := newLevelsFixtureOn(t, syscall.SIGTERM, "a:1,b:1,c:1,d:1,e:1", "rs:2+1")
	for _, h := range []string{"b", "c", "d"} {
		if err := os.RemoveAll(filepath.Join(f.local, h)); err != nil {
			t.Fatal(err)
		}
	}
	r := runOK(t, nil, append(append([]string{}, f.base...), "--restore", "--stats-dir", f.stats)...)
	if got := r.digest(t); got != want {
		t.Fatalf("restored digest %s, undisturbed %s", got, want)
	}
	all, per := restoreBytes(t, f.stats)
	if per[0][ckpt.LevelLocal] == 0 || per[0][ckpt.LevelShared] != 0 {
		t.Fatalf("restore bytes by level %v, per rank %v: want rank 0 from its own copy", all, per)
	}
	for rk := 1; rk < 4; rk++ {
		if per[rk][ckpt.LevelShared] == 0 || per[rk][ckpt.LevelErasure]+per[rk][ckpt.LevelLocal] != 0 {
			t.Fatalf("restore bytes by level %v, per rank %v: want rank %d from the shared store", all, per, rk)
		}
	}
	t.Logf("restore bytes per rank %v", per)
}

// TestLevelsErasureBeyondMNoShared: as TestLevelsErasureBeyondM, but the
// whole job is SIGKILLed before any cut reached the shared store: no
// level holds ranks 1-3's shards of any cut. The restore says so (no
// intact copy, too few erasure fragments, none in the shared store) and
// the coordinator falls back cut by cut; the run either ends with the
// undisturbed digest (recomputed from the start) or fails: never a job
// started from a wrong state, never a silent failure.
func TestLevelsErasureBeyondMNoShared(t *testing.T) {
	want := reference(t)
	f := newLevelsFixtureOn(t, syscall.SIGKILL, "a:1,b:1,c:1,d:1,e:1", "rs:2+1")
	for _, h := range []string{"b", "c", "d"} {
		if err := os.RemoveAll(filepath.Join(f.local, h)); err != nil {
			t.Fatal(err)
		}
	}
	r := runCmd(t, cutpoint(t, nil, append(append([]string{}, f.base...), "--restore", "--stats-dir", f.stats)...))
	for _, s := range []string{
		fmt.Sprintf("restore cut %d: no level holds an intact copy", f.last.Epoch),
		"1 intact erasure fragments, 2 needed",
		fmt.Sprintf("shared: job heat2d cut %d rank", f.last.Epoch),
		fmt.Sprintf("cut %d marked bad", f.last.Epoch),
	} {
		if !strings.Contains(r.stderr, s) {
			t.Fatalf("exit %d: the failed restore does not say %q\n%s", r.code, s, tail(r.stderr, 80))
		}
	}
	if r.code == 0 {
		if got := r.digest(t); got != want {
			t.Fatalf("digest %s after a restore with no intact copy, undisturbed %s", got, want)
		}
	}
	t.Logf("exit %d\n%s", r.code, tail(r.stderr, 3))
}

// TestLevelsPreempted: SIGTERM's final cut goes to the shared store
// although it is not a flush epoch; with every node-local directory gone
// --restore rebuilds the job from the shared store alone.
func TestLevelsPreempted(t *testing.T) {
	want := reference(t)
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	local := filepath.Join(dir, "local")
	stats := filepath.Join(dir, "stats")
	args := append([]string{"run", "--store", store, "--interval", "0", "--every-steps", "100",
		"--hosts", "a:2,b:2", "--spawn-cmd", "{cmd}", "--local", local + "/{host}", "--redundancy", "partner", "--flush-every", "1000"}, job...)
	cmd := cutpoint(t, nil, args...)
	var errb syncBuf
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitCut(t, store, "heat2d", 1, cmd, &errb)
	syscall.Kill(cmd.Process.Pid, syscall.SIGTERM)
	cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 5 {
		t.Fatalf("exit %d after SIGTERM, want 5 (stopped with a final cut)\n%s", code, tail(errb.String(), 40))
	}
	cuts := committed(t, store, "heat2d")
	last := cuts[len(cuts)-1]
	if !last.Levels().Shared || last.Meta["final"] != "true" {
		t.Fatalf("final cut %d: levels %q, meta %v: want it in the shared store", last.Epoch, last.Levels(), last.Meta)
	}
	if err := os.RemoveAll(local); err != nil {
		t.Fatal(err)
	}
	verifyStore(t, store)
	r := runOK(t, nil, append(args, "--restore", "--stats-dir", stats)...)
	if got := r.digest(t); got != want {
		t.Fatalf("restored digest %s, undisturbed %s", got, want)
	}
	all, _ := restoreBytes(t, stats)
	if all[ckpt.LevelShared] == 0 || all[ckpt.LevelLocal]+all[ckpt.LevelPartner] != 0 {
		t.Fatalf("restore bytes by level %v: want all from the shared store\n%s", all, r.stderr)
	}
}

// TestLevelsErasure: --redundancy rs:2+1 over five one-slot hosts (e a
// spare): each shard's fragments go to the next three hosts. Host b's rank
// is SIGKILLed and b's directory wiped; the rank comes back on e and
// rebuilds its shard from the fragments, nothing is read from the shared
// store, and the digest is undisturbed.
func TestLevelsErasure(t *testing.T) {
	want := reference(t)
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	local := filepath.Join(dir, "local")
	stats := filepath.Join(dir, "stats")
	tmpl := `echo $$ >> ` + dir + `/{host}.pids; exec {cmd}`
	args := append([]string{"run", "--store", store, "--interval", "0", "--every-steps", "100",
		"--hosts", "a:1,b:1,c:1,d:1,e:1", "--spawn-cmd", tmpl, "--stats-dir", stats,
		"--local", local + "/{host}", "--redundancy", "rs:2+1", "--flush-every", "1000"}, job...)
	cmd := cutpoint(t, nil, args...)
	var errb, outb syncBuf
	cmd.Stderr, cmd.Stdout = &errb, &outb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	defer func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}()
	waitCut(t, store, "heat2d", 1, cmd, &errb)
	if lv := committed(t, store, "heat2d")[0].Levels(); lv.String() != "local,rs" {
		t.Fatalf("levels %q, want local,rs", lv)
	}
	for _, pid := range pidsOf(t, filepath.Join(dir, "b.pids")) {
		syscall.Kill(-pid, syscall.SIGKILL)
	}
	if err := os.RemoveAll(filepath.Join(local, "b")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(3 * time.Minute):
		t.Fatalf("job did not finish\n%s", tail(errb.String(), 60))
	}
	log := errb.String()
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, tail(log, 60), listTree(local))
	}
	if got := (result{stdout: outb.String(), stderr: log}).digest(t); got != want {
		t.Fatalf("digest %s, undisturbed %s", got, want)
	}
	all, per := restoreBytes(t, stats)
	if all[ckpt.LevelShared] != 0 || per[1][ckpt.LevelErasure] == 0 {
		t.Fatalf("restore bytes by level %v, per rank %v: want rank 1 rebuilt from fragments, nothing shared", all, per)
	}
	t.Logf("restore bytes by level %v", all)
}

func TestLevelsFlagChecks(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "--local", "/tmp/x/{host}", "--redundancy", "partner"}, "on one host"},
		{[]string{"run", "--local", "/tmp/x", "--redundancy", "partner", "--hosts", "a:2,b:2"}, "{host}"},
		{[]string{"run", "--redundancy", "partner"}, "needs --local"},
		{[]string{"run", "--local", "/tmp/x/{host}", "--redundancy", "rs:2+1", "--hosts", "a:2,b:2"}, "go to 3 hosts"},
		{[]string{"run", "--local", "/tmp/x/{host}", "--redundancy", "mirror", "--hosts", "a:2,b:2"}, "want none, partner or rs:K+M"},
	} {
		store := filepath.Join(t.TempDir(), "store")
		args := append(c.args, "--store", store)
		_, stderr, code := runCLI(t, args...)
		if code != exitUsage || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q", c.args, code, stderr)
		}
		if _, err := os.Stat(store); err == nil {
			t.Errorf("%v: the store was created before the flags were refused", c.args)
		}
	}
}
