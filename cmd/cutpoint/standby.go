package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cutpoint/cutpoint/ckpt"
	"github.com/cutpoint/cutpoint/coordinator/driver"
	"github.com/cutpoint/cutpoint/internal/pause"
)

// A standby coordinator (`coordinator --standby`) runs on another host
// than the job's coordinator, with the same flags, and watches the job's
// lease in the shared store. It does nothing while the lease is live;
// when it expires (the coordinator, or its whole host, died) it takes the
// job over as `coordinator --rejoin` would: the lease (exclusive create of
// the next instance, then the old holder's ttl waited out) makes sure that
// the old coordinator, if it merely stalled, has stopped before the
// standby acts, and that of several standbys exactly one proceeds; the
// others go back to watching, now standing by for the new coordinator.
// A lease released by its coordinator means the job ended (finished, or
// stopped by a signal): the standby stands down with exit 0.

// standbyOutcome is how watching the lease ended.
type standbyOutcome int

const (
	standbyTakeOver standbyOutcome = iota // the lease expired: take over
	standbyEnded                          // the coordinator released it: the job is over
)

// standbyPoll bounds how often the lease is read: a third of its ttl (as
// often as its holder renews it), within [100ms, 5s].
func standbyPoll(ttl time.Duration) time.Duration {
	return min(max(ttl/3, 100*time.Millisecond), 5*time.Second)
}

// watchLease waits until the job's lease can be taken over or was
// released by a coordinator. The store and the job may not exist yet (the
// standby started before the coordinator): it waits for them.
func watchLease(ctx context.Context, g *GlobalOptions, dir, job string, ttl time.Duration) (standbyOutcome, error) {
	poll := standbyPoll(ttl)
	var store *ckpt.Store
	defer func() {
		if store != nil {
			store.Close()
		}
	}()
	said := ckpt.LeaseState(-1)
	for {
		if store == nil {
			s, err := ckpt.OpenDir(ctx, dir, ckpt.Options{Logger: g.Logger})
			switch {
			case err == nil:
				store = s
			case errors.Is(err, ckpt.ErrNoStore):
			default:
				return 0, usageError(fmt.Errorf("--store: %w", err))
			}
		}
		if store != nil {
			li, err := store.InspectLease(ctx, job)
			if err != nil {
				// A store briefly unreadable is no reason to take over
				// (nor to give up): look again.
				g.Logger.Warn("standby: job lease unreadable; retrying", "job", job, "err", err)
			} else {
				if li.State != said {
					said = li.State
					g.Logger.Info("standby: job lease", "job", job, "state", li.State.String(), "owner_role", li.Role,
						"owner_generation", li.Generation, "owner_host", li.Host, "owner_pid", li.PID, "ttl", li.TTL)
				}
				switch li.State {
				case ckpt.LeaseExpired:
					return standbyTakeOver, nil
				case ckpt.LeaseLive:
					if li.Gone {
						// Its process is gone (this host): AcquireLease
						// waits for the expiry itself.
						return standbyTakeOver, nil
					}
					poll = standbyPoll(li.TTL)
				case ckpt.LeaseReleased:
					if li.Role == "coordinator" {
						return standbyEnded, nil
					}
					// A store tool (gc, rm) held it: the job's
					// coordinator has not started yet.
				}
			}
		}
		if err := pause.For(ctx, poll); err != nil {
			return 0, err
		}
	}
}

// runStandby stands by until the job's coordinator is gone, then runs the
// job as a rejoining coordinator (run), and stands by again when another
// standby took it first.
func runStandby(ctx context.Context, g *GlobalOptions, store, job string, ttl time.Duration, run func() error) error {
	g.Logger.Info("standby: watching the job's lease; taking over when it expires", "job", job, "store", store)
	for {
		out, err := watchLease(ctx, g, store, job, ttl)
		if err != nil {
			if ctx.Err() != nil {
				// SIGTERM/SIGINT of a standby that holds nothing.
				g.Logger.Info("standby: signal: standing down", "job", job)
				return nil
			}
			return err
		}
		if out == standbyEnded {
			g.Logger.Info("standby: the job's coordinator released the lease (the job is over): standing down", "job", job)
			return nil
		}
		g.Logger.Warn("standby: the job's lease expired: taking over", "job", job)
		err = run()
		if errors.Is(err, driver.ErrJobOwned) {
			g.Logger.Warn("standby: another coordinator took the job over first; standing by again", "job", job, "err", err)
			continue
		}
		return err
	}
}
