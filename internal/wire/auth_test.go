package wire

import (
	"bytes"
	"errors"
	"testing"
)

// TestAuthBindsSender: a rank's keys open its own messages and frames; a
// rank holding its own keys cannot make a report pass for another rank's,
// a control message pass for the coordinator's, or a pair key of another
// pair; the encoded rank keys decode to the same keys and refuse another
// rank's or world's.
func TestAuthBindsSender(t *testing.T) {
	k := NewJobKey()
	const world = 5
	r1, r2 := k.RankKeys(1, world), k.RankKeys(2, world)

	st := EncodeRank(&Status{RankHeader: RankHeader{Rank: 1, Spawn: 1, G: 1}, State: StateRunning, Peer: -1})
	sealed := NewMAC(r1.Report).Seal(DomainReport, append([]byte(nil), st...))
	if got, err := NewMAC(k.ReportKey(1)).Open(DomainReport, sealed); err != nil || !bytes.Equal(got, st) {
		t.Fatalf("the coordinator cannot open rank 1's report: %v", err)
	}
	// Rank 2 claims rank 1 with the key it holds.
	forged := NewMAC(r2.Report).Seal(DomainReport, append([]byte(nil), st...))
	if _, err := NewMAC(k.ReportKey(1)).Open(DomainReport, forged); !errors.Is(err, ErrAuth) {
		t.Fatalf("rank 2's forgery of rank 1's report: %v", err)
	}
	// A report's tag is no result's tag.
	if _, err := NewMAC(k.ReportKey(1)).Open(DomainResult, sealed); !errors.Is(err, ErrAuth) {
		t.Fatalf("a report's tag passed as a result's: %v", err)
	}
	if r, ok := ClaimedRank(sealed); !ok || r != 1 {
		t.Fatalf("claimed rank %d %v", r, ok)
	}

	ctl := EncodeCoord(&Stop{CoordHeader: CoordHeader{CGen: 1, G: 1}, Code: 3, Reason: "x"})
	signed := SignCoord(k.ControlKey(), append([]byte(nil), ctl...))
	if got, err := OpenCoord(r2.Control, signed); err != nil || !bytes.Equal(got, ctl) {
		t.Fatalf("rank 2 cannot open the coordinator's Stop: %v", err)
	}
	other := NewJobKey() // another run's coordinator, or anyone's key
	if _, err := OpenCoord(r2.Control, SignCoord(other.ControlKey(), append([]byte(nil), ctl...))); !errors.Is(err, ErrAuth) {
		t.Fatalf("a Stop signed by another key: %v", err)
	}
	signed[3] ^= 1
	if _, err := OpenCoord(r2.Control, signed); !errors.Is(err, ErrAuth) {
		t.Fatalf("an altered Stop: %v", err)
	}
	if _, err := OpenCoord(r2.Control, ctl); !errors.Is(err, ErrAuth) {
		t.Fatalf("an unsigned Stop: %v", err)
	}

	p12, _ := r1.PairKey(2)
	p21, _ := r2.PairKey(1)
	p20, _ := r2.PairKey(0)
	if p12 != p21 || p12 != k.PairKey(1, 2) || p20 == p12 {
		t.Fatalf("pair keys do not match per pair")
	}
	if _, ok := r1.PairKey(1); ok {
		t.Fatalf("a pair key of a rank with itself")
	}

	enc := r1.Encode()
	dec, err := DecodeRankKeys(enc, 1, world)
	if err != nil {
		t.Fatal(err)
	}
	if dec.Report != r1.Report || !bytes.Equal(dec.Control, r1.Control) {
		t.Fatalf("decoded keys differ")
	}
	for p := range world {
		a, _ := dec.PairKey(p)
		b, _ := r1.PairKey(p)
		if a != b {
			t.Fatalf("decoded pair key of %d differs", p)
		}
	}
	if _, err := DecodeRankKeys(enc, 2, world); err == nil {
		t.Fatalf("rank 1's keys accepted as rank 2's")
	}
	if _, err := DecodeRankKeys(enc, 1, world+1); err == nil {
		t.Fatalf("keys of a world of %d accepted for %d", world, world+1)
	}
	if _, err := ParseJobKey(k.Hex()); err != nil {
		t.Fatal(err)
	}
	if s := k.String() + r1.String(); bytes.Contains([]byte(s), []byte(k.Hex()[:8])) {
		t.Fatalf("a key's String shows it: %s", s)
	}
}

func FuzzDecodeRankKeys(f *testing.F) {
	f.Add(NewJobKey().RankKeys(0, 2).Encode(), 0, 2)
	f.Add("", 0, 1)
	f.Fuzz(func(t *testing.T, s string, rank, world int) {
		if world > 4096 {
			return
		}
		_, _ = DecodeRankKeys(s, rank, world)
	})
}

// BenchmarkAuth: the per-message cost of authentication on the control
// path: the coordinator signs a Beat, a rank checks it; a rank tags a
// Status, the coordinator checks it.
func BenchmarkAuth(b *testing.B) {
	k := NewJobKey()
	priv, pub := k.ControlKey(), k.RankKeys(0, 4).Control
	beat := EncodeCoord(&Beat{CoordHeader: CoordHeader{CGen: 1, G: 1}, Phase: JobRunning, Epoch: 3, Step: 100, State: EpochCommitted, LastCommitted: 2})
	signed := SignCoord(priv, append([]byte(nil), beat...))
	b.Run("control-sign", func(b *testing.B) {
		for b.Loop() {
			SignCoord(priv, append(make([]byte, 0, len(beat)+SigLen), beat...))
		}
	})
	b.Run("control-verify", func(b *testing.B) {
		for b.Loop() {
			if _, err := OpenCoord(pub, signed); err != nil {
				b.Fatal(err)
			}
		}
	})
	st := EncodeRank(&Status{RankHeader: RankHeader{Rank: 1, Spawn: 1, G: 1}, State: StateRunning, Step: 100, Peer: -1})
	mac := NewMAC(k.ReportKey(1))
	sealed := mac.Seal(DomainReport, append([]byte(nil), st...))
	b.Run("report-seal", func(b *testing.B) {
		buf := make([]byte, 0, len(st)+TagLen)
		for b.Loop() {
			buf = mac.Seal(DomainReport, append(buf[:0], st...))
		}
	})
	b.Run("report-open", func(b *testing.B) {
		for b.Loop() {
			if _, err := mac.Open(DomainReport, sealed); err != nil {
				b.Fatal(err)
			}
		}
	})
}
