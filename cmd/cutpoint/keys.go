package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/cutpoint/cutpoint/coordinator"
	"github.com/cutpoint/cutpoint/internal/wire"
	"github.com/cutpoint/cutpoint/rank"
)

// The job key (docs/operations.md, Security): every key that authenticates
// the job's messages derives from it. The coordinator draws one per run,
// or takes it from CUTPOINT_JOB_KEY in its environment (never from a
// flag): a coordinator that --rejoins running ranks, or whose ranks are
// started by someone else (--spawn none), must hold the key those ranks
// hold.

// jobKey returns the job's key and removes CUTPOINT_JOB_KEY from this
// process's environment, so that no rank it starts inherits it (ranks get
// only their own keys; see rankKeyEnv).
func jobKey(j *jobRun) (wire.JobKey, error) {
	v, set := os.LookupEnv(rank.EnvJobKey)
	_ = os.Unsetenv(rank.EnvJobKey)
	if set && v != "" {
		k, err := wire.ParseJobKey(v)
		if err != nil {
			// The value is a secret: name the variable, never show it.
			return k, usageError(fmt.Errorf("%s: %w", rank.EnvJobKey, err))
		}
		return k, nil
	}
	switch {
	case j.rejoin:
		return wire.JobKey{}, usageError(errors.New("--rejoin needs the job key the running ranks hold: set " + rank.EnvJobKey + " (in the environment, never on the command line) to the value the first coordinator had"))
	case j.spawn == "none":
		return wire.JobKey{}, usageError(errors.New("--spawn none: the ranks started elsewhere must hold the job key: set " + rank.EnvJobKey + " (64 hex digits, e.g. from `openssl rand -hex 32`) in the environment of this coordinator and of every rank"))
	}
	return wire.NewJobKey(), nil
}

// sharedEnvKeys: the ranks of these spawners share one environment (an
// MPI world; the one srun step of a whole world), so no rank can be given
// keys of its own: they get the job key and derive theirs.
func sharedEnvKeys(j *jobRun) bool { return j.mpi || j.spawn == "srun" }

// rankKeyEnv is the variable that gives one spawned rank its own keys.
func rankKeyEnv(k wire.JobKey, world int, s coordinator.Spawn) string {
	return rank.EnvRankKeys + "=" + k.RankKeys(s.Rank, world).Encode()
}
