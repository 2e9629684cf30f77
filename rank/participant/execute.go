package participant

// The ports through which Execute acts: each is one duty of a Ready. The
// rank runtime implements them over the Endpoint, NATS, its shard writers
// and the job's waiters; the simulation over its world.

// Transport is the rank transport. Enqueue puts a frame on the channel to
// rank to (never to this rank: R9); it returns an error only when that
// channel is broken (R14), which Execute reports to the participant as a
// channel fault, and handles any other failure itself. Credit returns
// window to the senders.
type Transport interface {
	Enqueue(to int, frame []byte) error
	Credit(cs []Credit)
}

// Job wakes the job's waiting calls: a Recv on one of the deliverable
// channels, or every call when started (Go arrived).
type Job interface {
	Wake(deliverable []int, started bool)
}

// Reporter publishes a control message to the coordinator (at most once
// is fine) and logs and counts an event.
type Reporter interface {
	Report(msg []byte)
	Event(ev Event)
}

// Writers are the epochs' shard writers: Seal hands one its channel state
// (ShardDurable follows when the shard is durable), Cancel stops one and
// discards its output, Committed names the newest committed cut.
type Writers interface {
	Seal(s *Seal)
	Cancel(epoch uint64)
	Committed(epoch uint64)
}

// Ending ends this participant: a rollback in place or the process's exit.
type Ending interface {
	Rollback(rb Rollback)
	Exit(x Exit)
}

// Ports is everything Execute needs.
type Ports interface {
	Transport
	Job
	Reporter
	Writers
	Ending
}

// Execute takes the Ready, executes it through x in field order (see the
// package documentation), reports the channels Enqueue found broken with
// ChannelFault, and acknowledges the Ready with Advance. The runtime
// calls it with its lock held, while HasReady.
func Execute(p *Participant, x Ports) {
	rd := p.Ready()
	type fault struct {
		to  int
		err error
	}
	var broken []fault
	for _, f := range rd.Frames {
		if err := x.Enqueue(f.To, f.Data); err != nil {
			broken = append(broken, fault{f.To, err})
		}
	}
	if len(rd.Credits) > 0 {
		x.Credit(rd.Credits)
	}
	for _, m := range rd.Control {
		x.Report(m)
	}
	if rd.Seal != nil {
		x.Seal(rd.Seal)
	}
	for _, e := range rd.Cancel {
		x.Cancel(e)
	}
	if rd.Committed != 0 {
		x.Committed(rd.Committed)
	}
	if rd.Started || len(rd.Deliverable) > 0 {
		x.Wake(rd.Deliverable, rd.Started)
	}
	for _, ev := range rd.Events {
		x.Event(ev)
	}
	switch {
	case rd.Exit != nil:
		x.Exit(*rd.Exit)
	case rd.Rollback != nil:
		x.Rollback(*rd.Rollback)
	}
	// Inputs of their own: they go to the next Ready (ignored once this
	// participant has ended).
	for _, f := range broken {
		p.ChannelFault(f.to, f.err.Error())
	}
	p.Advance(rd)
}
