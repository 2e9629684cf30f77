package sim

import (
	"os"
	"runtime/debug"
	"testing"
)

// TestMain lets the heap grow to five times the live data between
// collections (unless GOGC says otherwise): a run allocates mostly
// short-lived frames and events and keeps little, and with the default
// the collector takes about a fifth of the package's CPU time.
func TestMain(m *testing.M) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	os.Exit(m.Run())
}
