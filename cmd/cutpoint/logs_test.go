package main

import (
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// logJob is a short job in which rank 1 is SIGKILLed after a cut, so the
// ranks log at INFO (rolled back, restored) as well as the coordinator.
var logJob = []string{"--ranks", "2", "--size", "32", "--steps", "20000", "--heartbeat-interval", "100ms",
	"--interval", "0", "--every-steps", "2000", "--kill", "1@9000", "--progress", "never"}

// TestLogFormatJSONReachesRanks: under --log-format json every stderr line
// of the launcher, the coordinator and the rank processes is one JSON
// object, the ranks' lines carry a rank field.
func TestLogFormatJSONReachesRanks(t *testing.T) {
	store := filepath.Join(t.TempDir(), "store")
	r := runOK(t, nil, append([]string{"run", "--store", store, "--log-format", "json"}, logJob...)...)
	r.digest(t)
	fromRanks := 0
	for i, line := range strings.Split(strings.TrimRight(r.stderr, "\n"), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("stderr line %d is not JSON (%v): %q\n%s", i+1, err, line, tail(r.stderr, 30))
		}
		if m["msg"] == "restored" {
			if _, ok := m["rank"]; !ok {
				t.Fatalf("a rank's line without a rank field: %q", line)
			}
			fromRanks++
		}
	}
	if fromRanks == 0 {
		t.Fatalf("no \"restored\" line from a rank process: their logs did not reach the stream\n%s", tail(r.stderr, 30))
	}
}

// TestLogLevelErrorReachesRanks: under --log-level error no INFO (or WARN)
// line comes out, from the launcher or from a rank.
func TestLogLevelErrorReachesRanks(t *testing.T) {
	store := filepath.Join(t.TempDir(), "store")
	r := runOK(t, nil, append([]string{"run", "--store", store, "--log-level", "error"}, logJob...)...)
	r.digest(t)
	for _, line := range strings.Split(r.stderr, "\n") {
		if strings.Contains(line, "level=INFO") || strings.Contains(line, "level=WARN") || strings.Contains(line, "msg=restored") {
			t.Fatalf("a line below the error level under --log-level error: %q\n%s", line, tail(r.stderr, 30))
		}
	}
	// The same job at the default level does log the ranks' restores:
	// the check above can fail.
	r = runOK(t, nil, append([]string{"run", "--store", filepath.Join(t.TempDir(), "s2")}, logJob...)...)
	if !strings.Contains(r.stderr, "msg=restored") || !strings.Contains(r.stderr, "rank=1") {
		t.Fatalf("at info the ranks' restores are not logged:\n%s", tail(r.stderr, 30))
	}
	// recovery-finished says how long the recovery took.
	if !regexp.MustCompile(`recovery-finished[^\n]* took=[0-9]`).MatchString(r.stderr) {
		t.Fatalf("no recovery-finished line with its duration:\n%s", tail(r.stderr, 30))
	}
}
