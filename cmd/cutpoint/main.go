// Command cutpoint launches HPC jobs that survive failures: it takes
// consistent snapshots of all ranks while they run, stores them compressed,
// and rolls the job back to the latest consistent cut when a rank is lost.
//
// Exit codes (one switch, exitCode in exit.go, maps errors to them):
//
//	0  success
//	1  failure (the job or the command failed; the message says why)
//	2  usage or configuration error (bad flag, bad config value, wrong or missing store,
//	   the job has a live owner)
//	3  verification found damage (`cutpoint verify`; a damaged cutpoint-store.json)
//	4  feature not in this build (`--device cuda` without `make build-cuda`)
//	5  stopped by a signal after a final cut was committed: resume with `run --restore`
//	6  stopped by a signal and no final cut could be committed (the previous cut is intact)
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
	root := newRootCommand(g)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err != nil {
		fmt.Fprintf(os.Stderr, "cutpoint: %v\n", err)
	}
	return exitCode(err)
}
