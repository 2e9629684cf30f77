package transport_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/zeebo/blake3"

	"github.com/cutpoint/cutpoint/rank/transport"
	"github.com/cutpoint/cutpoint/rank/transport/channel"
	"github.com/cutpoint/cutpoint/rank/transport/natstest"
)

// pairKeys are the pair keys rank self holds: a test's own derivation (the
// launcher's is internal/wire's), a key for each unordered pair.
type pairKeys struct{ self, world int }

func pairKey(a, b int) [32]byte {
	var in [8]byte
	binary.BigEndian.PutUint32(in[:], uint32(min(a, b)))
	binary.BigEndian.PutUint32(in[4:], uint32(max(a, b)))
	var k [32]byte
	blake3.DeriveKey("cutpoint transport test pair key", in[:], k[:])
	return k
}

func (p pairKeys) PairKey(peer int) ([32]byte, bool) {
	if peer == p.self || peer < 0 || peer >= max(p.world, 3) {
		return [32]byte{}, false
	}
	return pairKey(p.self, peer), true
}

// sealed is a frame with its tag under key, as an Endpoint with Keys sends
// it.
func sealed(key [32]byte, frame []byte) []byte {
	h, _ := blake3.NewKeyed(key[:])
	_, _ = h.Write([]byte{3})
	_, _ = h.Write(frame)
	return append(frame, h.Sum(nil)[:transport.TagLen]...)
}

// TestForgedFramesDropped: endpoints with keys deliver each other's
// messages; frames of a client that holds the server's token but no key
// (untagged, or tagged with a key of its own), frames of rank 2 claiming to
// be rank 1 (tagged with the keys rank 2 holds), and a genuine frame with
// one byte changed are all dropped and counted, never delivered.
func TestForgedFramesDropped(t *testing.T) {
	srv := natstest.Run(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var eps [3]*transport.Endpoint
	var hs [3]*tRankLog
	for i := range eps {
		hs[i] = &tRankLog{recorder: newRecorder()}
		ep, err := transport.Open(ctx, natstest.Connect(t, srv.URL()), transport.Options{
			Job: "unit", Self: i, Peers: []int{0, 1, 2}, G: 1, Keys: pairKeys{self: i, world: 3}}, hs[i])
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ep.Close() })
		eps[i] = ep
	}
	if err := eps[1].Enqueue(0, []byte("genuine")); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, "the genuine message", func() bool { return len(hs[0].from(1)) == 1 })

	attacker := natstest.Connect(t, srv.URL())
	forge := func(from int, payload []byte) []byte {
		h := channel.Header{Type: channel.TypeData, From: uint32(from), To: 0, G: 1, Session: 77,
			Seq: 1 << 10, MsgLen: uint64(len(payload)), Tx: 1 << 20}
		return channel.AppendFrame(nil, &h, payload)
	}
	subj := "cp.unit.1.d.0.1"
	frames := [][]byte{
		forge(1, []byte("no tag at all")),
		sealed([32]byte{9}, forge(1, []byte("a key of its own"))),
		sealed(pairKey(2, 0), forge(1, []byte("rank 2's key, claiming rank 1"))),
		sealed(pairKey(0, 1), forge(5, []byte("the right key, an undeclared rank"))),
		{1, 2, 3},
	}
	flipped := sealed(pairKey(0, 1), forge(1, []byte("genuine but altered")))
	flipped[channel.DataHeaderLen] ^= 1
	frames = append(frames, flipped)
	for _, f := range frames {
		if err := attacker.Publish(subj, f); err != nil {
			t.Fatal(err)
		}
	}
	if err := attacker.Flush(); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, "every forged frame counted", func() bool { return eps[0].Stats().AuthDropped == uint64(len(frames)) })
	// The channel still works, and nothing forged reached the handler.
	if err := eps[1].Enqueue(0, []byte("after")); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, "the second genuine message", func() bool { return len(hs[0].from(1)) == 2 })
	got := hs[0].from(1)
	if !bytes.Equal(got[0], []byte("genuine")) || !bytes.Equal(got[1], []byte("after")) {
		t.Fatalf("rank 0 got %q from rank 1", got)
	}
	if n := len(hs[0].from(5)) + len(hs[0].from(2)); n != 0 {
		t.Fatalf("rank 0 got %d messages from ranks that sent none", n)
	}
	if st := eps[0].Stats(); st.Malformed != 0 || st.AheadDropped != 0 {
		t.Fatalf("forged frames reached the machine: %+v", st)
	}
	if hs[0].malformed() == 0 {
		t.Fatalf("no event reported the forged frames")
	}
}

// tRankLog is a recorder that counts the malformed-frame events.
type tRankLog struct {
	*recorder
	n int
}

func (r *tRankLog) Event(ev transport.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ev.Kind == transport.EventMalformed {
		r.n++
	}
}

func (r *tRankLog) malformed() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

// BenchmarkFrameTag: tagging one frame on the sender (seal) and checking
// it on the receiver (open), the endpoint's own code: keyed BLAKE3 over
// the header and payload.
func BenchmarkFrameTag(b *testing.B) {
	seal, _, err := transport.FrameAuth(pairKeys{self: 1, world: 2}, []int{0})
	if err != nil {
		b.Fatal(err)
	}
	_, open, err := transport.FrameAuth(pairKeys{self: 0, world: 2}, []int{1})
	if err != nil {
		b.Fatal(err)
	}
	for _, size := range []int{64, 4 << 10, 64 << 10, 1 << 20} {
		h := channel.Header{Type: channel.TypeData, From: 1, To: 0, G: 1, Session: 1, Seq: 1, MsgLen: uint64(size), Tx: 1}
		frame := channel.AppendFrame(nil, &h, make([]byte, size))
		b.Run("seal/"+sizeName(size), func(b *testing.B) {
			buf := make([]byte, 0, len(frame)+transport.TagLen)
			b.SetBytes(int64(len(frame)))
			for b.Loop() {
				buf = seal(0, append(buf[:0], frame...))
			}
		})
		sealed := seal(0, append([]byte(nil), frame...))
		b.Run("open/"+sizeName(size), func(b *testing.B) {
			b.SetBytes(int64(len(sealed)))
			for b.Loop() {
				if err := open(sealed); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
