// Package jobname is the one rule for a job's name, used by the store
// (where the name is a directory), the protocol's job record, the
// coordinator's configuration, the rank runtime and the command line: 1 to
// Max bytes of [A-Za-z0-9._-], not starting with '.' (a hidden file, and
// "." or ".." would leave the job's directory) or '-' (a flag to any tool
// that is handed the path). It imports nothing, so every layer may use it.
package jobname

import "fmt"

// Max is the longest job name in bytes.
const Max = 64

// Check returns nil when name is a valid job name, else an error naming
// what is wrong (the name is quoted, cut to 80 bytes).
func Check(name string) error {
	if len(name) < 1 || len(name) > Max {
		return fmt.Errorf("job name %q: want 1 to %d of [A-Za-z0-9._-], not starting with . or -", trunc(name), Max)
	}
	if name[0] == '.' || name[0] == '-' {
		return fmt.Errorf("job name %q: must not start with . or -", trunc(name))
	}
	for i := 0; i < len(name); i++ {
		if !allowed(name[i]) {
			return fmt.Errorf("job name %q: byte %d (%q) is not one of [A-Za-z0-9._-]", trunc(name), i, name[i])
		}
	}
	return nil
}

// Sanitize turns any string (an executable's file name) into a valid job
// name: bytes outside the alphabet, and a leading '.' or '-', become '_';
// it is cut to Max bytes; an empty string becomes "job".
func Sanitize(s string) string {
	if len(s) > Max {
		s = s[:Max]
	}
	if s == "" {
		return "job"
	}
	b := []byte(s)
	for i, c := range b {
		if !allowed(c) || i == 0 && (c == '.' || c == '-') {
			b[i] = '_'
		}
	}
	return string(b)
}

func allowed(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}

func trunc(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
