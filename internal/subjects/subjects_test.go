package subjects

import (
	"strings"
	"testing"
)

func TestSpaceAndID(t *testing.T) {
	id := NewID()
	if err := CheckID(id); err != nil {
		t.Fatalf("NewID %q: %v", id, err)
	}
	if NewID() == id {
		t.Fatal("two ids alike")
	}
	for _, bad := range []string{"", "0123456789abcde", "0123456789ABCDEF", "0123456789abcdeg", "0123456789abcdef0", "*.>"} {
		if CheckID(bad) == nil {
			t.Errorf("CheckID(%q) accepted", bad)
		}
	}
	if got := Space("a.b", id); got != "a~b."+id {
		t.Fatalf("Space = %q", got)
	}
	if Space("a.b", "") != "a~b" {
		t.Fatal("Space without id")
	}
	// Two jobs of one name never share a subject.
	if a, b := ToAll(Space("heat2d", NewID())), ToAll(Space("heat2d", NewID())); a == b {
		t.Fatal("two runs of heat2d share a subject")
	}
	s := Space("j", id)
	if RankOf(ToCoordinator(s, 17)) != 17 || RankOf(ToCoordinatorAll(s)) != -1 || RankOf("x") != -1 {
		t.Fatal("RankOf")
	}
}

func TestPermissionsStayInTheSpace(t *testing.T) {
	s := Space("j", NewID())
	check := func(who string, p Permissions) {
		for _, subj := range append(append([]string{}, p.Publish...), p.Subscribe...) {
			if !strings.HasPrefix(subj, "cp."+s+".") && !strings.HasPrefix(subj, Inbox(s)+".") {
				t.Errorf("%s may use %q, outside the job's space", who, subj)
			}
		}
	}
	check("coordinator", CoordinatorPermissions(s))
	check("world", WorldPermissions(s))
	for r := range 3 {
		p := RankPermissions(s, r)
		check("rank", p)
		for _, pub := range p.Publish {
			if strings.Contains(pub, ".c2r.") {
				t.Errorf("rank %d may publish control %q", r, pub)
			}
			if pub == Result(s) && r != 0 {
				t.Errorf("rank %d may publish the result", r)
			}
		}
	}
	for _, pub := range WorldPermissions(s).Publish {
		// A wildcard tail only below the node stores' subjects: none
		// reaches a control subject.
		if strings.Contains(pub, ".c2r.") || (strings.HasSuffix(pub, ".>") && pub != StoreAll(s)) {
			t.Errorf("the world may publish %q", pub)
		}
	}
}
