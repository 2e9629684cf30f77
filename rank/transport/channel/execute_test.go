package channel_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cutpoint/cutpoint/rank/transport/channel"
)

// recorder is Execute's ports: it records each call in order, and checks
// from inside the execution that the Ready is still handed out.
type recorder struct {
	t     *testing.T
	m     *channel.Machine
	calls []string
	// during runs inside Wake: an input made while the Ready is executed.
	during func()
}

func (x *recorder) Publish(f *channel.Out) {
	x.calls = append(x.calls, fmt.Sprintf("publish %d->%d sub %d seq %d", f.Header.From, f.To, f.Sub, f.Header.Seq))
}

func (x *recorder) Deliver(d channel.Delivery) {
	x.calls = append(x.calls, fmt.Sprintf("deliver %d %q", d.From, d.Msg))
}

func (x *recorder) Event(ev channel.Event) {
	x.calls = append(x.calls, fmt.Sprintf("event %s peer %d g %d", ev.Kind, ev.Peer, ev.G))
}

func (x *recorder) Wake() {
	x.calls = append(x.calls, "wake")
	// Not yet acknowledged: Ready hands out the same one, with the frames
	// already published.
	if !x.m.HasReady() {
		x.t.Error("HasReady false inside Execute: Advance came before the ports")
	}
	if rd := x.m.Ready(); len(rd.Frames) != 4 {
		x.t.Errorf("Ready inside Execute has %d frames, want the 4 being executed", len(rd.Frames))
	}
	if x.during != nil {
		x.during()
	}
}

// TestExecute: Execute executes one Ready in field order (frames,
// deliveries, events, wake), acknowledges it once, and inputs made by the
// ports go to the next Ready.
func TestExecute(t *testing.T) {
	cfg := channel.Config{Self: 0, Peers: []int{1}, Window: 1 << 10, MaxMessage: 1 << 12, FragPayload: 100,
		AckTimeout: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, AckDelay: time.Millisecond}
	m, err := channel.New(cfg, 3, 7, 0)
	if err != nil {
		t.Fatal(err)
	}
	x := &recorder{t: t, m: m}
	m.Subscribed()                                          // the hello ack to rank 1
	m.Note(0, channel.Event{Kind: channel.EventDisconnect}) // Peer 0 is Self, not a declared peer: -1
	if err := m.Enqueue(0, []byte("self")); err != nil {    // a delivery
		t.Fatal(err)
	}
	if err := m.Enqueue(1, make([]byte, 250)); err != nil { // three fragments
		t.Fatal(err)
	}
	m.Credit(0, 4) // the self-channel's window grew: wake
	x.during = func() {
		if err := m.Enqueue(0, []byte("later")); err != nil {
			t.Error(err)
		}
	}
	channel.Execute(m, x)
	want := []string{
		"publish 0->1 sub 2 seq 0", // the hello ack first
		"publish 0->1 sub 1 seq 1",
		"publish 0->1 sub 1 seq 2",
		"publish 0->1 sub 1 seq 3",
		`deliver 0 "self"`,
		"event disconnect peer -1 g 3",
		"wake",
	}
	if got := strings.Join(x.calls, "\n"); got != strings.Join(want, "\n") {
		t.Fatalf("Execute's calls:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
	// Acknowledged once: the next Ready is a new one, holding only the
	// input made inside Wake (an Advance missing would hand out the same
	// Ready again; a second Advance would have panicked).
	if !m.HasReady() {
		t.Fatal("the delivery enqueued inside Execute is not in the next Ready")
	}
	x.calls, x.during = nil, nil
	channel.Execute(m, x)
	if got := strings.Join(x.calls, "\n"); got != `deliver 0 "later"` {
		t.Fatalf("second Execute's calls:\n%s", got)
	}
	if m.HasReady() {
		t.Fatalf("a Ready after both were executed: %+v", m.Ready())
	}
	mustPanic(t, "Execute's Ready acknowledged again", func() { m.Advance(channel.Ready{}) })
}

// TestNoteLimited: events the driver notes go out with the machine's,
// rate-limited by kind and peer on the machine's clock.
func TestNoteLimited(t *testing.T) {
	cfg := channel.Config{Self: 0, Peers: []int{1}, Window: 1 << 10, MaxMessage: 1 << 12, FragPayload: 100,
		AckTimeout: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, AckDelay: time.Millisecond}
	m, err := channel.New(cfg, 1, 7, 0)
	if err != nil {
		t.Fatal(err)
	}
	errSlow := errors.New("slow")
	ms := int64(time.Millisecond)
	m.Note(0, channel.Event{Kind: channel.EventSlowConsumer, Peer: -1, Err: errSlow})
	m.Note(10*ms, channel.Event{Kind: channel.EventSlowConsumer, Peer: -1, Err: errSlow}) // within 1 s: dropped
	m.Note(20*ms, channel.Event{Kind: channel.EventMalformed, Peer: 1, Err: errSlow})     // another kind
	m.Note(30*ms, channel.Event{Kind: channel.EventReconnect, Peer: -1})
	m.Note(40*ms, channel.Event{Kind: channel.EventReconnect, Peer: -1})                   // never limited
	m.Note(1010*ms, channel.Event{Kind: channel.EventSlowConsumer, Peer: 9, Err: errSlow}) // a second on, peer 9 undeclared: -1
	rd := m.Ready()
	var got []string
	for _, ev := range rd.Events {
		got = append(got, fmt.Sprintf("%s %d", ev.Kind, ev.Peer))
	}
	m.Advance(rd)
	want := "slow-consumer -1,malformed 1,reconnect -1,reconnect -1,slow-consumer -1"
	if strings.Join(got, ",") != want {
		t.Fatalf("events %v, want %s", got, want)
	}
}
