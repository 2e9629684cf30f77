package channel

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
	"time"
)

func seedFrames() [][]byte {
	d := Header{Type: TypeData, From: 1, To: 2, G: 3, Session: 0xabc, Seq: 7, MsgLen: 10, Offset: 4, Tx: 9}
	a := Header{Type: TypeAck, Flags: FlagNackAll | FlagHello, From: 2, To: 1, G: 3, Session: 0xdef,
		Cum: 5, Credited: 4096, GapEnd: 9, PeerSession: 0xabc, LastTx: 12}
	p := Header{Type: TypeProbe, From: 1, To: 2, G: 3, Session: 0xabc}
	g := Header{Type: TypeGone, From: 1, To: 2, G: 3, Session: 0xabc}
	e := Header{Type: TypeData, From: 0, To: 0, G: 1, Session: 1, Seq: 1, Tx: 1}
	full := AppendFrame(nil, &d, []byte("fragm6"))
	return [][]byte{
		full,
		AppendFrame(nil, &a, nil),
		AppendFrame(nil, &p, nil),
		AppendFrame(nil, &g, nil),
		AppendFrame(nil, &e, nil),
		full[:40],
		full[:DataHeaderLen],
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
		h, payload, err := DecodeFrame(b, maxMsg)
		if err != nil {
			if !errors.Is(err, ErrMalformedFrame) {
				t.Fatalf("error %v does not wrap ErrMalformedFrame", err)
			}
			return
		}
		if h.G == 0 || h.Session == 0 || h.From > MaxRankOnWire || h.To > MaxRankOnWire {
			t.Fatalf("accepted %+v", h)
		}
		if h.Type == TypeData {
			if h.Seq == 0 || h.MsgLen > maxMsg || h.Offset+uint64(len(payload)) > h.MsgLen {
				t.Fatalf("accepted data %+v with %d payload bytes", h, len(payload))
			}
		}
		if re := AppendFrame(nil, &h, payload); !bytes.Equal(re, b) {
			t.Fatalf("re-encoding differs:\n in %x\nout %x", b, re)
		}
	})
}

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
		m, err := New(Config{Self: 0, Peers: []int{1}, Window: 256, MaxMessage: 400, FragPayload: 40,
			AckTimeout: time.Millisecond, MaxBackoff: time.Millisecond, AckDelay: time.Millisecond}, 1, 1, 0)
		if err != nil {
			t.Fatal(err)
		}
		sessions := [2]uint64{0x1111, 0x2222}
		for tx := uint64(1); len(in) >= 8; tx++ {
			r := in[:8]
			in = in[8:]
			h := Header{Type: TypeData, From: 1, To: 0, G: 1, Session: sessions[r[1]&1], Tx: tx}
			switch r[0] % 8 {
			case 3:
				h.Type = TypeProbe
			case 4:
				h.Type = TypeGone
			}
			h.Seq = uint64(r[2] % 24)
			h.MsgLen = uint64(binary.LittleEndian.Uint16(r[3:]) % 512)
			h.Offset = uint64(binary.LittleEndian.Uint16(r[5:]) % 512)
			payload := make([]byte, int(r[7])%48)
			for i := range payload {
				payload[i] = byte(h.Offset) + byte(i) // byte k of a message is k mod 256
			}
			m.Receive(int64(tx), DataSub, AppendFrame(nil, &h, payload))

			rc := m.recv[1]
			if rc.oooBytes > m.oooLimit || len(rc.ooo) > int(m.maxAhead) {
				t.Fatalf("reorder buffer over its bound: %d bytes, %d frames", rc.oooBytes, len(rc.ooo))
			}
			if uint64(len(rc.asm)) > rc.asmLen || rc.asmLen > uint64(m.cfg.MaxMessage) {
				t.Fatalf("reassembly of %d/%d bytes", len(rc.asm), rc.asmLen)
			}
			rd := m.Ready()
			for _, d := range rd.Deliver {
				if len(d.Msg) > m.cfg.MaxMessage {
					t.Fatalf("delivered %d bytes", len(d.Msg))
				}
				for k, c := range d.Msg {
					if c != byte(k) {
						t.Fatalf("delivered message byte %d is %d: not assembled from consecutive fragments", k, c)
					}
				}
			}
			m.Advance(rd)
		}
	})
}
