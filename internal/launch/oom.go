package launch

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// memCgroup locates this process's memory cgroup (v2 unified, else v1);
// the rank processes it starts inherit it. Empty: none found.
func memCgroup() (dir string, v2 bool) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", false
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	var v1 string
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "":
			d := filepath.Join("/sys/fs/cgroup", parts[2])
			if _, err := os.Stat(filepath.Join(d, "memory.events")); err == nil {
				return d, true
			}
		case strings.Contains(","+parts[1]+",", ",memory,"):
			v1 = filepath.Join("/sys/fs/cgroup/memory", parts[2])
		}
	}
	if v1 != "" {
		if _, err := os.Stat(filepath.Join(v1, "memory.oom_control")); err == nil {
			return v1, false
		}
	}
	return "", false
}

// oomKills reads the cgroup's count of processes the OOM killer killed
// (-1: unknown).
func oomKills(dir string, v2 bool) int64 {
	if dir == "" {
		return -1
	}
	name := "memory.oom_control"
	if v2 {
		name = "memory.events"
	}
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "oom_kill "); ok {
			if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
				return n
			}
		}
	}
	return -1
}

// memLimit is the cgroup's memory limit in bytes (0: none known).
func memLimit(dir string, v2 bool) int64 {
	if dir == "" {
		return 0
	}
	name := "memory.limit_in_bytes"
	if v2 {
		name = "memory.max"
	}
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return 0
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || n <= 0 || n >= 1<<62 {
		return 0 // "max", or v1's huge "unlimited"
	}
	return n
}

// memUsage is the cgroup's current memory use in bytes (0: unknown).
func memUsage(dir string, v2 bool) int64 {
	if dir == "" {
		return 0
	}
	name := "memory.usage_in_bytes"
	if v2 {
		name = "memory.current"
	}
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return 0
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// MemoryLimit is the memory limit of this process's cgroup (v2 memory.max
// or v1 memory.limit_in_bytes; the rank processes it starts inherit it)
// and what the cgroup uses now, in bytes; limit 0 when there is none or it
// is not known. The pre-checks compare a job's state with it, because the
// OOM killer acts on the cgroup's limit, not on the machine's free memory.
func MemoryLimit() (limit, usage int64) {
	dir, v2 := memCgroup()
	if limit = memLimit(dir, v2); limit == 0 {
		return 0, 0
	}
	return limit, memUsage(dir, v2)
}
