package levels

import (
	"slices"
	"strings"
	"testing"
)

func TestPartnerOf(t *testing.T) {
	c := Config{Local: "/l/{host}", Redundancy: RedundancyPartner, Hosts: "a:2,b:2,c:2", World: 4}
	if err := c.Check(); err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]string{"a": "b", "b": "a", "c": "a"} {
		if got, err := c.PartnerOf(host); err != nil || got != want {
			t.Errorf("PartnerOf(%s) = %q, %v; want %s", host, got, err, want)
		}
	}
	if got := c.ReadOrder("c"); !slices.Equal(got, []string{"c", "a", "b"}) {
		t.Errorf("ReadOrder(c) = %v", got)
	}
	three := Config{Local: "/l/{host}", Redundancy: RedundancyPartner, Hosts: "a:1,b:1,c:1", World: 3}
	for host, want := range map[string]string{"a": "b", "b": "c", "c": "a"} {
		if got, _ := three.PartnerOf(host); got != want {
			t.Errorf("three hosts: PartnerOf(%s) = %q, want %s", host, got, want)
		}
	}
	// All ranks on one host, a spare elsewhere: the spare holds the copies.
	spare := Config{Local: "/l/{host}", Redundancy: RedundancyPartner, Hosts: "a:4,b:4", World: 4}
	if got, err := spare.PartnerOf("a"); err != nil || got != "b" {
		t.Errorf("spare: PartnerOf(a) = %q, %v", got, err)
	}
	if _, err := c.PartnerOf("z"); err == nil {
		t.Error("a host outside the list got a partner")
	}
	if c.Dir("b") != "/l/b" {
		t.Errorf("Dir(b) = %s", c.Dir("b"))
	}
}

func TestCheck(t *testing.T) {
	for _, c := range []struct {
		c    Config
		want string
	}{
		{Config{Local: "/l/{host}", Redundancy: RedundancyPartner, Hosts: "a:4", World: 4}, "one host"},
		{Config{Local: "/l/{host}", Redundancy: RedundancyPartner, World: 4}, "one host"},
		{Config{Local: "/l", Redundancy: RedundancyPartner, Hosts: "a:2,b:2", World: 4}, "{host}"},
		{Config{Local: "/l/{host}", Redundancy: "rs:4+2", Hosts: "a:2,b:2", World: 4}, "go to 6 hosts"},
		{Config{Local: "/l/{host}", Redundancy: "rs:0+2", Hosts: "a:2,b:2", World: 4}, "rs:K+M"},
		{Config{Local: "/l/{host}", Redundancy: "rs:2", Hosts: "a:2,b:2", World: 4}, "rs:K+M"},
		{Config{Redundancy: RedundancyPartner}, "needs --local"},
		{Config{FlushEvery: 3}, "needs --local"},
	} {
		if err := c.c.Check(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Check(%+v) = %v, want %q", c.c, err, c.want)
		}
	}
	ok := Config{Local: "/l/{host}", Redundancy: RedundancyPartner, FlushEvery: 3, Hosts: "a:2,b:2", World: 4}
	if err := ok.Check(); err != nil {
		t.Fatal(err)
	}
	var flushed []uint64
	for e := uint64(1); e <= 7; e++ {
		if ok.Flush(e) {
			flushed = append(flushed, e)
		}
	}
	if !slices.Equal(flushed, []uint64{3, 6}) {
		t.Errorf("flushed %v", flushed)
	}
	if !(Config{Local: "/l"}).Flush(1) {
		t.Error("without a partner every cut must be flushed")
	}
	env := map[string]string{}
	for _, kv := range ok.Env() {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	back, err := FromEnv(func(k string) string { return env[k] }, 4)
	if err != nil || back != ok {
		t.Fatalf("FromEnv = %+v, %v; want %+v", back, err, ok)
	}
	dec, err := Decode(ok.Encode())
	if err != nil || dec != ok {
		t.Fatalf("Decode = %+v, %v", dec, err)
	}
	if _, err := Decode([]byte(`{"local":"/l","extra":1}`)); err == nil {
		t.Error("unknown key accepted")
	}
}

func TestErasureHosts(t *testing.T) {
	c := Config{Local: "/l/{host}", Redundancy: "rs:2+1", FlushEvery: 3, Hosts: "a:1,b:1,c:1,d:1", World: 4}
	if err := c.Check(); err != nil {
		t.Fatal(err)
	}
	if k, m, ok := c.Erasure(); !ok || k != 2 || m != 1 || !c.Redundant() || c.Partner() {
		t.Fatalf("Erasure() = %d %d %v", k, m, ok)
	}
	got, err := c.ErasureHosts("c")
	if err != nil || !slices.Equal(got, []string{"d", "a", "b"}) {
		t.Fatalf("ErasureHosts(c) = %v, %v", got, err)
	}
	// A spare host (e, no rank at launch) is taken last, and a spare's own
	// fragments go to hosts with ranks.
	c.Hosts, c.World = "a:1,b:1,c:1,d:1,e:1", 4
	for host, want := range map[string][]string{"b": {"c", "d", "a"}, "d": {"a", "b", "c"}, "e": {"a", "b", "c"}} {
		if got, err := c.ErasureHosts(host); err != nil || !slices.Equal(got, want) {
			t.Errorf("ErasureHosts(%s) with spare e = %v, %v; want %v", host, got, err, want)
		}
	}
	c.Redundancy = "rs:3+1" // four other hosts: b's go to c, d, a and the spare e
	if got, err := c.ErasureHosts("b"); err != nil || !slices.Equal(got, []string{"c", "d", "a", "e"}) {
		t.Errorf("ErasureHosts(b) rs:3+1 = %v, %v", got, err)
	}
	if c.Flush(1) || !(Config{Local: "/l/{host}", Redundancy: "rs:2+1", FlushEvery: 1}).Flush(1) {
		t.Error("flush rule with erasure")
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(Config{Local: "/l/{host}", Redundancy: RedundancyPartner, FlushEvery: 3, Hosts: "a:2,b:2", World: 4}.Encode())
	f.Add(Config{Local: "/l/{host}", Redundancy: "rs:2+1", Hosts: "a:1,b:1,c:1,d:1", World: 4}.Encode())
	f.Add([]byte(`{"local":""}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Decode(b)
		if err != nil {
			return
		}
		if err := c.Check(); err != nil {
			t.Fatalf("Decode accepted a record Check refuses: %v", err)
		}
		again, err := Decode(c.Encode())
		if err != nil || again != c {
			t.Fatalf("re-encoded record: %+v %v", again, err)
		}
	})
}
