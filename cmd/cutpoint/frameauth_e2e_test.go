package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestRunFrameAuthOff: --frame-auth off runs the job to the digest it has
// with tags, says so loudly in the launcher's and every rank's log, and
// records it with every cut; a value other than on or off is refused.
func TestRunFrameAuthOff(t *testing.T) {
	want := reference(t)
	store := filepath.Join(t.TempDir(), "store")
	r := runOK(t, nil, append([]string{"run", "--store", store, "--interval", "0", "--every-steps", "50", "--frame-auth", "off"}, job...)...)
	if got := r.digest(t); got != want {
		t.Fatalf("digest with frame tags off %s, with them %s", got, want)
	}
	if !strings.Contains(r.stderr, "frame tags are off (--frame-auth off)") {
		t.Errorf("the launcher did not warn:\n%s", tail(r.stderr, 40))
	}
	if n := strings.Count(r.stderr, "frame tags are off (CUTPOINT_FRAME_AUTH=off)"); n < 4 {
		t.Errorf("%d rank warnings, want one per rank (4):\n%s", n, tail(r.stderr, 40))
	}
	cuts := committed(t, store, "heat2d")
	if len(cuts) == 0 {
		t.Fatal("no cut committed")
	}
	for _, c := range cuts {
		if c.Meta["frame_auth"] != "off" {
			t.Errorf("cut %d records frame_auth=%q", c.Epoch, c.Meta["frame_auth"])
		}
	}
	bad := runCmd(t, cutpoint(t, nil, append([]string{"run", "--store", filepath.Join(t.TempDir(), "s2"), "--frame-auth", "maybe"}, job...)...))
	if bad.code == 0 || !strings.Contains(bad.stderr, "--frame-auth") {
		t.Errorf("--frame-auth maybe: exit %d\n%s", bad.code, tail(bad.stderr, 20))
	}
}
