package levels

import (
	"slices"
	"testing"
	"time"
)

func TestErasureOrder(t *testing.T) {
	for _, c := range []struct {
		hosts string
		world int
		host  string
		want  []string
	}{
		// Ranks everywhere: cyclically after the writer.
		{"a:1,b:1,c:1,d:1", 4, "c", []string{"d", "a", "b"}},
		// Spares after the hosts with ranks, cyclically after the writer.
		{"a:1,b:1,c:1,d:1,e:1,f:1", 4, "b", []string{"c", "d", "a", "e", "f"}},
		{"a:1,b:1,c:1,d:1,e:1,f:1", 4, "d", []string{"a", "b", "c", "e", "f"}},
		// A spare writer (a rank moved there): the hosts with ranks first.
		{"a:1,b:1,c:1,d:1,e:1,f:1", 4, "e", []string{"a", "b", "c", "d", "f"}},
	} {
		cfg := Config{Local: "/l/{host}", Redundancy: "rs:2+1", Hosts: c.hosts, World: c.world}
		got, err := cfg.ErasureOrder(c.host)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("%s world %d: ErasureOrder(%s) = %v, %v; want %v", c.hosts, c.world, c.host, got, err, c.want)
		}
		first, err := cfg.ErasureHosts(c.host)
		if err != nil || !slices.Equal(first, c.want[:3]) {
			t.Errorf("%s: ErasureHosts(%s) = %v, %v; want the first 3 of %v", c.hosts, c.host, first, err, c.want)
		}
	}
	if _, err := (Config{Redundancy: "rs:2+1", Hosts: "a:1,b:1,c:1,d:1", World: 4}).ErasureOrder("z"); err == nil {
		t.Error("a host outside the list got an order")
	}
}

// distinct fails unless hosts are distinct and none is the writer's.
func distinct(t *testing.T, writer string, hosts ...[]string) {
	t.Helper()
	var all []string
	for _, l := range hosts {
		all = append(all, l...)
	}
	for i, h := range all {
		if h == writer || slices.Contains(all[:i], h) {
			t.Fatalf("hosts %v: %s repeated or the writer's", hosts, h)
		}
	}
}

// TestFragments: rs:2+1, writer a, first choices b c d, spares e f. A slot
// whose host fails takes the first spare that is not failing and keeps
// it; a second failure takes the next; a first choice comes back to its
// slot only after its backoff, which doubles while it keeps failing; a
// placement is never on the writer's host or twice on one host.
func TestFragments(t *testing.T) {
	cfg := Config{Local: "/l/{host}", Redundancy: "rs:2+1", Hosts: "a:1,b:1,c:1,d:1,e:1,f:1", World: 4}
	f, err := cfg.NewFragments("a")
	if err != nil {
		t.Fatal(err)
	}
	f.Retry, f.RetryMax = 10*time.Second, 35*time.Second
	t0 := time.Unix(1000, 0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	plan := func(now time.Time, wantSlots, wantSpares []string) []string {
		t.Helper()
		slots, spares := f.Plan(now)
		distinct(t, "a", slots, spares)
		if !slices.Equal(slots, wantSlots) || !slices.Equal(spares, wantSpares) {
			t.Fatalf("Plan at +%v = %v spares %v; want %v spares %v", now.Sub(t0), slots, spares, wantSlots, wantSpares)
		}
		return slots
	}
	placed := func(hosts []string, want ...Move) {
		t.Helper()
		moves, err := f.Placed(hosts)
		if err != nil || !slices.Equal(moves, want) {
			t.Fatalf("Placed(%v) = %v, %v; want %v", hosts, moves, err, want)
		}
		if !slices.Equal(f.Current(), hosts) {
			t.Fatalf("Current %v after Placed(%v)", f.Current(), hosts)
		}
	}
	if got := f.First(); !slices.Equal(got, []string{"b", "c", "d"}) {
		t.Fatalf("First %v", got)
	}
	slots := plan(t0, []string{"b", "c", "d"}, []string{"e", "f"})
	placed(slots)

	// b fails: the caller gives its slot e, the first spare; e keeps it.
	f.Failed("b", at(time.Second))
	slots[0] = "e"
	placed(slots, Move{Slot: 0, From: "b", To: "e"})
	plan(at(2*time.Second), []string{"e", "c", "d"}, []string{"f", "b"})

	// c fails too, and the placement fails (the shard went to the shared
	// store, no Placed): the next plan gives c's slot to f, the next
	// spare, rather than try c first again; b, failing, is the last
	// resort.
	f.Failed("c", at(3*time.Second))
	slots = plan(at(3*time.Second), []string{"e", "f", "d"}, []string{"b", "c"})
	placed(slots, Move{Slot: 1, From: "c", To: "f"})
	plan(at(4*time.Second), []string{"e", "f", "d"}, []string{"b", "c"})

	// b's backoff runs out (10 s after its failure): slot 0 tries it
	// first again; it fails again, and e keeps the slot (no move).
	slots = plan(at(11*time.Second), []string{"b", "f", "d"}, []string{"e", "c"})
	f.Failed("b", at(11*time.Second))
	slots[0] = "e"
	placed(slots)
	// b's backoff is 20 s now (doubled): at +30 s it is still failing,
	// while c's ran out at +13 s: slot 1 gets c back, f is a spare again.
	slots = plan(at(30*time.Second), []string{"e", "c", "d"}, []string{"f", "b"})
	placed(slots, Move{Slot: 1, From: "f", To: "c"})
	slots = plan(at(31*time.Second), []string{"b", "c", "d"}, []string{"e", "f"})
	placed(slots, Move{Slot: 0, From: "e", To: "b"})

	// The backoff doubles up to RetryMax and ends with a placement.
	for i, want := range []time.Duration{10, 20, 35, 35} {
		f.Failed("d", at(100*time.Second))
		if got := f.backoff["d"].wait; got != want*time.Second {
			t.Fatalf("failure %d of d: backoff %v, want %v", i+1, got, want*time.Second)
		}
	}
	slots = plan(at(100*time.Second), []string{"b", "c", "e"}, []string{"f", "d"})
	placed(slots, Move{Slot: 2, From: "d", To: "e"})
	plan(at(134*time.Second), []string{"b", "c", "e"}, []string{"f", "d"})
	slots = plan(at(135*time.Second), []string{"b", "c", "d"}, []string{"e", "f"})
	placed(slots, Move{Slot: 2, From: "e", To: "d"})
	if _, ok := f.backoff["d"]; ok {
		t.Fatal("d's backoff survived a placement on d")
	}

	// What Placed refuses: a host twice, the writer's, a host outside the
	// list, the wrong count. The slots stay as they were.
	for _, bad := range [][]string{{"b", "b", "d"}, {"a", "c", "d"}, {"z", "c", "d"}, {"b", "c"}} {
		if _, err := f.Placed(bad); err == nil {
			t.Errorf("Placed(%v) accepted", bad)
		}
	}
	if !slices.Equal(f.Current(), []string{"b", "c", "d"}) {
		t.Fatalf("Current %v after refused placements", f.Current())
	}
	// A host outside the list failing changes nothing.
	f.Failed("z", at(200*time.Second))
	plan(at(200*time.Second), []string{"b", "c", "d"}, []string{"e", "f"})
}

// TestFragmentsTooFew: with fewer live hosts than K+M the spares run out
// (the caller then sends the shard to the shared store); a placement on
// the hosts that remain is never one host twice.
func TestFragmentsTooFew(t *testing.T) {
	cfg := Config{Local: "/l/{host}", Redundancy: "rs:2+1", Hosts: "a:1,b:1,c:1,d:1", World: 4}
	f, err := cfg.NewFragments("a")
	if err != nil {
		t.Fatal(err)
	}
	slots, spares := f.Plan(time.Unix(0, 0))
	if !slices.Equal(slots, []string{"b", "c", "d"}) || len(spares) != 0 {
		t.Fatalf("Plan = %v spares %v; want b c d and no spare", slots, spares)
	}
	f.Failed("b", time.Unix(1, 0))
	slots, spares = f.Plan(time.Unix(2, 0))
	if !slices.Equal(slots, []string{"b", "c", "d"}) || len(spares) != 0 {
		t.Fatalf("Plan = %v spares %v after b failed; want b c d (its first choice, nothing to replace it)", slots, spares)
	}
}
