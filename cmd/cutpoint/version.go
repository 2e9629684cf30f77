package main

import (
	"runtime"
	"runtime/debug"
	"strings"
)

// version describes this build: the module version (a tag, or "(devel)"
// for a build from a checkout), the VCS revision and time it was built
// from, whether the tree had local changes, and the Go toolchain.
func version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown (no build information) " + runtime.Version()
	}
	parts := []string{info.Main.Version}
	var rev, at, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = " (modified)"
			}
		}
	}
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		parts = append(parts, "revision "+rev+modified)
	}
	if at != "" {
		parts = append(parts, at)
	}
	parts = append(parts, info.GoVersion)
	return strings.Join(parts, " ")
}
