package transport

// Hooks for the black-box tests in package transport_test.

// Unacked counts fragments not yet acknowledged (sent or not) on e's
// channels, so that a test can wait until nothing is in flight.
func Unacked(e *Endpoint) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, sc := range e.sendList {
		n += len(sc.frags)
	}
	return n
}

// Session is e's current session id.
func Session(e *Endpoint) uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.session
}

// DataFrame encodes a data frame as the endpoint would (transmission id seq).
func DataFrame(from, to int, g, session, seq, msgLen, offset uint64, payload []byte) []byte {
	h := header{typ: typeData, from: uint32(from), to: uint32(to), g: g, session: session,
		seq: seq, msgLen: msgLen, offset: offset, tx: seq}
	return appendFrame(nil, &h, payload)
}

// AckFrame encodes an ack frame.
func AckFrame(from, to int, g, session, cum, credited, gapEnd, peerSession uint64, flags uint16) []byte {
	h := header{typ: typeAck, flags: flags, from: uint32(from), to: uint32(to), g: g, session: session,
		cum: cum, credited: credited, gapEnd: gapEnd, peerSession: peerSession}
	return appendFrame(nil, &h, nil)
}

// DataSubject and AckSubject are the subjects of channel from->to in g.
func DataSubject(job string, g uint64, to, from int) string {
	return dataSubject(jobToken(job), g, to, from)
}

func AckSubject(job string, g uint64, to, from int) string {
	return ackSubject(jobToken(job), g, to, from)
}
