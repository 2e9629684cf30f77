package channel_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/cutpoint/cutpoint/rank/transport/channel"
)

const (
	boundsWindow = 1000
	boundsFrag   = 100
)

func boundsMachine(t *testing.T, self, peer int, session uint64) *channel.Machine {
	t.Helper()
	m, err := channel.New(channel.Config{
		Self: self, Peers: []int{peer}, Window: boundsWindow, MaxMessage: 500, FragPayload: boundsFrag,
		AckTimeout: 10 * time.Millisecond, MaxBackoff: 40 * time.Millisecond, AckDelay: time.Millisecond,
	}, 1, session, 0)
	if err != nil {
		t.Fatal(err)
	}
	m.Subscribed()
	return m
}

func dataFrame(seq uint64, payload []byte) []byte {
	h := channel.Header{Type: channel.TypeData, From: 0, To: 1, G: 1, Session: 0x51, Seq: seq,
		MsgLen: uint64(len(payload)), Tx: seq}
	return channel.AppendFrame(nil, &h, payload)
}

// drain takes every Ready and returns what it delivered and the events.
func drain(m *channel.Machine, now int64) (msgs [][]byte, events []channel.Event) {
	m.Tick(now)
	for m.HasReady() {
		r := m.Ready()
		for _, d := range r.Deliver {
			msgs = append(msgs, d.Msg)
		}
		events = append(events, r.Events...)
		m.Advance(r)
	}
	return msgs, events
}

// TestFloodPastWindowDropped: a sender that ignores the credit window and
// floods in order cannot make the receiver hold more than it granted;
// what is past it is dropped and counted, and once the upper layer
// credits, the stream goes on where it stopped.
func TestFloodPastWindowDropped(t *testing.T) {
	m := boundsMachine(t, 1, 0, 0xb1)
	msg := bytes.Repeat([]byte{7}, boundsFrag)
	for seq := uint64(1); seq <= 1000; seq++ {
		m.Receive(int64(seq), channel.DataSub, dataFrame(seq, msg))
	}
	got, events := drain(m, 2000)
	held, limit := m.Uncredited(0)
	if limit != boundsWindow || held > limit {
		t.Fatalf("holds %d bytes delivered and not credited, bound %d (window %d)", held, limit, boundsWindow)
	}
	if len(got) != boundsWindow/boundsFrag {
		t.Fatalf("delivered %d messages of a flood, want the %d the window holds", len(got), boundsWindow/boundsFrag)
	}
	// What is past the window is dropped (in order) or, just past the
	// next seq, held within the reorder bounds; nothing else.
	st := m.Stats()
	b, f, _ := m.Held(0)
	lb, lf := m.Limits()
	if st.WindowDropped == 0 || b > lb || f > lf || st.WindowDropped+st.AheadDropped+uint64(f) != 1000-uint64(len(got)) {
		t.Fatalf("window-dropped %d, ahead-dropped %d, held %d bytes %d frames (bounds %d, %d), delivered %d of 1000",
			st.WindowDropped, st.AheadDropped, b, f, lb, lf, len(got))
	}
	// Rate-limited: one warning for the burst, not one per frame.
	if len(events) != 1 || events[0].Kind != channel.EventMalformed {
		t.Fatalf("events %+v, want one rate-limited malformed event", events)
	}
	m.Credit(0, boundsFrag)
	next := uint64(len(got) + 1)
	m.Receive(3000, channel.DataSub, dataFrame(next, msg))
	if got, _ := drain(m, 3000); len(got) != 1 {
		t.Fatalf("after a credit, seq %d delivered %d messages, want 1", next, len(got))
	}
}

// TestForgedAheadNotBelieved: frames far past the window are dropped,
// never held, and do not make the real frames of those seqs duplicates.
func TestForgedAheadNotBelieved(t *testing.T) {
	m := boundsMachine(t, 1, 0, 0xb1)
	_, maxAhead := m.Limits()
	forged := bytes.Repeat([]byte{0xee}, 10)
	for k := range 50 {
		m.Receive(1, channel.DataSub, dataFrame(uint64(maxAhead+2+k), forged))
	}
	if b, f, _ := m.Held(0); b != 0 || f != 0 {
		t.Fatalf("holds %d bytes, %d frames of forged-ahead data", b, f)
	}
	if st := m.Stats(); st.AheadDropped != 50 {
		t.Fatalf("ahead-dropped %d, want 50", st.AheadDropped)
	}
	for seq := uint64(1); seq <= uint64(maxAhead)+60; seq++ {
		msg := []byte{byte(seq), 1, 2}
		m.Receive(int64(seq+1), channel.DataSub, dataFrame(seq, msg))
		got, _ := drain(m, int64(seq+1))
		for _, g := range got {
			if !bytes.Equal(g, msg) {
				t.Fatalf("seq %d delivered %x, want %x", seq, g, msg)
			}
			m.Credit(0, len(g))
		}
		if len(got) != 1 {
			t.Fatalf("seq %d delivered %d messages, want 1 (duplicates %d)", seq, len(got), m.Stats().Duplicates)
		}
	}
}

// TestConflictingCopiesBreak: two different frames with one held seq are
// refused both, with a gap, rather than one delivered as the truth.
func TestConflictingCopiesBreak(t *testing.T) {
	m := boundsMachine(t, 1, 0, 0xb1)
	m.Receive(1, channel.DataSub, dataFrame(3, []byte("forged")))
	m.Receive(2, channel.DataSub, dataFrame(3, []byte("honest")))
	m.Receive(3, channel.DataSub, dataFrame(1, []byte("one")))
	m.Receive(4, channel.DataSub, dataFrame(2, []byte("two")))
	got, events := drain(m, 5)
	for _, g := range got {
		if string(g) == "forged" || string(g) == "honest" {
			t.Fatalf("delivered %q of two conflicting copies", g)
		}
	}
	gap := false
	for _, ev := range events {
		gap = gap || ev.Kind == channel.EventGap
	}
	if st := m.Stats(); st.Conflicts != 1 || !gap {
		t.Fatalf("conflicts %d, gap reported %v; want 1, true", st.Conflicts, gap)
	}
}

// TestAckPastSent: an ack of fragments never sent is dropped and counted;
// one (forged) changes nothing, but a receiver that keeps acknowledging
// past what was sent breaks the channel with a gap instead of stalling it.
func TestAckPastSent(t *testing.T) {
	const sess, peerSess = 0xa0, 0xb1
	m := boundsMachine(t, 0, 1, sess)
	if err := m.Enqueue(1, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	drain(m, 0)
	ack := func(now int64, cum, peer uint64) {
		h := channel.Header{Type: channel.TypeAck, From: 1, To: 0, G: 1, Session: peerSess, Cum: cum, PeerSession: peer, LastTx: min(cum, 1)}
		m.Receive(now, channel.AckSub, channel.AppendFrame(nil, &h, nil))
	}
	ack(1, 0, 0) // the receiver's hello
	ack(2, 50, sess)
	if st := m.Stats(); st.AckPastSent != 1 || m.Unacked() != 1 {
		t.Fatalf("acks past sent %d, unacked %d; want 1, 1", st.AckPastSent, m.Unacked())
	}
	ack(int64(time.Second), 1, sess) // the real ack resets it
	if err := m.Room(1, 10); err != nil || m.Unacked() != 0 {
		t.Fatalf("after a valid ack: room %v, unacked %d", err, m.Unacked())
	}
	if err := m.Enqueue(1, []byte("again")); err != nil {
		t.Fatal(err)
	}
	drain(m, int64(time.Second))
	var gap bool
	for k := range 10 {
		now := int64(time.Second) + int64(k)*int64(20*time.Millisecond)
		ack(now, 60, sess)
		_, events := drain(m, now)
		for _, ev := range events {
			gap = gap || ev.Kind == channel.EventGap
		}
	}
	if !gap {
		t.Fatalf("a receiver acknowledging past what was sent for 200ms (max backoff 40ms) did not break the channel")
	}
	if err := m.Room(1, 1); err == nil {
		t.Fatalf("channel still open after the gap")
	}
}
