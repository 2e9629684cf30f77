package launch

import (
	"errors"
	"strings"
	"testing"
)

func TestParseHosts(t *testing.T) {
	h, err := ParseHosts("a:2, b:3,c")
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 3 || h[0] != (Host{"a", 2}) || h[1] != (Host{"b", 3}) || h[2] != (Host{"c", 1}) {
		t.Fatalf("parsed %+v", h)
	}
	for _, bad := range []string{"", "a:0", "a:x", "a:2,a:1", "a b:2", "-oProxyCommand=x:1", "a;rm:1", ":3"} {
		if _, err := ParseHosts(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestBlockPlacementAndSpares(t *testing.T) {
	p, err := NewPlacement([]Host{{"a", 2}, {"b", 2}, {"c", 2}}, 4)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"a", "a", "b", "b"}
	for r, w := range want {
		if got := p.HostOf(r); got != w {
			t.Errorf("rank %d on %s, want %s", r, got, w)
		}
		host, err := p.Place(r)
		if err != nil || host != w {
			t.Errorf("Place(%d) = %s, %v", r, host, err)
		}
		p.Started(r, 1, host)
	}
	if !strings.Contains(p.Summary(), "c 0/2 slots used") {
		t.Errorf("summary %q", p.Summary())
	}
	if _, err := NewPlacement([]Host{{"a", 2}}, 3); err == nil {
		t.Error("3 ranks on 2 slots: no error")
	}
}

func TestLostRankStaysWhileHostUp(t *testing.T) {
	p, _ := NewPlacement([]Host{{"a", 2}, {"b", 2}}, 4)
	for r := range 4 {
		p.Started(r, 1, p.HostOf(r))
	}
	// One of b's two ranks lost: b is up, the rank goes back to its slot.
	if host, down := p.Ended(2, 1, true); host != "b" || down {
		t.Fatalf("Ended = %s, %v", host, down)
	}
	if host, err := p.Place(2); err != nil || host != "b" {
		t.Fatalf("Place = %s, %v", host, err)
	}
	p.Started(2, 2, "b")
	// A stale exit (spawn 1 again) changes nothing.
	if host, _ := p.Ended(2, 1, true); host != "" {
		t.Fatalf("stale exit counted on %s", host)
	}
	// Killed by the launcher (not lost), last on the host: b stays up.
	p.Ended(2, 2, false)
	if _, down := p.Ended(3, 1, false); down {
		t.Fatal("host down after kills by the launcher")
	}
	if d, _ := p.Down("b"); d {
		t.Fatal("b down")
	}
}

// A rank that dies after the other rank of its host left with exit 0
// (killed during its final flush) does not take the host down: its
// replacement (a flush-only process) starts there.
func TestLossAfterALeaveKeepsHostUp(t *testing.T) {
	p, _ := NewPlacement([]Host{{"a", 2}, {"b", 2}}, 4)
	for r := range 4 {
		p.Started(r, 1, p.HostOf(r))
	}
	if host := p.Left(0, 1); host != "a" {
		t.Fatalf("Left = %q", host)
	}
	if host, down := p.Ended(1, 1, true); host != "a" || down {
		t.Fatalf("Ended after a leave = %s, %v: want a, up", host, down)
	}
	if host, err := p.Place(1); err != nil || host != "a" {
		t.Fatalf("Place = %s, %v", host, err)
	}
	// Without the leave, the same losses take b down.
	p.Ended(2, 1, true)
	if _, down := p.Ended(3, 1, true); !down {
		t.Fatal("b up after every rank on it was lost")
	}
}

func TestHostDownMovesRanksToSpares(t *testing.T) {
	p, _ := NewPlacement([]Host{{"a", 2}, {"b", 2}, {"c", 2}}, 4)
	for r := range 4 {
		p.Started(r, 1, p.HostOf(r))
	}
	p.Ended(2, 1, true)
	if _, down := p.Ended(3, 1, true); !down {
		t.Fatal("b not down after all its ranks were lost")
	}
	for _, r := range []int{3, 2} {
		host, err := p.Place(r)
		if err != nil || host != "c" {
			t.Fatalf("Place(%d) = %s, %v; want c", r, host, err)
		}
		p.Started(r, 2, host)
	}
	// c full now, a full, b down: no slot for another lost rank of c.
	p.Ended(3, 2, true)
	if host, _ := p.Place(3); host != "c" {
		t.Fatalf("c is up (rank 2 runs there): rank 3 goes back to c, got %s", host)
	}
	p.Started(3, 3, "c")
	p.Ended(2, 2, true)
	if _, down := p.Ended(3, 3, true); !down {
		t.Fatal("c not down")
	}
	_, err := p.Place(2)
	if !errors.Is(err, ErrNoSlot) {
		t.Fatalf("want ErrNoSlot, got %v", err)
	}
	for _, w := range []string{"rank 2", "a 2/2 slots used", "b down (all its ranks were lost)", "c down"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
}

func TestStartFailedMarksDown(t *testing.T) {
	p, _ := NewPlacement([]Host{{"a", 1}, {"b", 1}, {"c", 1}}, 2)
	p.StartFailed("b", "ssh: connect to host b: No route to host")
	if d, why := p.Down("b"); !d || !strings.Contains(why, "No route") {
		t.Fatalf("b: down %v (%s)", d, why)
	}
	if host, err := p.Place(1); err != nil || host != "c" {
		t.Fatalf("rank 1 of a down host: Place = %s, %v; want the spare on c", host, err)
	}
	if host, _ := p.Place(0); host != "a" {
		t.Fatalf("rank 0 moved to %s", host)
	}
}
