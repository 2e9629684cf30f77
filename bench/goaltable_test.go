package bench

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The committed goal table of docs/benchmarks.md is what the committed raw
// results make: a typed-in figure, or a raw result changed without
// regenerating the table, fails here.
func TestGoalTableCommitted(t *testing.T) {
	if err := UpdateGoalTable(filepath.Join("..", "docs", "benchmarks.md"), filepath.Join("..", "docs", "bench"), true); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, name, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestGoalTableFromSpecs(t *testing.T) {
	dir := t.TempDir()
	raw := filepath.Join(dir, "raw")
	writeFile(t, filepath.Join(raw, "d", "r.jsonl"), `{"case":"a","result":{"x":3}}
{"case":"a","result":{"x":5}}
{"case":"b","result":{"x":100}}
`)
	writeFile(t, filepath.Join(raw, "d", "b.txt"), "goos: linux\nBenchmarkF/c-2  	 100	  120.5 ns/op\nBenchmarkF/c-2  	 100	  1500 ns/op\nBenchmarkF/go-2 	 100	  30 ns/op\nok\n")
	writeFile(t, filepath.Join(raw, "d", "x.goals.json"), `{"version": 1, "rows": [
	{"issue": 9, "goal": "ratio small", "raw": "r.jsonl", "format": "jsonl",
	 "select": {"where": {"case": "a"}, "field": "result.x", "agg": "max"},
	 "vs": {"where": {"case": "b"}, "field": "result.x"}, "op": "<=", "limit": 0.1, "command": "make x"},
	{"issue": 7, "goal": "calls fast", "raw": "b.txt", "format": "gobench",
	 "select": {"where": {"name": "BenchmarkF/c-*"}, "field": "ns/op", "agg": "median"}, "op": "<", "limit": 1000, "every": true, "command": "go test -bench F", "commit": "abc"},
	{"issue": 7, "goal": "not yet", "not_measured": "no raw result"}
	]}`)
	rows, err := GoalTable(raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 {
		t.Fatalf("%d rows, want 3: %+v", len(rows), rows)
	}
	// Sorted by issue, stably: the two issue-7 rows first.
	if rows[0].Goal != "calls fast" || rows[0].Verdict != VerdictInconclusive {
		t.Errorf("row 1 = %+v; want calls fast, inconclusive (one of two results above the limit)", rows[0])
	}
	if rows[1].Verdict != VerdictNotMeasured || rows[1].Raw != "" {
		t.Errorf("row 2 = %+v; want not measured, no raw", rows[1])
	}
	if rows[2].Verdict != VerdictMet || rows[2].Raw != "d/r.jsonl" || !strings.Contains(rows[2].Measured, "0.05") {
		t.Errorf("row 3 = %+v; want met (max 5 against 100: 0.05 <= 0.1)", rows[2])
	}
}

func TestGoalTableBadSpecs(t *testing.T) {
	for name, spec := range map[string]string{
		"unknown field": `{"version": 1, "rows": [{"issue": 1, "goal": "g", "typo": 1}]}`,
		"version":       `{"version": 2, "rows": []}`,
		"no command":    `{"version": 1, "rows": [{"issue": 1, "goal": "g", "raw": "r.jsonl", "format": "jsonl", "select": {"field": "x"}, "op": "<", "limit": 1}]}`,
		"bad op":        `{"version": 1, "rows": [{"issue": 1, "goal": "g", "raw": "r.jsonl", "format": "jsonl", "select": {"field": "x"}, "op": "=", "limit": 1, "command": "c"}]}`,
		"no record":     `{"version": 1, "rows": [{"issue": 1, "goal": "g", "raw": "r.jsonl", "format": "jsonl", "select": {"field": "nope"}, "op": "<", "limit": 1, "command": "c"}]}`,
		"outside":       `{"version": 1, "rows": [{"issue": 1, "goal": "g", "raw": "../../r.jsonl", "format": "jsonl", "select": {"field": "x"}, "op": "<", "limit": 1, "command": "c"}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, "r.jsonl"), `{"x": 1}`+"\n")
			writeFile(t, filepath.Join(dir, "s.goals.json"), spec)
			if _, err := GoalTable(dir); !errors.Is(err, ErrGoalSpec) {
				t.Fatalf("GoalTable = %v, want an ErrGoalSpec", err)
			}
		})
	}
}

// A table edited by hand, or stale, fails the check; writing it makes the
// check pass.
func TestUpdateGoalTableCheck(t *testing.T) {
	dir := t.TempDir()
	raw := filepath.Join(dir, "bench")
	writeFile(t, filepath.Join(raw, "s.goals.json"), `{"version": 1, "rows": [{"issue": 1, "goal": "g", "not_measured": "nothing yet"}]}`)
	doc := filepath.Join(dir, "doc.md")
	writeFile(t, doc, "# B\n\n"+goalsBegin+"\n| typed | row |\n"+goalsEnd+"\n\nafter\n")
	if err := UpdateGoalTable(doc, raw, true); !errors.Is(err, ErrGoalTableStale) {
		t.Fatalf("check of a typed table = %v, want ErrGoalTableStale", err)
	}
	if err := UpdateGoalTable(doc, raw, false); err != nil {
		t.Fatal(err)
	}
	if err := UpdateGoalTable(doc, raw, true); err != nil {
		t.Fatalf("check after writing: %v", err)
	}
	b, _ := os.ReadFile(doc)
	if !strings.HasPrefix(string(b), "# B\n\n") || !strings.HasSuffix(string(b), "\nafter\n") || !strings.Contains(string(b), "| 1 | g | not measured — nothing yet | — | — | — |") {
		t.Fatalf("document after writing:\n%s", b)
	}
	writeFile(t, doc, "no markers\n")
	if err := UpdateGoalTable(doc, raw, true); err == nil {
		t.Fatal("a document without markers passed the check")
	}
}

func TestVerdictFromInterval(t *testing.T) {
	for _, c := range []struct {
		lo, hi float64
		want   string
	}{{0.1, 1.9, VerdictMet}, {2.1, 3, VerdictNotMet}, {1, 3, VerdictInconclusive}} {
		if got := verdict(&Interval{Low: c.lo, High: c.hi}, 2, true); got != c.want {
			t.Errorf("verdict([%g, %g] <= 2) = %s, want %s", c.lo, c.hi, got, c.want)
		}
	}
	if verdict(nil, 2, true) != VerdictNotMeasured {
		t.Error("no interval must be not measured")
	}
	ci := bootstrapCI([]float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 0.95, 7)
	if ci.Mean != 5.5 || !(ci.Low < 5.5 && ci.High > 5.5 && ci.Low > 1 && ci.High < 10) {
		t.Fatalf("bootstrapCI = %+v", ci)
	}
	if again := bootstrapCI([]float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 0.95, 7); *again != *ci {
		t.Fatal("the same seed gave another interval")
	}
	if bootstrapCI([]float64{1}, 0.95, 1) != nil {
		t.Fatal("one sample has no interval")
	}
}

// TestSelectionMissing: a selected record without the field is skipped,
// or counted as Missing when that is set.
func TestSelectionMissing(t *testing.T) {
	recs := []map[string]any{
		{"case": "kill", "bytes": map[string]any{"local": 5.0}},
		{"case": "kill", "bytes": map[string]any{"local": 7.0, "shared": 3.0}},
		{"case": "other", "bytes": map[string]any{"shared": 9.0}},
	}
	s := Selection{Where: map[string]any{"case": "kill"}, Field: "bytes.shared"}
	if got, err := s.values(recs); err != nil || len(got) != 1 || got[0] != 3 {
		t.Fatalf("without missing: %v, %v; want [3]", got, err)
	}
	zero := 0.0
	s.Missing = &zero
	if got, err := s.values(recs); err != nil || len(got) != 2 || got[0] != 0 || got[1] != 3 {
		t.Fatalf("missing 0: %v, %v; want [0 3]", got, err)
	}
	s.Where = map[string]any{"case": "none"}
	if _, err := s.values(recs); err == nil {
		t.Fatal("no selected record: want an error, also with missing set")
	}
}
