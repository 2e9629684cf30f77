package launch

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// MaxSlurmNodes bounds the nodes a Slurm node list or tasks-per-node
// string may name (the environment is the allocation's, but a typo in a
// range must not allocate without bound).
const MaxSlurmNodes = 1 << 16

// ExpandNodeList expands a Slurm host list (SLURM_JOB_NODELIST), as
// `scontrol show hostnames` does: "n[1-3,07],gpu-a,x[01-02]y" is n1 n2 n3
// n07 gpu-a x01y x02y. A range keeps the width of its zero-padded first
// bound. One bracket per name is supported (what Slurm writes for
// one-dimensional clusters).
func ExpandNodeList(s string) ([]string, error) {
	var out []string
	rest := strings.TrimSpace(s)
	for rest != "" {
		// The next name ends at the first comma outside brackets.
		depth, end := 0, len(rest)
		for i, c := range rest {
			if c == '[' {
				depth++
			} else if c == ']' {
				depth--
			} else if c == ',' && depth == 0 {
				end = i
				break
			}
			if depth < 0 || depth > 1 {
				return nil, fmt.Errorf("node list %q: unbalanced brackets", s)
			}
		}
		item := rest[:end]
		rest = strings.TrimPrefix(rest[end:], ",")
		if item == "" {
			continue
		}
		names, err := expandItem(item)
		if err != nil {
			return nil, fmt.Errorf("node list %q: %w", s, err)
		}
		out = append(out, names...)
		if len(out) > MaxSlurmNodes {
			return nil, fmt.Errorf("node list %q: more than %d nodes", s, MaxSlurmNodes)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("node list %q: no nodes", s)
	}
	return out, nil
}

func expandItem(item string) ([]string, error) {
	open := strings.IndexByte(item, '[')
	if open < 0 {
		if strings.ContainsRune(item, ']') {
			return nil, fmt.Errorf("%q: unbalanced brackets", item)
		}
		return []string{item}, nil
	}
	closing := strings.IndexByte(item, ']')
	if closing < open {
		return nil, fmt.Errorf("%q: unbalanced brackets", item)
	}
	prefix, body, suffix := item[:open], item[open+1:closing], item[closing+1:]
	if strings.ContainsAny(suffix, "[]") {
		return nil, fmt.Errorf("%q: more than one bracket in a name", item)
	}
	var out []string
	for _, r := range strings.Split(body, ",") {
		lo, hi, isRange := strings.Cut(r, "-")
		if !isRange {
			hi = lo
		}
		a, err1 := strconv.Atoi(lo)
		b, err2 := strconv.Atoi(hi)
		if lo == "" || hi == "" || err1 != nil || err2 != nil || a < 0 || b < a {
			return nil, fmt.Errorf("%q: bad range %q", item, r)
		}
		if b-a >= MaxSlurmNodes {
			return nil, fmt.Errorf("%q: range %q names more than %d nodes", item, r, MaxSlurmNodes)
		}
		width := len(lo)
		for n := a; n <= b; n++ {
			out = append(out, fmt.Sprintf("%s%0*d%s", prefix, width, n, suffix))
		}
		if len(out) > MaxSlurmNodes {
			return nil, fmt.Errorf("%q: more than %d nodes", item, MaxSlurmNodes)
		}
	}
	return out, nil
}

// ParseTasksPerNode parses SLURM_TASKS_PER_NODE ("3(x2),1" is 3 3 1), the
// tasks of each node of the allocation, in node-list order.
func ParseTasksPerNode(s string) ([]int, error) {
	var out []int
	for _, part := range strings.Split(strings.TrimSpace(s), ",") {
		n, rep := part, "1"
		if i := strings.IndexByte(part, '('); i >= 0 {
			x, ok := strings.CutPrefix(part[i+1:], "x")
			x, ok2 := strings.CutSuffix(x, ")")
			if !ok || !ok2 {
				return nil, fmt.Errorf("tasks per node %q: bad repeat %q (want N(xK))", s, part)
			}
			n, rep = part[:i], x
		}
		v, err1 := strconv.Atoi(n)
		k, err2 := strconv.Atoi(rep)
		if err1 != nil || err2 != nil || v < 1 || v > 1<<16 || k < 1 {
			return nil, fmt.Errorf("tasks per node %q: bad entry %q", s, part)
		}
		if len(out)+k > MaxSlurmNodes {
			return nil, fmt.Errorf("tasks per node %q: more than %d nodes", s, MaxSlurmNodes)
		}
		for range k {
			out = append(out, v)
		}
	}
	return out, nil
}

// ErrNoAllocation: the environment names no Slurm allocation.
var ErrNoAllocation = errors.New("not inside a Slurm allocation (SLURM_JOB_NODELIST is unset)")

// SlurmHosts returns the allocation's nodes as a host list, each with its
// tasks as slots: srun's default block distribution of `srun --ntasks=N`
// over the allocation is then NewPlacement's (ranks 0..t1-1 on the first
// node, and so on), which is how the srun spawner starts the ranks.
// nodeList is SLURM_JOB_NODELIST and tasksPerNode SLURM_TASKS_PER_NODE
// (empty: one task per node).
func SlurmHosts(nodeList, tasksPerNode string) ([]Host, error) {
	if strings.TrimSpace(nodeList) == "" {
		return nil, ErrNoAllocation
	}
	nodes, err := ExpandNodeList(nodeList)
	if err != nil {
		return nil, err
	}
	tasks := make([]int, len(nodes))
	for i := range tasks {
		tasks[i] = 1
	}
	if strings.TrimSpace(tasksPerNode) != "" {
		if tasks, err = ParseTasksPerNode(tasksPerNode); err != nil {
			return nil, err
		}
		if len(tasks) != len(nodes) {
			return nil, fmt.Errorf("tasks per node %q names %d nodes, the node list %q %d", tasksPerNode, len(tasks), nodeList, len(nodes))
		}
	}
	hosts := make([]Host, len(nodes))
	seen := map[string]bool{}
	for i, n := range nodes {
		if seen[n] {
			return nil, fmt.Errorf("node list %q: node %s twice", nodeList, n)
		}
		if !safeWord(n) || strings.HasPrefix(n, "-") {
			return nil, fmt.Errorf("node list %q: node name %q: want letters, digits and . _ - @ %%", nodeList, n)
		}
		seen[n] = true
		hosts[i] = Host{Name: n, Slots: tasks[i]}
	}
	return hosts, nil
}
