package rank

import (
	"errors"
	"testing"

	"github.com/cutpoint/cutpoint/rank/participant"
)

// TestExitErrorKind: the participant's exit kind, not its reason text,
// decides between ErrFenced and ErrStopped.
func TestExitErrorKind(t *testing.T) {
	for _, c := range []struct {
		x      participant.Exit
		fenced bool
	}{
		{participant.Exit{Kind: participant.ExitFenced, Code: 1, Reason: "fenced: spawn 3 replaced"}, true},
		{participant.Exit{Kind: participant.ExitStopped, Code: 1, Reason: "fenced: a stop whose reason looks like a fence"}, false},
		{participant.Exit{Kind: participant.ExitStopped, Code: 0, Reason: "finished"}, false},
	} {
		err := error(exitError(&c.x))
		if errors.Is(err, ErrFenced) != c.fenced || errors.Is(err, ErrStopped) == c.fenced {
			t.Errorf("%+v: errors.Is(ErrFenced)=%v, want %v (%v)", c.x, errors.Is(err, ErrFenced), c.fenced, err)
		}
		var ee *ExitError
		if !errors.As(err, &ee) || ee.Code != c.x.Code || ee.Reason != c.x.Reason {
			t.Errorf("%+v: ExitError %+v", c.x, ee)
		}
	}
}
