package rank

import "testing"

func TestParseFaults(t *testing.T) {
	f, err := parseFaults("1:capture,2:write:3, 1:restore:2", 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if f.at["capture"] != 1 || f.at["restore"] != 2 || len(f.at) != 2 {
		t.Fatalf("rank 1 faults: %+v", f.at)
	}
	if f, _ := parseFaults("1:capture", 0, 1); f != nil {
		t.Fatal("a fault for rank 1 armed rank 0")
	}
	if f, _ := parseFaults("1:capture", 1, 2); f != nil {
		t.Fatal("a replacement process (spawn 2) was armed")
	}
	// Every step of a flush has its point.
	points := []string{"flush", "flush-write", "flush-commit", "flush-rename", "flush-file", "flushed", "final-flush"}
	for _, p := range points {
		f, err := parseFaults("0:"+p+":2", 0, 1)
		if err != nil || f.at[p] != 2 {
			t.Errorf("parseFaults(0:%s:2) = %+v, %v", p, f, err)
		}
	}
	for _, bad := range []string{"x:capture", "1:nowhere", "1:write:0", "1", "1:write:2:3"} {
		if _, err := parseFaults(bad, 1, 1); err == nil {
			t.Errorf("parseFaults(%q) accepted", bad)
		}
	}
}
