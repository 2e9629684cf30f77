package launch

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// TestPlacementRecordAdopt: a placement that lost a host records it down
// and its ranks moved; another placement of the same hosts adopting the
// record has the ranks where they run and never places one on the dead
// host, though nothing ran there for it.
func TestPlacementRecordAdopt(t *testing.T) {
	hosts := []Host{{"a", 2}, {"b", 2}, {"c", 2}}
	p, err := NewPlacement(hosts, 4)
	if err != nil {
		t.Fatal(err)
	}
	if r := p.Record(); len(r.Down) != 0 || len(r.Moved) != 0 {
		t.Fatalf("fresh placement records %+v", r)
	}
	for r := range 4 {
		p.Started(r, 1, p.HostOf(r))
	}
	p.Ended(0, 1, true)
	p.Ended(1, 1, true) // a is down
	for _, r := range []int{0, 1} {
		if h, err := p.Place(r); err != nil || h != "c" {
			t.Fatalf("rank %d placed on %q, %v", r, h, err)
		}
	}
	rec := p.Record()
	rec.Job, rec.Generation = "j", 3
	b, err := EncodePlacement(rec)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodePlacement(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Down) != 1 || got.Down[0].Host != "a" || !reflect.DeepEqual(got.Moved, []MovedRank{{0, "c"}, {1, "c"}}) {
		t.Fatalf("record %s", b)
	}

	q, _ := NewPlacement(hosts, 4)
	if skipped := q.Adopt(got); len(skipped) != 0 {
		t.Fatalf("skipped %v", skipped)
	}
	for r, want := range []string{"c", "c", "b", "b"} {
		if h, err := q.Place(r); err != nil || h != want {
			t.Fatalf("after adoption rank %d placed on %q (%v), want %s", r, h, err, want)
		}
	}
	if down, why := q.Down("a"); !down || !strings.Contains(why, "generation 3") {
		t.Fatalf("a down %v (%s)", down, why)
	}
	if !strings.Contains(q.Summary(), "c 2/2") {
		t.Fatalf("summary %s", q.Summary())
	}

	// What does not fit another list is left out, named.
	r, _ := NewPlacement([]Host{{"b", 2}, {"c", 1}}, 3)
	skipped := r.Adopt(got)
	if len(skipped) != 3 || !strings.Contains(skipped[0], "host a (down) is not in --hosts") || !strings.Contains(skipped[1], "rank 0: host c has no free slot") {
		t.Fatalf("skipped %v", skipped)
	}
}

func TestDecodePlacementRejects(t *testing.T) {
	for _, c := range []struct{ in, text string }{
		{`{`, "unexpected end"},
		{`{"format":2,"job":"j","generation":1}`, "format 2"},
		{`{"format":1,"job":"a/b","generation":1}`, "job name"},
		{`{"format":1,"job":"j","generation":0}`, "generation 0"},
		{`{"format":1,"job":"j","generation":1,"down":[{"host":"x y"}]}`, "down host"},
		{`{"format":1,"job":"j","generation":1,"down":[{"host":"a"},{"host":"a"}]}`, "down twice"},
		{`{"format":1,"job":"j","generation":1,"down":[{"host":"a","reason":"` + strings.Repeat("x", 600) + `"}]}`, "reason of 600"},
		{`{"format":1,"job":"j","generation":1,"moved":[{"rank":-1,"host":"a"}]}`, "rank -1"},
		{`{"format":1,"job":"j","generation":1,"moved":[{"rank":2,"host":"a"},{"rank":2,"host":"b"}]}`, "moved twice"},
		{`{"format":1,"job":"j","generation":1,"moved":[{"rank":2,"host":"-o"}]}`, "host \"-o\""},
		{`{"format":1,"job":"j","generation":1,"down":[{"host":"a"}],"moved":[{"rank":2,"host":"a"}]}`, "which is down"},
		{`{"format":1,"job":"j","generation":1,"pad":"` + strings.Repeat("x", MaxPlacementBytes) + `"}`, "limit"},
	} {
		_, err := DecodePlacement([]byte(c.in))
		if !errors.Is(err, ErrBadPlacement) || !strings.Contains(err.Error(), c.text) {
			t.Errorf("%.80s: want ErrBadPlacement with %q, got %v", c.in, c.text, err)
		}
	}
}

// FuzzDecodePlacement: any bytes decode or fail with ErrBadPlacement,
// never panic; what decodes encodes to a record that decodes the same.
func FuzzDecodePlacement(f *testing.F) {
	f.Add([]byte(`{"format":1,"job":"j","generation":3,"down":[{"host":"a","reason":"all its ranks were lost"}],"moved":[{"rank":0,"host":"c"}]}`))
	f.Add([]byte(`{"format":1,"job":"j","generation":1}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodePlacement(b)
		if err != nil {
			if !errors.Is(err, ErrBadPlacement) {
				t.Fatalf("error %v is not ErrBadPlacement", err)
			}
			return
		}
		e, err := EncodePlacement(r)
		if err != nil {
			t.Fatalf("a decoded record does not encode: %v", err)
		}
		r2, err := DecodePlacement(e)
		if err != nil || !reflect.DeepEqual(r, r2) {
			t.Fatalf("round trip: %+v / %+v, %v", r, r2, err)
		}
		// Adopting it never panics, whatever it names.
		p, _ := NewPlacement([]Host{{"a", 1}, {"c", 2}}, 2)
		p.Adopt(r)
	})
}
