package main

import (
	"errors"

	"github.com/cutpoint/cutpoint/internal/exitcode"
)

// Exit codes; defined in internal/exitcode, documented in main.go and in
// the README.
const (
	exitOK          = exitcode.OK
	exitFailure     = exitcode.Failure
	exitUsage       = exitcode.Usage
	exitDamaged     = exitcode.Damaged
	exitNotBuilt    = exitcode.NotBuilt
	exitStoppedCut  = exitcode.StoppedWithCut
	exitStoppedNone = exitcode.StoppedNoCut
	// exitDeterministic: a rank failed in a way no recovery fixes (before
	// its first step, the same way twice from the same cut, a restore that
	// does not fit the job); the error is the rank's own.
	exitDeterministic = exitcode.Deterministic
	// exitUnprotected: the job finished, but cutting had stopped
	// (cutting-stopped: disk full, store gone, writes failing) and no cut
	// committed since; the result is right but was unprotected.
	exitUnprotected = exitcode.Unprotected
	// exitTransient (rank processes): NATS or the store stayed unreachable
	// for the whole wait; the coordinator respawns with backoff.
	exitTransient = exitcode.Transient
)

// exitError carries an exit code with the error that caused it.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// withCode marks err with an exit code; nil stays nil.
func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: code, err: err}
}

// usageError marks err as a usage or configuration error (exit 2).
func usageError(err error) error { return withCode(exitUsage, err) }

// exitCode is the one place that maps errors to exit codes.
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return exitFailure
}
