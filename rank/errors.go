package rank

import (
	"errors"
	"fmt"

	"github.com/cutpoint/cutpoint/rank/participant"
)

// rolledBackError is ErrRolledBack's type: a comparable value, so
// errors.Is(err, ErrRolledBack) holds as for any sentinel.
type rolledBackError struct{}

func (rolledBackError) Error() string {
	return "rank: rolled back to a committed cut; call SafePoint"
}

// RolledBack reports true; see ErrRolledBack.
func (rolledBackError) RolledBack() bool { return true }

// Errors returned to the job. Test with errors.Is.
var (
	// ErrRolledBack: the job was rolled back to a committed cut while the
	// call was blocked or before it. The job must return to its loop and
	// call SafePoint, which restores the state and returns the cut's step.
	// It has a RolledBack() bool method so that a workload can recognise
	// it without importing rank (internal/heat2d sits below rank).
	ErrRolledBack error = rolledBackError{}
	// ErrStopped: the coordinator stopped the job (it finished elsewhere,
	// was preempted after a final cut, or failed). The process should exit
	// with the code the coordinator asked for: the error is an *ExitError,
	// errors.As gives its Code.
	ErrStopped = errors.New("rank: job stopped by the coordinator")
	// ErrFenced: this process was replaced by a newer one (R13). It must
	// exit at once without touching the store.
	ErrFenced = errors.New("rank: process fenced (replaced by a newer one)")
	// ErrStoreUnavailable: Join could not open the store for a reason
	// that may pass (permissions, I/O, a network file system away); a
	// store that does not exist is not this. cutpoint rank exits 75 and
	// the coordinator respawns it with backoff.
	ErrStoreUnavailable = errors.New("rank: store unavailable")
	// ErrNotStarted: Send, Recv or SafePoint before Start.
	ErrNotStarted = errors.New("rank: Start has not been called")
	// ErrProtectAfterStart: Protect after Start.
	ErrProtectAfterStart = errors.New("rank: Protect after Start")
	// ErrClosed: the rank was closed.
	ErrClosed = errors.New("rank: closed")
)

// ExitError carries the exit code the coordinator asked for with ErrStopped
// or ErrFenced.
type ExitError struct {
	Code   int
	Reason string
	fenced bool
}

func (e *ExitError) Error() string {
	if e.fenced {
		return fmt.Sprintf("%v: %s", ErrFenced, e.Reason)
	}
	return fmt.Sprintf("%v (code %d): %s", ErrStopped, e.Code, e.Reason)
}

// Is makes errors.Is(err, ErrStopped / ErrFenced) work.
func (e *ExitError) Is(target error) bool {
	return (target == ErrFenced && e.fenced) || (target == ErrStopped && !e.fenced)
}

// mapErr turns the participant's error into the one the job sees.
func (r *Rank) mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, participant.ErrRolledBack), errors.Is(err, participant.ErrNotStarted):
		return ErrRolledBack
	case errors.Is(err, participant.ErrExited):
		if e := r.terminalErr(); e != nil {
			return e
		}
		return &ExitError{Code: 1, Reason: err.Error()}
	}
	return fmt.Errorf("rank %d: %w", r.o.Rank, err)
}

// exitError turns the participant's Exit into the error the job sees: its
// Kind, not the reason text, tells a fence (this process was replaced)
// from a job stop.
func exitError(x *participant.Exit) *ExitError {
	return &ExitError{Code: x.Code, Reason: x.Reason, fenced: x.Kind == participant.ExitFenced}
}
