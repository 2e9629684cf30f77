package heat2d

import (
	"errors"
	"fmt"
	"testing"

	"github.com/cutpoint/cutpoint/rank"
)

// TestRolledBackMatchesRank: the loop recognises rank's sentinel, wrapped
// or not, without this package importing rank, and nothing else.
func TestRolledBackMatchesRank(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{rank.ErrRolledBack, true},
		{fmt.Errorf("recv from 3: %w", rank.ErrRolledBack), true},
		{rank.ErrStopped, false},
		{errors.New("rank: rolled back to a committed cut; call SafePoint"), false},
		{nil, false},
	} {
		if got := rolledBack(c.err); got != c.want {
			t.Errorf("rolledBack(%v) = %v, want %v", c.err, got, c.want)
		}
	}
	if !errors.Is(fmt.Errorf("x: %w", rank.ErrRolledBack), rank.ErrRolledBack) {
		t.Error("errors.Is no longer matches rank.ErrRolledBack")
	}
}
