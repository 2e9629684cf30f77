package transport_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

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

// sealed is a frame with the trailer an endpoint holding pair key key
// appends under nonce n: written from docs/format.md (Authentication), not
// from the code, so that the two cannot drift apart unnoticed. The frame
// key is DeriveKey("cutpoint 2026-12-02 frame key v2", pair key ‖ u32 from
// ‖ u32 to ‖ u64 g ‖ u64 session), big-endian; the trailer is u64 n
// (little-endian) then AES-256-GCM's tag of no plaintext with the frame as
// additional data, under the nonce 0^32 ‖ the trailer's 8 bytes.
func sealed(key [32]byte, frame []byte, n uint64) []byte {
	var in [56]byte
	copy(in[:], key[:])
	copy(in[32:36], be32(binary.LittleEndian.Uint32(frame[4:])))
	copy(in[36:40], be32(binary.LittleEndian.Uint32(frame[8:])))
	binary.BigEndian.PutUint64(in[40:], binary.LittleEndian.Uint64(frame[16:]))
	binary.BigEndian.PutUint64(in[48:], binary.LittleEndian.Uint64(frame[24:]))
	var fk [32]byte
	blake3.DeriveKey("cutpoint 2026-12-02 frame key v2", in[:], fk[:])
	blk, err := aes.NewCipher(fk[:])
	if err != nil {
		panic(err)
	}
	gcm, err := cipher.NewGCM(blk)
	if err != nil {
		panic(err)
	}
	var iv [12]byte
	binary.LittleEndian.PutUint64(iv[4:], n)
	out := append(append([]byte(nil), frame...), iv[4:]...)
	return gcm.Seal(out, iv[:], nil, frame)
}

func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

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
		sealed([32]byte{9}, forge(1, []byte("a key of its own")), 1),
		sealed(pairKey(2, 0), forge(1, []byte("rank 2's key, claiming rank 1")), 1),
		sealed(pairKey(0, 1), forge(5, []byte("the right key, an undeclared rank")), 1),
		{1, 2, 3},
	}
	flipped := sealed(pairKey(0, 1), forge(1, []byte("genuine but altered")), 1)
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

// tRankLog is a recorder that counts the malformed-frame events and keeps
// their errors.
type tRankLog struct {
	*recorder
	n    int
	errs []string
}

func (r *tRankLog) Event(ev transport.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ev.Kind == transport.EventMalformed {
		r.n++
		if ev.Err != nil {
			r.errs = append(r.errs, ev.Err.Error())
		}
	}
}

func (r *tRankLog) errors() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.errs...)
}

func (r *tRankLog) malformed() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

// BenchmarkFrameTag: tagging one frame on the sender (seal) and checking
// it on the receiver (open), the endpoint's own code: GMAC over the header
// and payload under the frame key (BenchmarkFrameMAC compares the
// candidates).
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

// TestFrameTrailerFormat: the endpoint's trailer is the one docs/format.md
// describes (sealed), every frame it seals gets a nonce of its own, and
// the key depends on the direction, the incarnation and the session: the
// same bytes under another (from, to, g, session) fail.
func TestFrameTrailerFormat(t *testing.T) {
	seal, _, err := transport.FrameAuth(pairKeys{self: 1, world: 3}, []int{0, 2})
	if err != nil {
		t.Fatal(err)
	}
	_, open, err := transport.FrameAuth(pairKeys{self: 0, world: 3}, []int{1, 2})
	if err != nil {
		t.Fatal(err)
	}
	frame := transport.DataFrame(1, 0, 4, 0xfeed, 1, 5, 0, []byte("hello"))
	nonces := map[uint64]bool{}
	for i := range 3 {
		for _, to := range []int{0, 2, 0} {
			f := transport.DataFrame(1, to, 4, 0xfeed+uint64(i), 1, 5, 0, []byte("hello"))
			b := seal(to, append([]byte(nil), f...))
			if len(b) != len(f)+transport.TagLen {
				t.Fatalf("sealed frame of %d bytes, want %d", len(b), len(f)+transport.TagLen)
			}
			n := binary.LittleEndian.Uint64(b[len(f):])
			if nonces[n] {
				t.Fatalf("nonce %d sealed twice", n)
			}
			nonces[n] = true
			if want := sealed(pairKey(1, to), f, n); !bytes.Equal(b, want) {
				t.Fatalf("frame to %d sealed as\n%x\nthe format says\n%x", to, b, want)
			}
		}
	}
	if err := open(sealed(pairKey(0, 1), frame, 7)); err != nil {
		t.Fatalf("a genuine frame fails: %v", err)
	}
	for name, f := range map[string][]byte{
		"another incarnation's key": retag(frame, pairKey(0, 1), func(h []byte) { h[16]++ }),
		"another session's key":     retag(frame, pairKey(0, 1), func(h []byte) { h[24]++ }),
		"the other direction's key": retag(frame, pairKey(0, 1), func(h []byte) { h[4], h[8] = h[8], h[4] }),
		"version 1":                 append([]byte{1}, sealed(pairKey(0, 1), frame, 7)[1:]...),
	} {
		if err := open(f); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := open(append([]byte{1}, sealed(pairKey(0, 1), frame, 7)[1:]...)); err == nil || !strings.Contains(err.Error(), "version 1") {
		t.Errorf("a version 1 frame fails with %v, want an error naming its version", err)
	}
}

// retag is frame sealed under a key whose header fields edit changed, with
// the original header put back: the tag of another (from, to, g, session)
// on this frame's bytes.
func retag(frame []byte, key [32]byte, edit func(h []byte)) []byte {
	other := append([]byte(nil), frame...)
	edit(other)
	b := sealed(key, other, 7)
	copy(b, frame[:channel.CommonHeaderLen])
	return b
}

// TestTamperedFramesDropped: genuine frames taken off the wire by a client
// with the server's token but no keys and sent on altered (a header byte,
// a payload byte, the nonce), to another pair's receiver, turned around,
// or relabelled as frame format version 1 are dropped and counted as
// failing authentication; a genuine frame replayed in its incarnation is a
// duplicate, one replayed after the receiver moved on to a later
// incarnation is stale: counted, never delivered.
func TestTamperedFramesDropped(t *testing.T) {
	srv := natstest.Run(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
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
	attacker := natstest.Connect(t, srv.URL())
	wire := map[string]chan []byte{}
	for _, c := range [][2]int{{1, 0}, {0, 1}, {1, 2}} {
		subj := transport.DataSubject("unit", 1, c[1], c[0])
		ch := make(chan []byte, 16)
		wire[subj] = ch
		if _, err := attacker.Subscribe(subj, func(m *nats.Msg) { ch <- m.Data }); err != nil {
			t.Fatal(err)
		}
	}
	if err := attacker.Flush(); err != nil {
		t.Fatal(err)
	}
	take := func(from, to int, msg string) []byte {
		t.Helper()
		if err := eps[from].Enqueue(to, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		select {
		case b := <-wire[transport.DataSubject("unit", 1, to, from)]:
			return b
		case <-ctx.Done():
			t.Fatalf("no frame %d->%d seen", from, to)
			return nil
		}
	}
	f10 := take(1, 0, "one to zero")
	f01 := take(0, 1, "zero to one")
	f12 := take(1, 2, "one to two")
	waitFor(ctx, t, "the genuine messages", func() bool {
		return len(hs[0].from(1)) == 1 && len(hs[1].from(0)) == 1 && len(hs[2].from(1)) == 1
	})
	edit := func(b []byte, f func(c []byte)) []byte {
		c := append([]byte(nil), b...)
		f(c)
		return c
	}
	n := len(f10) - transport.TagLen
	forged := [][]byte{
		edit(f10, func(c []byte) { c[32]++ }),          // the header's seq
		edit(f10, func(c []byte) { c[16] ^= 0x80 }),    // the header's incarnation
		edit(f10, func(c []byte) { c[n-1] ^= 1 }),      // the payload
		edit(f10, func(c []byte) { c[n]++ }),           // the nonce
		edit(f10, func(c []byte) { c[len(c)-1] ^= 1 }), // the tag
		f12,                                    // another pair's frame, as it was
		edit(f12, func(c []byte) { c[8] = 0 }), // another pair's frame, readdressed
		edit(f01, func(c []byte) { c[4], c[8] = c[8], c[4] }), // turned around
		edit(f10, func(c []byte) { c[0] = 1 }),                // frame format version 1
		f10[:channel.CommonHeaderLen+transport.TagLen-1],      // cut short: no room for a trailer
	}
	to0 := transport.DataSubject("unit", 1, 0, 1)
	for _, f := range forged {
		if err := attacker.Publish(to0, f); err != nil {
			t.Fatal(err)
		}
	}
	if err := attacker.Flush(); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, "every forged frame counted", func() bool { return eps[0].Stats().AuthDropped == uint64(len(forged)) })
	// Events reach the Handler after the counter moves (the deliverer
	// calls it, after the writer took them from the machine's Ready).
	waitFor(ctx, t, "an event naming the version 1 frame", func() bool {
		return slices.ContainsFunc(hs[0].errors(), func(e string) bool { return strings.Contains(e, "version 1") })
	})

	// Replayed whole: a duplicate in its incarnation, stale after it.
	dup := eps[0].Stats().Duplicates
	if err := attacker.Publish(to0, f10); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, "the replay counted as a duplicate", func() bool { return eps[0].Stats().Duplicates > dup })
	for _, ep := range eps {
		if err := ep.Reset(ctx, 2); err != nil {
			t.Fatal(err)
		}
	}
	stale := eps[0].Stats().StaleDropped
	if err := attacker.Publish(transport.DataSubject("unit", 2, 0, 1), f10); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, "the replay from incarnation 1 counted as stale", func() bool { return eps[0].Stats().StaleDropped > stale })

	if err := eps[1].Enqueue(0, []byte("after")); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, "a genuine message in incarnation 2", func() bool { return len(hs[0].from(1)) == 2 })
	got := hs[0].from(1)
	if string(got[0]) != "one to zero" || string(got[1]) != "after" || len(hs[0].from(2)) != 0 {
		t.Fatalf("rank 0 got %q from rank 1 and %q from rank 2", got, hs[0].from(2))
	}
	if st := eps[0].Stats(); st.AuthDropped != uint64(len(forged)) || st.Malformed != 0 {
		t.Fatalf("after the replays: %+v", st)
	}
}

// FuzzOpenFrame: checking a frame never panics, and whatever it accepts
// is one of the frames a genuine sender sealed (any other bytes are a
// forgery that got through).
func FuzzOpenFrame(f *testing.F) {
	seal, _, err := transport.FrameAuth(pairKeys{self: 1, world: 3}, []int{0})
	if err != nil {
		f.Fatal(err)
	}
	_, open, err := transport.FrameAuth(pairKeys{self: 0, world: 3}, []int{1, 2})
	if err != nil {
		f.Fatal(err)
	}
	var genuine [][]byte
	for _, fr := range [][]byte{
		transport.DataFrame(1, 0, 1, 9, 1, 5, 0, []byte("hello")),
		transport.DataFrame(1, 0, 2, 10, 3, 1, 0, []byte("x")),
		transport.AckFrame(1, 0, 1, 9, 4, 100, 0, 8, 0),
	} {
		b := seal(0, fr)
		genuine = append(genuine, b)
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add(make([]byte, channel.CommonHeaderLen+transport.TagLen))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 1<<16 {
			return
		}
		if err := open(b); err == nil && !slices.ContainsFunc(genuine, func(g []byte) bool { return bytes.Equal(g, b) }) {
			t.Fatalf("a frame no sender sealed passes: %x", b)
		}
	})
}
