package coordinator

import (
	"errors"

	"github.com/cutpoint/cutpoint/internal/wire"
)

// The ports through which Execute acts: each is one duty of a Ready. The
// driver implements them over the store, the launcher and NATS; the
// simulation over its world.

// Persister writes the job record durably (temp, fsync, rename, fsync
// the directory) before it returns. ErrInFlight: the write is under way
// (a simulated fsync takes time); the caller acknowledges it with
// JobRecordWritten or JobRecordFailed and calls Execute again, which
// executes the rest of the same Ready.
type Persister interface {
	WriteRecord(rec wire.JobRecord) error
}

// Launcher kills and starts rank processes. Kill returns when the process
// is gone (R13). Spawn starts the list in order; its error ends the job
// (no launcher can ever start them), a failure to start one rank is
// reported by the launcher with RankExited instead.
type Launcher interface {
	Kill(p Process)
	Spawn(s []Spawn) error
}

// Publisher publishes a control message to its rank's subject or to all.
type Publisher interface {
	Publish(m Message)
}

// Committer writes a manifest (in the background: the result comes back
// with ManifestCommitted or ManifestFailed) and collects old cuts.
type Committer interface {
	Commit(m Manifest)
	GC(g GC)
}

// Confirmer asks the launcher whether silent ranks' processes still run;
// the answers come back with Confirmed.
type Confirmer interface {
	Confirm(ps []Process)
}

// Reporter logs and counts an event.
type Reporter interface {
	Event(ev Event)
}

// Ports is everything Execute needs.
type Ports interface {
	Persister
	Launcher
	Publisher
	Committer
	Confirmer
	Reporter
}

// ErrInFlight is what a Persister returns when the record write goes on
// after it returns (see Persister).
var ErrInFlight = errors.New("coordinator: job record write in flight")

// Execute takes the Ready, executes it through p in the documented order
// and acknowledges it with Advance. It returns the Outcome when the job is
// over (the caller stops the launcher's processes and exits with its
// Code), ErrInFlight when the record write goes on (the Ready stays
// handed out), or the error of Spawn. Inputs p makes while it runs (a
// RankExited for a spawn that failed) go to the next Ready.
func Execute(c *Coordinator, p Ports) (*Outcome, error) {
	rd := c.Ready()
	if rec := rd.JobRecord; rec != nil && c.writing != rec.Seq {
		// Persist before anything that depends on it (R15).
		c.writing = rec.Seq
		switch err := p.WriteRecord(*rec); {
		case errors.Is(err, ErrInFlight):
			return nil, err
		case err != nil:
			c.JobRecordFailed(rec.Seq, err)
		default:
			c.JobRecordWritten(rec.Seq)
		}
	}
	for _, k := range rd.Kill {
		p.Kill(k)
	}
	if len(rd.Spawn) > 0 {
		if err := p.Spawn(rd.Spawn); err != nil {
			c.Advance(rd)
			return nil, err
		}
	}
	for _, m := range rd.Messages {
		p.Publish(m)
	}
	if len(rd.Confirm) > 0 {
		p.Confirm(rd.Confirm)
	}
	if rd.Commit != nil {
		p.Commit(*rd.Commit)
	}
	if rd.GC != nil {
		p.GC(*rd.GC)
	}
	for _, ev := range rd.Events {
		p.Event(ev)
	}
	c.Advance(rd)
	return rd.Outcome, nil
}
