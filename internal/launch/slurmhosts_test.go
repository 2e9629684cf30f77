package launch

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestExpandNodeList(t *testing.T) {
	for _, c := range []struct {
		in   string
		want string
	}{
		{"cpbed-h1", "cpbed-h1"},
		{"cpbed-h[1-3]", "cpbed-h1 cpbed-h2 cpbed-h3"},
		{"n[1-3,07],gpu-a,x[01-02]y", "n1 n2 n3 n07 gpu-a x01y x02y"},
		{"n[098-101]", "n098 n099 n100 n101"},
		{"a,b[5]", "a b5"},
	} {
		got, err := ExpandNodeList(c.in)
		if err != nil {
			t.Fatalf("%q: %v", c.in, err)
		}
		if strings.Join(got, " ") != c.want {
			t.Errorf("%q: got %q, want %q", c.in, got, c.want)
		}
	}
	for _, bad := range []string{"", "n[1-3", "n1-3]", "n[3-1]", "n[a-b]", "n[1-]", "n[[1]]", "n[1][2]", "n[0-99999999]"} {
		if got, err := ExpandNodeList(bad); err == nil {
			t.Errorf("%q: got %q, want an error", bad, got)
		}
	}
}

func TestParseTasksPerNode(t *testing.T) {
	for in, want := range map[string][]int{"2(x3)": {2, 2, 2}, "3(x2),1": {3, 3, 1}, "4": {4}, "1,2,3": {1, 2, 3}} {
		got, err := ParseTasksPerNode(in)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("%q: got %v %v, want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "0", "2(3)", "2(x0)", "2(x3", "x", "2(x99999999)", "-1"} {
		if got, err := ParseTasksPerNode(bad); err == nil {
			t.Errorf("%q: got %v, want an error", bad, got)
		}
	}
}

func TestSlurmHosts(t *testing.T) {
	hosts, err := SlurmHosts("n[1-2],m", "3(x2),1")
	if err != nil {
		t.Fatal(err)
	}
	want := []Host{{"n1", 3}, {"n2", 3}, {"m", 1}}
	if !slices.Equal(hosts, want) {
		t.Fatalf("got %v, want %v", hosts, want)
	}
	// srun's block distribution of --ntasks=7 over the allocation.
	pl, err := NewPlacement(hosts, 7)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for r := range 7 {
		got = append(got, pl.HostOf(r))
	}
	if strings.Join(got, " ") != "n1 n1 n1 n2 n2 n2 m" {
		t.Errorf("placement %v", got)
	}
	if hosts, err := SlurmHosts("a,b", ""); err != nil || !slices.Equal(hosts, []Host{{"a", 1}, {"b", 1}}) {
		t.Errorf("no tasks per node: %v %v", hosts, err)
	}
	if _, err := SlurmHosts("", "1"); !errors.Is(err, ErrNoAllocation) {
		t.Errorf("no node list: %v, want ErrNoAllocation", err)
	}
	for _, bad := range [][2]string{{"a,b", "1"}, {"a,a", "1,1"}, {"a;b", "1"}, {"n[1-2]", "1(x3)"}} {
		if _, err := SlurmHosts(bad[0], bad[1]); err == nil {
			t.Errorf("%q %q: want an error", bad[0], bad[1])
		}
	}
}

// The allocation's strings come from the environment: any of them gives
// hosts or an error, never a panic, and never more than MaxSlurmNodes.
func FuzzSlurmHosts(f *testing.F) {
	f.Add("n[1-3,07],gpu-a", "3(x2),1,1")
	f.Add("x[01-02]y", "2(x2)")
	f.Add("n[1-", "1(x")
	f.Fuzz(func(t *testing.T, nodes, tasks string) {
		if names, err := ExpandNodeList(nodes); err == nil && (len(names) == 0 || len(names) > MaxSlurmNodes) {
			t.Fatalf("%q: %d names", nodes, len(names))
		}
		if n, err := ParseTasksPerNode(tasks); err == nil && len(n) > MaxSlurmNodes {
			t.Fatalf("%q: %d nodes", tasks, len(n))
		}
		hosts, err := SlurmHosts(nodes, tasks)
		if err != nil {
			return
		}
		for _, h := range hosts {
			if h.Slots < 1 {
				t.Fatalf("%q %q: host %v", nodes, tasks, h)
			}
		}
	})
}
