package driver

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/cutpoint/cutpoint/ckpt"
	"github.com/cutpoint/cutpoint/coordinator"
	"github.com/cutpoint/cutpoint/internal/launch"
)

// PlacementFile is the job file holding where the coordinator placed the
// ranks (launch.PlacementRecord: hosts down, ranks moved), rewritten
// (atomically, durably) whenever that changes, so that a coordinator
// taking the job over (ModeRejoin: --standby, --rejoin) with the same
// --hosts finds the ranks where they run and never tries a dead host.
const PlacementFile = "placement.json"

// Placer is a Spawner that places ranks on hosts (launch.Hosts).
type Placer interface {
	PlacementRecord() launch.PlacementRecord
	AdoptPlacement(launch.PlacementRecord) (skipped []string, summary string)
	PlacementChanged() <-chan struct{}
}

// adoptPlacement (ModeRejoin, under the lease, before anything is
// spawned) applies the placement the previous coordinator recorded. A
// record that is missing, unreadable or damaged is logged and left out:
// the hosts are then found down by trying, as without one.
func (d *driver) adoptPlacement(ctx context.Context, gen uint64) {
	pl, ok := d.cfg.Spawner.(Placer)
	if !ok || d.cfg.Mode != coordinator.ModeRejoin {
		return
	}
	b, err := d.cfg.Store.GetJobFile(ctx, d.job, PlacementFile)
	if errors.Is(err, ckpt.ErrNotFound) {
		return
	}
	if err != nil {
		d.log.Warn("placement record unreadable: hosts the previous coordinator found down will be tried again", "file", PlacementFile, "err", err)
		return
	}
	rec, err := launch.DecodePlacement(b)
	switch {
	case err != nil:
	case rec.Job != d.job:
		err = errors.New("it names job " + rec.Job)
	case rec.Generation >= gen:
		err = errors.New("it is of a later coordinator generation")
	}
	if err != nil {
		d.log.Error("placement record ignored: hosts the previous coordinator found down will be tried again", "file", PlacementFile, "err", err)
		return
	}
	skipped, summary := pl.AdoptPlacement(rec)
	d.log.Info("placement of the previous coordinator adopted", "generation", rec.Generation, "hosts_down", len(rec.Down),
		"ranks_moved", len(rec.Moved), "hosts", summary)
	if len(skipped) > 0 {
		d.log.Warn("placement record: entries that do not fit this coordinator's --hosts left out", "skipped", skipped)
	}
}

// recordPlacement rewrites PlacementFile after each change of the
// placement, in the background (a change comes from the loop's spawns and
// from the launcher's reaping), until stop is called; stop writes what
// is still pending. Only the lease holder writes.
func (d *driver) recordPlacement() (stop func()) {
	pl, ok := d.cfg.Spawner.(Placer)
	if !ok {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	write := func() {
		if err := d.lease.Check(); err != nil {
			return
		}
		rec := pl.PlacementRecord()
		rec.Job, rec.Generation = d.job, d.c.Generation()
		b, err := launch.EncodePlacement(rec)
		if err != nil {
			d.log.Warn("placement not recorded", "err", err)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := d.cfg.Store.PutJobFile(ctx, d.job, PlacementFile, b); err != nil {
			d.log.Warn("placement not recorded (a coordinator taking over finds dead hosts by trying)", "err", err)
			return
		}
		d.log.Debug("placement recorded", "hosts_down", len(rec.Down), "ranks_moved", len(rec.Moved))
	}
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				select {
				case <-pl.PlacementChanged():
					write()
				default:
				}
				return
			case <-pl.PlacementChanged():
				write()
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}
