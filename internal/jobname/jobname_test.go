package jobname

import (
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	for _, c := range []struct {
		name string
		ok   bool
		says string
	}{
		{"heat2d", true, ""},
		{"a.b-c_D9", true, ""},
		{"x.", true, ""},
		{"a-", true, ""},
		{strings.Repeat("a", Max), true, ""},
		{strings.Repeat("a", Max+1), false, "1 to 64"},
		{"", false, "1 to 64"},
		{".hidden", false, "must not start"},
		{".", false, "must not start"},
		{"..", false, "must not start"},
		{"-rf", false, "must not start"},
		{"a/b", false, "byte 1"},
		{"../x", false, "must not start"},
		{"a b", false, "byte 1"},
		{"é", false, "byte 0"},
		{"a\x00", false, "byte 1"},
	} {
		err := Check(c.name)
		if (err == nil) != c.ok {
			t.Errorf("Check(%q) = %v, want ok=%v", c.name, err, c.ok)
			continue
		}
		if err != nil && !strings.Contains(err.Error(), c.says) {
			t.Errorf("Check(%q) = %v, want it to say %q", c.name, err, c.says)
		}
	}
}

// TestSanitize: whatever the input, the output passes Check, and a valid
// name is kept as it is.
func TestSanitize(t *testing.T) {
	for _, s := range []string{"", ".", "..", "-x", ".bashrc", "my job", "a/b", "é", strings.Repeat("x", 100), "heat2d", "a.out"} {
		got := Sanitize(s)
		if err := Check(got); err != nil {
			t.Errorf("Sanitize(%q) = %q: %v", s, got, err)
		}
		if Check(s) == nil && got != s {
			t.Errorf("Sanitize(%q) = %q, want it unchanged", s, got)
		}
	}
}

func FuzzSanitize(f *testing.F) {
	f.Add(".x")
	f.Fuzz(func(t *testing.T, s string) {
		if err := Check(Sanitize(s)); err != nil {
			t.Fatalf("Sanitize(%q): %v", s, err)
		}
	})
}
