// Command cutpoint launches HPC jobs that survive failures: it takes
// consistent snapshots of all ranks while they run, stores them compressed,
// and rolls the job back to the latest consistent cut when a rank is lost.
//
// Exit codes (defined once in internal/exitcode; one switch, exitCode in
// exit.go, maps errors to them):
//
//	0  success
//	1  failure (the job or the command failed; the message says why)
//	2  usage or configuration error (bad flag, bad config value, wrong or missing store,
//	   the job has a live owner)
//	3  verification found damage (`cutpoint verify`; a damaged cutpoint-store.json); `cutpoint rank`: the cut to
//	   restore is damaged
//	4  feature not in this build (`--device cuda` without `make build-cuda`)
//	5  stopped by a signal after a final cut was committed: resume with `run --restore`
//	6  stopped by a signal and no final cut could be committed (an earlier cut, if any, is intact)
//	7  deterministic failure: a rank failed before its first step, the same way twice from
//	   the same cut, or its restore does not fit the job; the message is the rank's own
//	8  finished unprotected: the result is right, but cutting had stopped (cutting-stopped:
//	   consecutive cuts failed for one cause, e.g. a full disk) and no cut committed since
//	75 `cutpoint rank`: NATS stayed unreachable for all of --nats-wait (the coordinator
//	   respawns it with backoff, not counted as a recovery)
package main

import (
	"context"
	"fmt"
	"os"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	// No signal handling here: run and coordinator turn SIGTERM into a
	// final cut, nats into a clean shutdown; every other command is safe
	// to kill at any point.
	ctx := context.Background()
	g := &GlobalOptions{Stdout: os.Stdout, Stderr: os.Stderr}
	err := execute(ctx, g, newRootCommand(g), args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "cutpoint: %v\n", err)
	}
	return exitCode(err)
}
