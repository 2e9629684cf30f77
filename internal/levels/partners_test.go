package levels

import (
	"slices"
	"testing"
	"time"
)

func TestPartnerOrder(t *testing.T) {
	for _, c := range []struct {
		hosts string
		world int
		host  string
		want  []string
	}{
		// Ranks on a and b, spares c and d: the ring first, then the spares
		// after the writer's host.
		{"a:2,b:2,c:2,d:2", 4, "a", []string{"b", "c", "d"}},
		{"a:2,b:2,c:2,d:2", 4, "b", []string{"a", "c", "d"}},
		// A spare's first choice is the first ring host after it.
		{"a:2,b:2,c:2,d:2", 4, "c", []string{"a", "b", "d"}},
		{"a:2,b:2,c:2,d:2", 4, "d", []string{"a", "b", "c"}},
		// Ranks everywhere: cyclically after the writer.
		{"a:1,b:1,c:1,d:1", 4, "c", []string{"d", "a", "b"}},
		{"a:1,b:1,c:1,d:1", 4, "b", []string{"c", "d", "a"}},
		// All ranks on one host: the spare, nothing else.
		{"a:4,b:4", 4, "a", []string{"b"}},
	} {
		cfg := Config{Local: "/l/{host}", Redundancy: RedundancyPartner, Hosts: c.hosts, World: c.world}
		got, err := cfg.PartnerOrder(c.host)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("%s world %d: PartnerOrder(%s) = %v, %v; want %v", c.hosts, c.world, c.host, got, err, c.want)
		}
		if first, _ := cfg.PartnerOf(c.host); len(got) == 0 || got[0] != first {
			t.Errorf("%s: PartnerOrder(%s) = %v does not start with PartnerOf %s", c.hosts, c.host, got, first)
		}
		// A restore looks where the copies may have gone, in that order.
		if ro := cfg.ReadOrder(c.host); !slices.Equal(ro, append([]string{c.host}, c.want...)) {
			t.Errorf("%s: ReadOrder(%s) = %v", c.hosts, c.host, ro)
		}
	}
	if _, err := (Config{Hosts: "a:1,b:1", World: 2}).PartnerOrder("z"); err == nil {
		t.Error("a host outside the list got partners")
	}
}

// TestPartners: a failed copy moves the partner to the next host that
// takes one and keeps it there; the first choice is tried again only after
// its backoff, which doubles while it keeps failing and ends once it takes
// a copy again.
func TestPartners(t *testing.T) {
	cfg := Config{Local: "/l/{host}", Redundancy: RedundancyPartner, Hosts: "a:1,b:1,c:1,d:1", World: 4}
	p, err := cfg.NewPartners("a")
	if err != nil {
		t.Fatal(err)
	}
	p.Retry, p.RetryMax = 10*time.Second, 35*time.Second
	t0 := time.Unix(1000, 0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	want := func(now time.Time, hosts ...string) {
		t.Helper()
		if got := p.Candidates(now); !slices.Equal(got, hosts) {
			t.Fatalf("candidates at %v: %v, want %v", now.Sub(t0), got, hosts)
		}
	}
	copied := func(host, from string, changed bool) {
		t.Helper()
		f, ch, err := p.Copied(host)
		if err != nil || f != from || ch != changed {
			t.Fatalf("Copied(%s) = %q, %v, %v; want %q, %v", host, f, ch, err, from, changed)
		}
	}
	want(t0, "b", "c", "d")
	copied("b", "", false)

	// b goes down: c takes the copy and keeps the next ones.
	p.Failed("b", at(0))
	copied("c", "b", true)
	if p.Current() != "c" || p.First() != "b" {
		t.Fatalf("current %s, first %s", p.Current(), p.First())
	}
	want(at(5*time.Second), "c", "d", "b")
	copied("c", "", false)

	// After the backoff b is tried first again; still down: c again, no
	// change, and the backoff doubles (10 s, 20 s, then capped at 35 s).
	want(at(10*time.Second), "b", "c", "d")
	p.Failed("b", at(10*time.Second))
	copied("c", "", false)
	want(at(29*time.Second), "c", "d", "b")
	want(at(30*time.Second), "b", "c", "d")
	p.Failed("b", at(30*time.Second))
	want(at(64*time.Second), "c", "d", "b")
	want(at(65*time.Second), "b", "c", "d")
	p.Failed("b", at(65*time.Second))
	want(at(99*time.Second), "c", "d", "b")
	want(at(100*time.Second), "b", "c", "d")

	// c fails too within the backoff: d; a failure of a host other than the
	// first choice starts no backoff of its own.
	p.Failed("b", at(100*time.Second))
	p.Failed("c", at(101*time.Second))
	copied("d", "c", true)
	want(at(102*time.Second), "d", "b", "c")

	// b is back: it takes the copy at its next try, the backoff ends.
	want(at(135*time.Second), "b", "c", "d")
	copied("b", "d", true)
	want(at(136*time.Second), "b", "c", "d")
	p.Failed("b", at(200*time.Second))
	if p.backoff != p.Retry {
		t.Fatalf("backoff after a new failure %v, want %v (restarted)", p.backoff, p.Retry)
	}
	if _, _, err := p.Copied("a"); err == nil {
		t.Fatal("the writer's own host taken as partner")
	}
}
