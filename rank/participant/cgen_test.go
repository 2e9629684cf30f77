package participant

import (
	"errors"
	"testing"

	"github.com/cutpoint/cutpoint/internal/wire"
)

// TestForgedGenerationJumpRefused: one control message whose coordinator
// generation jumps far ahead (a forged heartbeat with 2^62) is refused and
// counted; the real coordinator's messages still apply after it, and a
// successor coordinator (the next generations) is followed.
func TestForgedGenerationJumpRefused(t *testing.T) {
	p := started(t, cfg(0, 1))
	err := p.HandleControl(ctl(&wire.Abort{CoordHeader: wire.CoordHeader{CGen: 1 << 62, G: 1}, Epoch: 5}))
	if !errors.Is(err, wire.ErrMalformed) || p.Stats().CGenRefused != 1 {
		t.Fatalf("forged generation 2^62: err %v, refused %d", err, p.Stats().CGenRefused)
	}
	if err := p.HandleControl(ctl(&wire.Cut{CoordHeader: wire.CoordHeader{CGen: 1, G: 1}, Epoch: 5, Step: 4})); err != nil {
		t.Fatal(err)
	}
	discard(p)
	if act, _ := p.SafePoint(4, 0); !act.Capture || act.Epoch != 5 {
		t.Fatalf("the real coordinator's cut was not taken after a forged generation: %+v", act)
	}
	// A successor coordinator a few generations on is followed, and then
	// the old one is stale.
	if err := p.HandleControl(ctl(&wire.Abort{CoordHeader: wire.CoordHeader{CGen: 1 + MaxCGenJump, G: 1}, Epoch: 9})); err != nil {
		t.Fatalf("successor coordinator refused: %v", err)
	}
	if p.Stats().CGenRefused != 1 {
		t.Fatalf("successor counted as refused: %+v", p.Stats())
	}
}
