package transport

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/nats-io/nats.go"
)

func seedFrames() [][]byte {
	d := header{typ: typeData, from: 1, to: 2, g: 3, session: 0xabc, seq: 7, msgLen: 10, offset: 4, tx: 9}
	a := header{typ: typeAck, flags: flagNackAll | flagHello, from: 2, to: 1, g: 3, session: 0xdef,
		cum: 5, credited: 4096, gapEnd: 9, peerSession: 0xabc, lastTx: 12}
	p := header{typ: typeProbe, from: 1, to: 2, g: 3, session: 0xabc}
	g := header{typ: typeGone, from: 1, to: 2, g: 3, session: 0xabc}
	e := header{typ: typeData, from: 0, to: 0, g: 1, session: 1, seq: 1, tx: 1}
	full := appendFrame(nil, &d, []byte("fragm6"))
	return [][]byte{
		full,
		appendFrame(nil, &a, nil),
		appendFrame(nil, &p, nil),
		appendFrame(nil, &g, nil),
		appendFrame(nil, &e, nil),
		full[:40],
		full[:dataHdrLen],
		{},
		{1},
		bytes.Repeat([]byte{0xff}, 64),
	}
}

// FuzzDecodeFrame: the decoder never panics, rejects with
// ErrMalformedFrame, and what it accepts re-encodes to the same bytes.
func FuzzDecodeFrame(f *testing.F) {
	for _, b := range seedFrames() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		const maxMsg = 1 << 20
		h, payload, err := decodeFrame(b, maxMsg)
		if err != nil {
			if !errors.Is(err, ErrMalformedFrame) {
				t.Fatalf("error %v does not wrap ErrMalformedFrame", err)
			}
			return
		}
		if h.g == 0 || h.session == 0 || h.from > maxRankOnWire || h.to > maxRankOnWire {
			t.Fatalf("accepted %+v", h)
		}
		if h.typ == typeData {
			if h.seq == 0 || h.msgLen > maxMsg || h.offset+uint64(len(payload)) > h.msgLen {
				t.Fatalf("accepted data %+v with %d payload bytes", h, len(payload))
			}
		}
		if re := appendFrame(nil, &h, payload); !bytes.Equal(re, b) {
			t.Fatalf("re-encoding differs:\n in %x\nout %x", b, re)
		}
	})
}

type nopHandler struct{}

func (nopHandler) Deliver(int, uint64, []byte) {}
func (nopHandler) Event(Event)                 {}

// FuzzReceive feeds hostile but well-framed sequences of frames (any seq,
// lengths, offsets and sessions, from two sessions of one peer) into the
// receive path of an endpoint and checks that it never panics, keeps its
// buffers within their bounds, and only hands up messages whose length was
// announced and that were assembled from consecutive fragments.
func FuzzReceive(f *testing.F) {
	f.Add([]byte{0, 0, 1, 10, 0, 0, 0, 10})                            // a whole 10-byte message
	f.Add([]byte{0, 0, 1, 20, 0, 0, 0, 10, 0, 0, 2, 20, 0, 10, 0, 10}) // two fragments
	f.Add([]byte{0, 0, 2, 20, 0, 10, 0, 10, 0, 0, 1, 20, 0, 0, 0, 10}) // reordered
	f.Add([]byte{0, 0, 1, 5, 0, 0, 0, 5, 0, 1, 1, 5, 0, 0, 0, 5})      // session change
	f.Add([]byte{4, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0})      // gone, probe
	f.Fuzz(func(t *testing.T, in []byte) {
		cfg, err := Options{Job: "f", Self: 0, Peers: []int{1}, G: 1, Window: 256, MaxMessage: 400}.normalize()
		if err != nil {
			t.Fatal(err)
		}
		e := newEndpoint(nil, cfg, minFrame+32, nopHandler{})
		defer e.ackTimer.Stop()
		sessions := [2]uint64{0x1111, 0x2222}
		for tx := uint64(1); len(in) >= 8; tx++ {
			r := in[:8]
			in = in[8:]
			h := header{typ: typeData, from: 1, to: 0, g: 1, session: sessions[r[1]&1], tx: tx}
			switch r[0] % 8 {
			case 3:
				h.typ = typeProbe
			case 4:
				h.typ = typeGone
			}
			h.seq = uint64(r[2] % 24)
			h.msgLen = uint64(binary.LittleEndian.Uint16(r[3:]) % 512)
			h.offset = uint64(binary.LittleEndian.Uint16(r[5:]) % 512)
			payload := make([]byte, int(r[7])%48)
			for i := range payload {
				payload[i] = byte(h.offset) + byte(i) // byte k of a message is k mod 256
			}
			e.onData(&nats.Msg{Data: appendFrame(nil, &h, payload)})

			e.mu.Lock()
			rc := e.recv[1]
			if rc.oooBytes > e.oooLimit || len(rc.ooo) > int(e.maxAhead) {
				t.Fatalf("reorder buffer over its bound: %d bytes, %d frames", rc.oooBytes, len(rc.ooo))
			}
			if uint64(len(rc.asm)) > rc.asmLen || rc.asmLen > e.maxMsg {
				t.Fatalf("reassembly of %d/%d bytes", len(rc.asm), rc.asmLen)
			}
			for _, u := range e.dq[e.dqHead:] {
				if u.ev != nil {
					continue
				}
				if uint64(len(u.msg)) > e.maxMsg {
					t.Fatalf("delivered %d bytes", len(u.msg))
				}
				for k, c := range u.msg {
					if c != byte(k) {
						t.Fatalf("delivered message byte %d is %d: not assembled from consecutive fragments", k, c)
					}
				}
			}
			e.dq, e.dqHead, e.dqEvents = e.dq[:0], 0, 0
			e.mu.Unlock()
		}
	})
}
