package driver

import (
	"github.com/cutpoint/cutpoint/coordinator"
	"github.com/cutpoint/cutpoint/internal/launch"
)

// Prober is a Spawner that can tell, without blocking, whether one of its
// rank processes still exists and runs (internal/launch: Local, Hosts,
// Srun); ok false: it cannot tell. With one, the coordinator confirms a
// silent rank with the launcher before it declares it lost
// (coordinator.Config.ConfirmSilence).
type Prober interface {
	Alive(rank int, spawn uint64) (state launch.Liveness, ok bool)
}

// confirmSilence reports whether the driver can answer Ready.Confirm.
func (d *driver) confirmSilence() bool {
	_, ok := d.cfg.Spawner.(Prober)
	return ok
}

// confirm answers Ready.Confirm: what the launcher says of each silent
// process, at once (Alive does not block, so a loaded machine or a
// launcher that cannot tell never holds the loop).
func (d *driver) confirm(ps []coordinator.Process) {
	pr, _ := d.cfg.Spawner.(Prober)
	for _, p := range ps {
		l := coordinator.LiveUnknown
		if pr != nil {
			if st, ok := pr.Alive(p.Rank, p.Spawn); ok {
				switch st {
				case launch.ProcGone:
					l = coordinator.LiveGone
				case launch.ProcStopped:
					l = coordinator.LiveStopped
				case launch.ProcRunning:
					l = coordinator.LiveRunning
				}
			}
		}
		d.log.Info("silent rank: asked the launcher", "rank", p.Rank, "spawn", p.Spawn, "process", l.String())
		d.c.Confirmed(p.Rank, p.Spawn, l)
	}
}
