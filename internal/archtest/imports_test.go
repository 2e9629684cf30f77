package archtest

import (
	"bufio"
	"bytes"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/cutpoint/cutpoint"

// allowed is, for every package of the module, the module packages its
// non-test code may import (paths relative to the module). It is the truth
// of the code as docs/design.md draws it: a new package, or a new import
// between packages, must be added here (and to the design's graph) on
// purpose. Test files may import more (rank's tests run the coordinator and
// heat2d); their only rule is checked by TestTestHelpersStayInTests.
var allowed = map[string][]string{
	// The bottom: packages that import nothing of the module.
	"internal/subjects": nil,
	"internal/natsutil": nil,
	"internal/launch":   nil,
	"internal/jobstats": nil,
	"internal/datagen":  nil,
	"kernels":           nil,
	"kernels/shuffle":   nil,
	"ckpt/backend":      nil,
	"internal/archtest": nil,
	"internal/exitcode": nil,
	"internal/jobname":  nil,
	"internal/pause":    nil,

	"internal/wire": {"internal/jobname"},

	"kernels/cuda":             {"kernels"},
	"kernels/kernelstest":      {"kernels"},
	"ckpt/backend/local":       {"ckpt/backend"},
	"ckpt/backend/mem":         {"ckpt/backend"},
	"ckpt/backend/fault":       {"ckpt/backend"},
	"ckpt/backend/backendtest": {"ckpt/backend"},
	"ckpt/backend/discard":     {"ckpt/backend", "ckpt/backend/mem"},
	"rank/transport/channel":   nil,
	"rank/transport/natstest":  nil,
	"internal/levels":          {"internal/launch"},
	"internal/nodestore":       {"ckpt/backend"},
	"internal/heat2d":          {"kernels"},
	"rank/participant":         {"internal/exitcode", "internal/wire"},
	"coordinator":              {"internal/exitcode", "internal/jobname", "internal/wire"},
	"rank/transport":           {"internal/natsutil", "rank/transport/channel"},
	"sim":                      {"coordinator", "internal/wire", "rank/participant", "rank/transport/channel"},
	"rank/examples/ring":       {"kernels", "rank"},
	"ckpt":                     {"ckpt/backend", "ckpt/backend/local", "internal/jobname", "internal/pause", "kernels/shuffle"},
	"coordinator/driver":       {"ckpt", "coordinator", "internal/exitcode", "internal/launch", "internal/levels", "internal/subjects", "internal/wire"},
	"rank":                     {"ckpt", "ckpt/backend", "internal/jobname", "internal/jobstats", "internal/levels", "internal/natsutil", "internal/nodestore", "internal/pause", "internal/subjects", "internal/wire", "kernels", "rank/participant", "rank/transport"},
	"bench":                    {"ckpt", "ckpt/backend/discard", "ckpt/backend/local", "internal/datagen", "internal/jobstats", "internal/natsutil", "kernels", "kernels/shuffle", "rank/transport"},
	"cmd/libcutpoint":          {"internal/jobstats", "kernels", "kernels/cuda", "rank", "rank/participant", "rank/transport"}, // kernels/cuda: tag cuda
	"cmd/cutpoint": {"bench", "ckpt", "coordinator", "coordinator/driver", "internal/exitcode", "internal/heat2d", "internal/jobname", "internal/jobstats",
		"internal/launch", "internal/levels", "internal/natsutil", "internal/pause", "internal/subjects", "internal/wire", "kernels", "kernels/cuda", "rank"},
}

// exceptions are the arrows of allowed that run against the design's
// direction (a package reaching to a sibling's insides or to a layer it
// should not know); each says why it stays. Removing one from allowed is
// welcome; adding one needs a reason here.
var exceptions = map[[2]string]string{
	{"ckpt", "ckpt/backend/local"}: "ckpt.Open(dir) opens a POSIX directory store by default; " +
		"the engine otherwise only knows the Backend interface",
	{"bench", "rank/transport"}: "the transport benchmark drives rank/transport's endpoints directly " +
		"(no runtime, no cuts) to measure the channels alone",
	{"cmd/libcutpoint", "rank/participant"}: "the C ABI maps participant.ErrNotPeer/ErrTooLarge to status codes " +
		"(rank returns them wrapped)",
	{"cmd/libcutpoint", "rank/transport"}: "the C ABI maps transport.ErrUnknownPeer/ErrTooLarge to status codes " +
		"(rank returns them wrapped)",
}

// forbidden are the design table's "must not" rules, checked separately so
// that an entry added to allowed by mistake still fails with the reason. A
// pattern is a package, "p/..." for p and everything below it, or "" for
// any package; except names importers the rule lets through.
var forbidden = []struct {
	from, to, why string
	except        []string
}{
	{from: "kernels/...", to: "rank/...", why: "kernels must not import rank/, coordinator/, ckpt/"},
	{from: "kernels/...", to: "coordinator/...", why: "kernels must not import rank/, coordinator/, ckpt/"},
	{from: "kernels/...", to: "ckpt/...", why: "kernels must not import rank/, coordinator/, ckpt/"},
	{from: "kernels/shuffle", to: "", why: "kernels/shuffle must not import anything of the module"},
	{from: "ckpt/...", to: "rank/...", why: "ckpt must not know about ranks or the protocol"},
	{from: "ckpt/...", to: "coordinator/...", why: "ckpt must not know about ranks or the protocol"},
	{from: "ckpt/...", to: "internal/wire", why: "ckpt must not know about the protocol"},
	{from: "internal/wire", to: "rank/...", why: "internal/wire is the encoding below both protocols; it holds no protocol logic"},
	{from: "internal/wire", to: "coordinator/...", why: "internal/wire is the encoding below both protocols; it holds no protocol logic"},
	{from: "internal/wire", to: "ckpt/...", why: "internal/wire is the encoding below both protocols; it knows no store"},
	{from: "rank/participant", to: "rank/transport/...", why: "the participant is pure: no sockets"},
	{from: "rank/participant", to: "ckpt/...", why: "the participant is pure: no I/O"},
	{from: "rank/transport/channel", to: "", why: "the channel machine is pure and knows nothing of cuts"},
	{from: "rank/transport/...", to: "rank/participant", why: "the transport must not know about cuts"},
	{from: "coordinator", to: "coordinator/driver", why: "the coordinator is pure"},
	{from: "coordinator", to: "ckpt/...", why: "the coordinator is pure: no state bytes"},
	{from: "coordinator", to: "rank/...", why: "the coordinator does not link the rank runtime"},
	{from: "coordinator/driver", to: "rank/...", why: "the coordinator does not link the rank runtime"},
	{from: "internal/heat2d", to: "rank/...", why: "heat2d is a workload over its Comm interface, below rank (rank's tests run it)"},
	{from: "internal/levels", to: "ckpt/...", why: "levels must not do I/O"},
	{from: "", to: "bench", why: "bench must not be imported by other packages (cmd/cutpoint runs it)", except: []string{"cmd/cutpoint"}},
	{from: "", to: "cmd/...", why: "a command is not a library"},
	{from: "", to: "sim", why: "the simulation is for tests"},
	{from: "", to: "internal/archtest", why: "archtest is a test"},
}

// covers reports whether the rule pattern p matches pkg.
func covers(p, pkg string) bool {
	if p == "" {
		return true
	}
	if base, ok := strings.CutSuffix(p, "/..."); ok {
		return pkg == base || strings.HasPrefix(pkg, base+"/")
	}
	return pkg == p
}

// breaks returns the reason the import pkg -> dep is forbidden, or "".
func breaks(pkg, dep string) string {
	for _, f := range forbidden {
		if covers(f.from, pkg) && covers(f.to, dep) && !slices.Contains(f.except, pkg) {
			return f.why
		}
	}
	return ""
}

type pkgImports struct {
	prod  map[string][]string // package -> module imports of its non-test files
	tests map[string][]string // package -> module imports of its test files
}

// list runs go list over the whole module with the given build tags (the
// CUDA device is only listed with "cuda"; go list needs no CUDA headers).
func list(t *testing.T, tags string) pkgImports {
	t.Helper()
	args := []string{"list", "-e", "-f",
		"{{.ImportPath}} P {{join .Imports \" \"}}\n{{.ImportPath}} T {{join .TestImports \" \"}} {{join .XTestImports \" \"}}"}
	if tags != "" {
		args = append(args, "-tags", tags)
	}
	args = append(args, module+"/...")
	cmd := exec.Command("go", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	got := pkgImports{prod: map[string][]string{}, tests: map[string][]string{}}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		pkg, ok := rel(f[0])
		if !ok {
			continue
		}
		var deps []string
		for _, imp := range f[2:] {
			if r, ok := rel(imp); ok && r != pkg && !slices.Contains(deps, r) {
				deps = append(deps, r)
			}
		}
		sort.Strings(deps)
		if f[1] == "P" {
			got.prod[pkg] = deps
		} else {
			got.tests[pkg] = deps
		}
	}
	if len(got.prod) < 10 {
		t.Fatalf("go list found %d packages of %s; is the test run inside the module?", len(got.prod), module)
	}
	return got
}

// rel turns a module import path into one relative to the module.
func rel(path string) (string, bool) {
	if path == module {
		return "", true
	}
	r, ok := strings.CutPrefix(path, module+"/")
	return r, ok
}

func TestImportGraph(t *testing.T) {
	for _, tags := range []string{"", "cuda"} {
		g := list(t, tags)
		for pkg, deps := range g.prod {
			want, known := allowed[pkg]
			if !known {
				t.Errorf("tags %q: package %s is not in the import table: add it to allowed (and to docs/design.md's graph)", tags, pkg)
				continue
			}
			for _, d := range deps {
				if !slices.Contains(want, d) {
					t.Errorf("tags %q: %s imports %s, which the table (docs/design.md) does not allow", tags, pkg, d)
				}
				if why := breaks(pkg, d); why != "" {
					t.Errorf("tags %q: %s imports %s: %s", tags, pkg, d, why)
				}
			}
		}
	}
}

// TestTableIsTight: every allowed arrow exists in the code (a stale entry
// would let a removed dependency creep back unnoticed), every exception is
// an allowed arrow, and no allowed arrow breaks a forbidden rule.
func TestTableIsTight(t *testing.T) {
	seen := map[[2]string]bool{}
	for _, tags := range []string{"", "cuda"} {
		for pkg, deps := range list(t, tags).prod {
			for _, d := range deps {
				seen[[2]string{pkg, d}] = true
			}
		}
	}
	for pkg, deps := range allowed {
		for _, d := range deps {
			if !seen[[2]string{pkg, d}] {
				t.Errorf("allowed lists %s -> %s, but no code imports it: drop it from the table", pkg, d)
			}
			if why := breaks(pkg, d); why != "" {
				t.Errorf("allowed lists %s -> %s, which breaks: %s", pkg, d, why)
			}
		}
	}
	for e := range exceptions {
		if !slices.Contains(allowed[e[0]], e[1]) {
			t.Errorf("exception %s -> %s is not in allowed", e[0], e[1])
		}
	}
}

// TestTestHelpersStayInTests: the packages made for tests (fault
// injection, fixtures, conformance suites, the simulation) are imported by
// test files only, never by code a binary links.
func TestTestHelpersStayInTests(t *testing.T) {
	helpers := []string{"ckpt/backend/fault", "ckpt/backend/backendtest", "kernels/kernelstest", "rank/transport/natstest", "sim"}
	for pkg, deps := range list(t, "").prod {
		for _, d := range deps {
			if slices.Contains(helpers, d) {
				t.Errorf("%s imports the test helper %s from non-test code", pkg, d)
			}
		}
	}
}
