package exitcode

import "testing"

// TestNumbersAreStable: the codes are a user interface (README, scripts,
// batch systems); a change here must be deliberate and documented.
func TestNumbersAreStable(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want int
	}{
		{"OK", OK, 0}, {"Failure", Failure, 1}, {"Usage", Usage, 2}, {"Damaged", Damaged, 3},
		{"NotBuilt", NotBuilt, 4}, {"StoppedWithCut", StoppedWithCut, 5}, {"StoppedNoCut", StoppedNoCut, 6},
		{"Deterministic", Deterministic, 7}, {"Unprotected", Unprotected, 8}, {"Transient", Transient, 75},
		{"SpawnFailed", SpawnFailed, 127},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, documented as %d", c.name, c.got, c.want)
		}
	}
}
