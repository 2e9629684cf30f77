package channel

// Ports are what Execute acts through, one method per duty of a Ready
// (the package documentation says what each must do). The Endpoint
// (package transport) implements them over NATS, its delivery queue and
// its waiting senders; the simulation (package sim) over its world.
type Ports interface {
	// Publish takes a frame for publishing, in order. f is the Ready's:
	// copy the Out to keep it past Advance (Payload may be kept).
	Publish(f *Out)
	Deliver(d Delivery)
	Event(ev Event)
	Wake()
}

// Execute is the body of the Ready loop (see the package documentation),
// shared by the Endpoint and the simulation: it takes the Ready, executes
// it through p in field order (Frames, Deliver, Events, Wake) and
// acknowledges it with Advance. The driver calls it while HasReady, after
// Tick(now) if time has passed. Inputs p makes while it runs (a Credit, an
// Enqueue of a woken sender) go to the next Ready.
func Execute(m *Machine, p Ports) {
	rd := m.Ready()
	for i := range rd.Frames {
		p.Publish(&rd.Frames[i])
	}
	for _, d := range rd.Deliver {
		p.Deliver(d)
	}
	for _, ev := range rd.Events {
		p.Event(ev)
	}
	if rd.Wake {
		p.Wake()
	}
	m.Advance(rd)
}
