package rank

import (
	"errors"
	"strings"
	"testing"
)

func TestParseSecrets(t *testing.T) {
	got, err := parseSecrets([]byte("CUTPOINT_NATS_TOKEN=a=b c\n\nCUTPOINT_NATS=nats://t@h:1\n"), nil)
	if err != nil || got[EnvNATSToken] != "a=b c" || got[EnvNATS] != "nats://t@h:1" {
		t.Fatalf("got %v, %v", got, err)
	}
	for _, c := range []struct {
		in   string
		want string
	}{
		{"", "held no secret"},
		{"PATH=/x\n", "line 1"},
		{"CUTPOINT_NATS_TOKEN=hunter2\nnoequals\n", "line 2"},
		{strings.Repeat("x", maxSecrets+1), "more than"},
	} {
		_, err := parseSecrets([]byte(c.in), nil)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%.20q: %v, want an error with %q and no secret", c.in, err, c.want)
		}
	}
	if _, err := parseSecrets(nil, errors.New("boom")); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("read error: %v", err)
	}
}

// FuzzParseSecrets: any input is accepted or refused, and the error never
// depends on (so never repeats) a value: with every value replaced, the
// same error comes back.
func FuzzParseSecrets(f *testing.F) {
	f.Add([]byte("CUTPOINT_NATS_TOKEN=abc\n"))
	f.Add([]byte("CUTPOINT_NATS=nats://u:p@h:1\nX=zzzzsecret\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > maxSecrets {
			return
		}
		got, err := parseSecrets(b, nil)
		if err == nil {
			for k := range got {
				if k != EnvNATS && k != EnvNATSToken {
					t.Fatalf("accepted %q", k)
				}
			}
			return
		}
		lines := strings.Split(string(b), "\n")
		for i, l := range lines {
			if k, _, ok := strings.Cut(l, "="); ok {
				lines[i] = k + "=v"
			}
		}
		_, err2 := parseSecrets([]byte(strings.Join(lines, "\n")), nil)
		if err2 == nil || err2.Error() != err.Error() {
			t.Fatalf("the error depends on a value: %v, with values replaced %v", err, err2)
		}
	})
}
