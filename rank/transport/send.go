package transport

import (
	"time"

	"github.com/cutpoint/cutpoint/rank/transport/channel"
)

// outFrame is a frame the machine chose under the lock, encoded and
// published outside it.
type outFrame struct {
	subj string
	channel.Out
}

// writeLoop is the only goroutine that publishes, so frames leave in the
// order the machine's Readys list them (per-publisher order is what the
// protocol's loss inference relies on). It also ticks the machine's clock.
func (e *Endpoint) writeLoop() {
	defer e.wg.Done()
	tick := time.NewTicker(min(max(e.cfg.AckTimeout/4, time.Millisecond), 50*time.Millisecond))
	defer tick.Stop()
	var batch []outFrame
	var scratch []byte
	for {
		select {
		case <-e.stop:
			return
		case <-e.wkick:
		case <-tick.C:
		}
		for {
			batch = e.collect(batch[:0])
			if len(batch) == 0 {
				break
			}
			for i := range batch {
				f := &batch[i]
				scratch = channel.AppendFrame(scratch[:0], &f.Header, f.Payload)
				if e.auth != nil {
					scratch = e.auth.sealFrame(f.To, scratch)
				}
				e.publish(f.subj, scratch)
				*f = outFrame{}
			}
			select {
			case <-e.stop:
				return
			default:
			}
		}
	}
}

// collect executes the machine's Readys (channel.Execute, through ports)
// until one has frames (each Ready holds about one full frame of data, so
// acks never wait behind more): deliveries and events go to the
// deliverer's queue, wakes to Acquire, and the frames are returned for
// publishing.
func (e *Endpoint) collect(out []outFrame) []outFrame {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return out
	}
	e.m.Tick(e.now())
	x := ports{e: e, out: out}
	for len(x.out) == 0 && e.m.HasReady() {
		channel.Execute(e.m, &x)
	}
	e.afterLocked()
	return x.out
}

// maxQueuedEvents bounds the events queued for the deliverer (past it
// they are counted in EventsDropped).
const maxQueuedEvents = 1024

// ports are channel.Execute's ports over the Endpoint (e.mu held): frames
// are collected for the writer to publish outside the lock, deliveries
// and events queued for the deliverer, waiting Acquire calls woken.
type ports struct {
	e   *Endpoint
	out []outFrame
}

func (x *ports) Publish(f *channel.Out) {
	x.out = append(x.out, outFrame{subj: x.e.subject(f), Out: *f})
}

func (x *ports) Deliver(d channel.Delivery) {
	x.e.pushLocked(upcall{from: d.From, g: d.G, msg: d.Msg, epoch: x.e.epoch})
}

func (x *ports) Event(ev Event) {
	e := x.e
	if e.dqEvents >= maxQueuedEvents {
		e.st.EventsDropped++
		return
	}
	e.dqEvents++
	e.pushLocked(upcall{ev: &ev})
}

func (x *ports) Wake() { x.e.wakeLocked() }

// publish publishes a frame (or what Faults makes of it). A publish that
// fails needs no repair of its own: the frame stays unacknowledged and goes
// out again on the retransmission timeout or the reconnect.
func (e *Endpoint) publish(subj string, frame []byte) {
	frames := [][]byte{frame}
	if e.cfg.Faults != nil {
		frames = e.cfg.Faults.Outgoing(subj, frame)
	}
	for _, f := range frames {
		if err := e.nc.Publish(subj, f); err != nil {
			e.mu.Lock()
			e.st.PublishErrors++
			n := e.st.PublishErrors
			e.mu.Unlock()
			if n&(n-1) == 0 { // log the 1st, 2nd, 4th, 8th, ...
				e.log.Debug("transport publish failed", "subject", subj, "err", err, "count", n)
			}
		}
	}
}
