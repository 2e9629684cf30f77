package launch

import (
	"os"
	"path/filepath"
	"testing"
)

// TestOOMCounters reads the OOM kill count and the memory limit of both
// cgroup versions from their files.
func TestOOMCounters(t *testing.T) {
	v2 := t.TempDir()
	os.WriteFile(filepath.Join(v2, "memory.events"), []byte("low 0\nhigh 0\nmax 4\noom 2\noom_kill 2\noom_group_kill 0\n"), 0o644)
	os.WriteFile(filepath.Join(v2, "memory.max"), []byte("1073741824\n"), 0o644)
	if n := oomKills(v2, true); n != 2 {
		t.Errorf("v2 oom_kill %d, want 2", n)
	}
	if n := memLimit(v2, true); n != 1<<30 {
		t.Errorf("v2 limit %d", n)
	}
	os.WriteFile(filepath.Join(v2, "memory.max"), []byte("max\n"), 0o644)
	if n := memLimit(v2, true); n != 0 {
		t.Errorf("v2 limit max read as %d", n)
	}
	v1 := t.TempDir()
	os.WriteFile(filepath.Join(v1, "memory.oom_control"), []byte("oom_kill_disable 0\nunder_oom 0\noom_kill 7\n"), 0o644)
	os.WriteFile(filepath.Join(v1, "memory.limit_in_bytes"), []byte("9223372036854771712\n"), 0o644)
	if n := oomKills(v1, false); n != 7 {
		t.Errorf("v1 oom_kill %d, want 7", n)
	}
	if n := memLimit(v1, false); n != 0 {
		t.Errorf("v1 unlimited read as %d", n)
	}
	os.WriteFile(filepath.Join(v1, "memory.limit_in_bytes"), []byte("314572800\n"), 0o644)
	os.WriteFile(filepath.Join(v1, "memory.usage_in_bytes"), []byte("1048576\n"), 0o644)
	if lim, used := memLimit(v1, false), memUsage(v1, false); lim != 300<<20 || used != 1<<20 {
		t.Errorf("v1 limit %d, usage %d; want %d, %d", lim, used, 300<<20, 1<<20)
	}
	os.WriteFile(filepath.Join(v2, "memory.current"), []byte("4096\n"), 0o644)
	if n := memUsage(v2, true); n != 4096 {
		t.Errorf("v2 usage %d, want 4096", n)
	}
	if n := oomKills("", false); n != -1 {
		t.Errorf("no cgroup: %d", n)
	}
	if dir, _ := memCgroup(); dir != "" {
		if n := oomKills(memCgroup()); n < 0 {
			t.Logf("this machine's cgroup %s has no oom_kill counter", dir)
		}
	}
}
