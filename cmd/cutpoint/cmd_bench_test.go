package main

import (
	"strings"
	"testing"
)

// Bad bench options are usage errors (exit 2) that name the option, and
// nothing is measured.
func TestBenchBadOptions(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--families", "disk"}, "--families"},
		{[]string{"--devices", "gpu"}, "--devices"},
		{[]string{"--job-intervals", "0s"}, "--job-intervals"},
		{[]string{"--job-intervals", "-1s"}, "--job-intervals"},
		{[]string{"--job-window", "-5s"}, "--job-window"},
		{[]string{"--job-state", "12XB"}, "--job-state"},
		{[]string{"--reps", "-1"}, "--reps"},
	} {
		out := t.TempDir()
		_, stderr, code := runCLI(t, append([]string{"bench", "--out", out}, c.args...)...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("bench %v: exit %d, stderr %q; want exit 2 naming %s", c.args, code, stderr, c.want)
		}
	}
}
