package channel

import (
	"encoding/hex"
	"testing"
)

// TestWireGolden pins the wire format, version 2, to its bytes: a change
// here breaks every job with ranks of both versions. Version 2 frames are
// version 1's but for the version byte (the trailer of authenticated
// frames changed: docs/format.md, Authentication).
func TestWireGolden(t *testing.T) {
	cases := []struct {
		h       Header
		payload string
		want    string
	}{
		{Header{Type: TypeData, From: 1, To: 2, G: 3, Session: 0xabc, Seq: 7, MsgLen: 10, Offset: 4, Tx: 9}, "fragm6",
			"020100000100000002000000000000000300000000000000bc0a00000000000007000000000000000a0000000000000004000000000000000900000000000000667261676d36"},
		{Header{Type: TypeAck, Flags: FlagNackAll | FlagHello, From: 2, To: 1, G: 3, Session: 0xdef, Cum: 5, Credited: 4096, GapEnd: 9, PeerSession: 0xabc, LastTx: 12}, "",
			"020203000200000001000000000000000300000000000000ef0d000000000000050000000000000000100000000000000900000000000000bc0a0000000000000c00000000000000"},
		{Header{Type: TypeProbe, From: 1, To: 2, G: 3, Session: 0xabc}, "",
			"020300000100000002000000000000000300000000000000bc0a000000000000"},
		{Header{Type: TypeGone, From: 1, To: 2, G: 3, Session: 0xabc}, "",
			"020400000100000002000000000000000300000000000000bc0a000000000000"},
	}
	for _, c := range cases {
		b := AppendFrame(nil, &c.h, []byte(c.payload))
		if got := hex.EncodeToString(b); got != c.want {
			t.Errorf("type %d encodes to\n%s\nwant\n%s", c.h.Type, got, c.want)
		}
		h, p, err := DecodeFrame(b, 1<<20)
		if err != nil || h != c.h || string(p) != c.payload {
			t.Errorf("type %d decodes to %+v %q %v", c.h.Type, h, p, err)
		}
	}
}
