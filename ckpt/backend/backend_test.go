package backend

import (
	"strings"
	"testing"
)

func TestTempNames(t *testing.T) {
	for _, name := range []string{"a", "dir/sub/file.pack", "x-1.y_2"} {
		tmp := TempName(name, "0123abcd")
		if !IsTemp(tmp) {
			t.Errorf("IsTemp(%q) = false", tmp)
		}
		if ValidName(tmp) == nil {
			t.Errorf("temporary name %q is also a valid final name", tmp)
		}
		if ValidTempName(tmp) != nil {
			t.Errorf("ValidTempName(%q) failed", tmp)
		}
	}
	for _, name := range []string{".nfs0001", ".a.tmp-", ".a.tmp-X", "a.tmp-1", "..tmp-1", "d/.x.tmp-1/z"} {
		if IsTemp(name) {
			t.Errorf("IsTemp(%q) = true", name)
		}
	}
	if ValidTempName("../.a.tmp-1") == nil {
		t.Error("ValidTempName accepted a parent reference")
	}
}

func FuzzValidName(f *testing.F) {
	for _, s := range []string{"jobs/heat/cuts/00000000000000000001.cut", "../x", "a//b", ".a.tmp-1", "a/.b.tmp-2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if ValidName(name) == nil {
			// Every component is a plain name: no "", ".", "..", no
			// separators of other systems, nothing outside [A-Za-z0-9._-].
			for _, c := range strings.Split(name, "/") {
				if c == "" || c[0] == '.' || c[0] == '-' {
					t.Fatalf("ValidName accepted %q (component %q)", name, c)
				}
				for _, r := range c {
					if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_') {
						t.Fatalf("ValidName accepted %q (character %q)", name, r)
					}
				}
			}
		}
		if ValidTempName(name) == nil && ValidName(name) != nil {
			dir, base := Split(name)
			if !IsTemp(base) || (dir != "" && ValidName(dir) != nil) {
				t.Fatalf("ValidTempName accepted %q", name)
			}
		}
	})
}
