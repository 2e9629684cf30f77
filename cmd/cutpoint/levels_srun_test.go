package main

import (
	"strings"
	"testing"

	"github.com/cutpoint/cutpoint/internal/launch"
	"github.com/cutpoint/cutpoint/internal/levels"
)

// Under --spawn srun the levels' host ring is the allocation: every
// rank's partner is on another node, and a one-node allocation is
// refused as one host.
func TestLevelHostsSrun(t *testing.T) {
	env := func(nodes, tasks string) func(string) string {
		return func(k string) string {
			return map[string]string{"SLURM_JOB_NODELIST": nodes, "SLURM_TASKS_PER_NODE": tasks}[k]
		}
	}
	j := jobRun{spawn: "srun"}
	j.job.Ranks = 7
	j.job.levels = levelOptions{Local: "/l/{host}", Redundancy: levels.RedundancyPartner, FlushEvery: 4}
	hosts, err := j.levelHosts(env("cpbed-h[1-3]", "3(x2),1"))
	if err != nil {
		t.Fatal(err)
	}
	if got := hostsString(hosts); got != "cpbed-h1:3,cpbed-h2:3,cpbed-h3:1" {
		t.Fatalf("hosts %q", got)
	}
	if err := j.job.precheckLevels(hosts); err != nil {
		t.Fatal(err)
	}
	c := levels.Config{Local: "/l/{host}", Redundancy: levels.RedundancyPartner, Hosts: hostsString(hosts), World: 7}
	pl, err := launch.NewPlacement(hosts, 7)
	if err != nil {
		t.Fatal(err)
	}
	for r := range 7 {
		h := pl.HostOf(r)
		p, err := c.PartnerOf(h)
		if err != nil || p == h {
			t.Errorf("rank %d on %s: partner %q, %v; want another node", r, h, p, err)
		}
	}
	// One node: refused, naming the allocation.
	one, err := j.levelHosts(env("cpbed-h1", "7"))
	if err != nil {
		t.Fatal(err)
	}
	if err := j.job.precheckLevels(one); err == nil || !strings.Contains(err.Error(), "one host (cpbed-h1:7)") || !strings.Contains(err.Error(), "allocation of two or more nodes") {
		t.Errorf("one node: %v, want the one-host refusal", err)
	}
	// More ranks than the allocation's tasks: the ring would be wrong.
	few, err := j.levelHosts(env("n[1-3]", "1(x3)"))
	if err != nil {
		t.Fatal(err)
	}
	if err := j.job.precheckLevels(few); err == nil || !strings.Contains(err.Error(), "3 slots for 7 ranks") {
		t.Errorf("7 ranks on 3 tasks: %v, want a refusal", err)
	}
	// A malformed allocation is named; none at all is left to the spawner.
	if _, err := j.levelHosts(env("n[1-", "1")); err == nil || !strings.Contains(err.Error(), "allocation") {
		t.Errorf("bad node list: %v", err)
	}
	if h, err := j.levelHosts(env("", "")); err != nil || h != nil {
		t.Errorf("no allocation: %v %v", h, err)
	}
	// --hosts wins; other spawners and single-level jobs are untouched.
	j.hosts = []launch.Host{{Name: "x", Slots: 7}}
	if h, _ := j.levelHosts(env("a,b", "")); hostsString(h) != "x:7" {
		t.Errorf("--hosts: %v", h)
	}
	j.hosts = nil
	j.spawn = "local"
	if h, _ := j.levelHosts(env("a,b", "")); h != nil {
		t.Errorf("--spawn local: %v", h)
	}
}
