// Package subjects names the NATS subjects of cutpoint's control plane, shared
// by the rank runtime and the coordinator driver. Data channels have their
// own subjects in rank/transport; both start with "cp.<job>." and differ in
// the next token ("ctl" here, the incarnation number there).
package subjects

import (
	"strconv"
	"strings"
)

// Job makes a subject token of a job name: job names may hold '.', which
// separates NATS tokens, and never '~', so replacing one by the other keeps
// distinct jobs on distinct subjects.
func Job(job string) string { return strings.ReplaceAll(job, ".", "~") }

// ToCoordinator carries every rank-to-coordinator message.
func ToCoordinator(job string) string { return "cp." + Job(job) + ".ctl.r2c" }

// ToRank carries coordinator messages for one rank; every process of that
// rank listens on it.
func ToRank(job string, rank int) string { return "cp." + Job(job) + ".ctl.c2r." + strconv.Itoa(rank) }

// ToAll carries coordinator broadcasts.
func ToAll(job string) string { return "cp." + Job(job) + ".ctl.c2r.all" }

// Result carries a rank's job result (request/reply: the coordinator
// driver acknowledges it).
func Result(job string) string { return "cp." + Job(job) + ".ctl.result" }
