package rank

// The runtime's side of the participant machine: its inputs (the clock,
// the coordinator's messages, the transport's arrivals and events) and
// the ports through which participant.Execute carries out its Readys.
// Every one of them runs under r.mu.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/cutpoint/cutpoint/internal/subjects"
	"github.com/cutpoint/cutpoint/internal/wire"
	"github.com/cutpoint/cutpoint/rank/participant"
	"github.com/cutpoint/cutpoint/rank/transport"
)

// ticker feeds the participant the time (heartbeats, coordinator silence).
func (r *Rank) ticker() {
	defer close(r.tickDone)
	period := min(r.o.HeartbeatInterval/4, 50*time.Millisecond)
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-r.tickStop:
			return
		case <-t.C:
			r.mu.Lock()
			if r.p != nil {
				r.p.Tick(r.mono())
				r.process()
			}
			r.mu.Unlock()
		}
	}
}

func (r *Rank) onControl(m *nats.Msg) {
	b := m.Data
	var authErr error
	if r.o.Keys != nil {
		// Only the coordinator signs: what fails never reaches the
		// participant, so no forged generation, epoch or Stop counts.
		// Checked before the rank's lock, so a flood of forged messages
		// costs this subscription's goroutine, not the job's calls.
		b, authErr = wire.OpenCoord(r.o.Keys.Control, m.Data)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.p == nil || r.closed {
		return
	}
	if authErr != nil {
		r.stats.ControlForged++
		if now := time.Now(); now.Sub(r.forgedWarned) >= 10*time.Second {
			r.log.Warn("control message fails authentication: dropped (not signed by the job's coordinator; repeats within 10s are counted, not logged)",
				"subject", m.Subject, "dropped", r.stats.ControlForged-r.forgedLogged, "dropped_total", r.stats.ControlForged)
			r.forgedWarned, r.forgedLogged = now, r.stats.ControlForged
		}
		return
	}
	if r.lv != nil {
		r.lv.noteFinal(b)
	}
	if err := r.p.HandleControl(b); err != nil {
		if errors.Is(err, wire.ErrMalformed) && time.Since(r.ctlWarned) >= 10*time.Second {
			r.ctlWarned = time.Now()
			r.log.Warn("control message dropped (repeats within 10s are not logged)", "err", err)
		} else {
			r.log.Debug("control message dropped", "err", err)
		}
	}
	r.process()
}

// handler receives the transport's arrivals.
type handler struct{ r *Rank }

func (h handler) Deliver(from int, g uint64, msg []byte) {
	r := h.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.p == nil || g != r.p.Incarnation() {
		return
	}
	if err := r.p.Deliver(from, msg); err != nil {
		r.log.Debug("frame dropped", "from", from, "err", err)
	}
	r.process()
}

func (h handler) Event(ev transport.Event) {
	r := h.r
	switch ev.Kind {
	case transport.EventGap:
		r.log.Error("channel broken", "peer", ev.Peer, "g", ev.G, "err", ev.Err)
		r.mu.Lock()
		if r.p != nil && ev.G == r.p.Incarnation() {
			r.p.ChannelFault(ev.Peer, fmt.Sprint(ev.Err))
			r.process()
		}
		r.mu.Unlock()
	case transport.EventDisconnect:
		r.log.Warn("transport event", "kind", ev.Kind, "err", ev.Err)
		if errors.Is(ev.Err, transport.ErrConnClosed) || r.nc.IsClosed() {
			r.mu.Lock()
			r.fault = fmt.Errorf("rank %d: NATS connection closed for good: %w", r.o.Rank, transport.ErrConnClosed)
			r.cond.Broadcast()
			r.mu.Unlock()
		}
	default:
		r.log.Debug("transport event", "kind", ev.Kind, "peer", ev.Peer, "err", ev.Err)
	}
}

// process executes the participant's Readys (r.mu held) with
// participant.Execute, through the runtime's ports.
func (r *Rank) process() {
	for p := r.p; p != nil && p.HasReady(); {
		participant.Execute(p, ports{r})
	}
}

// ports are participant.Execute's ports over the Endpoint, NATS, the
// shard writers and the job's waiters (r.mu held).
type ports struct{ r *Rank }

func (x ports) Enqueue(to int, frame []byte) error {
	err := x.r.ep.Enqueue(to, frame)
	if err != nil {
		x.r.log.Warn("enqueue failed", "to", to, "err", err)
	}
	if errors.Is(err, transport.ErrBroken) {
		return err
	}
	return nil
}

func (x ports) Credit(cs []participant.Credit) {
	for _, c := range cs {
		x.r.ep.Credit(c.From, c.Bytes)
	}
}

func (x ports) Wake(_ []int, started bool) {
	if started {
		x.r.running = true
	}
	x.r.cond.Broadcast()
}

func (x ports) Report(m []byte) {
	r := x.r
	if r.report != nil {
		m = r.report.Seal(wire.DomainReport, append(make([]byte, 0, len(m)+wire.TagLen), m...))
	}
	if err := r.nc.Publish(subjects.ToCoordinator(r.space(), r.o.Rank), m); err != nil {
		r.log.Debug("control publish failed", "err", err)
	}
}

func (x ports) Seal(s *participant.Seal) {
	if w := x.r.writers[s.Epoch]; w != nil {
		w.seal <- s
	} else {
		x.r.log.Warn("seal for an epoch without a writer", "epoch", s.Epoch)
	}
}

func (x ports) Cancel(e uint64) {
	if w := x.r.writers[e]; w != nil {
		delete(x.r.writers, e)
		w.cancel()
	}
}

func (x ports) Committed(e uint64) {
	if e > x.r.committed {
		x.r.onCommitted(e)
	}
}

func (x ports) Event(ev participant.Event) {
	lvl := slog.LevelDebug
	switch ev.Kind {
	case participant.EvAborted, participant.EvAlignment, participant.EvChannelFault, participant.EvProtocol:
		lvl = slog.LevelWarn
	}
	x.r.log.Log(context.Background(), lvl, ev.String())
}

func (x ports) Rollback(rb participant.Rollback) {
	x.r.rollback = &rb
	x.r.running = false
	x.r.cond.Broadcast()
}

func (x ports) Exit(e participant.Exit) {
	x.r.exit = exitError(&e)
	x.r.running = false
	x.r.cond.Broadcast()
}

// onCommitted: cut e is committed; it is the base of the next
// incremental shard, the levels may collect what it supersedes.
func (r *Rank) onCommitted(e uint64) {
	r.committed = e
	if r.lv != nil {
		r.lv.gc(r.o.Job, e)
		r.lv.flush.committed(e)
	}
	r.initial = nil // a rollback now goes to a committed cut
	for _, p := range r.prot {
		if h, ok := p.pending[e]; ok {
			p.base, p.baseEpoch = h, e
		}
		for k := range p.pending {
			if k <= e {
				delete(p.pending, k)
			}
		}
	}
}
