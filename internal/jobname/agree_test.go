package jobname_test

import (
	"strings"
	"testing"

	"github.com/cutpoint/cutpoint/ckpt"
	"github.com/cutpoint/cutpoint/internal/jobname"
	"github.com/cutpoint/cutpoint/internal/wire"
)

// TestLayersAgree: the store and the protocol accept exactly the names the
// rule accepts (wire used to accept a leading '.' or '-' that the store
// refused, so a job record could name a job no store could hold).
func TestLayersAgree(t *testing.T) {
	for _, name := range []string{"heat2d", "a.b", "x-", ".x", "-x", ".", "..", "", "a/b", strings.Repeat("j", 64), strings.Repeat("j", 65)} {
		want := jobname.Check(name) == nil
		if got := ckpt.ValidJobName(name) == nil; got != want {
			t.Errorf("ckpt.ValidJobName(%q) ok=%v, rule says %v", name, got, want)
		}
		if got := wire.ValidJobName(name); got != want {
			t.Errorf("wire.ValidJobName(%q) = %v, rule says %v", name, got, want)
		}
	}
	for _, bad := range []string{".x", "-x"} {
		if wire.ValidJobName(bad) {
			t.Errorf("wire accepts %q; the strict rule refuses a leading . or -", bad)
		}
	}
}
