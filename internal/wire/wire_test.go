package wire

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func sampleRankMsgs() []RankMsg {
	h := RankHeader{Rank: 3, Spawn: 2, G: 5}
	return []RankMsg{
		&Status{RankHeader: h, State: StateRunning, Step: 41, Epoch: 7, EStep: 44, Phase: PhaseCaptured, Peer: -1},
		&Status{RankHeader: h, State: StateWaitGo, Step: 40, Epoch: 0, Phase: PhaseNone, Peer: -1, Cut: 6,
			Total: 1000, Hello: &Hello{Peers: []int{0, 2, 4, 1000, 65535}}},
		&Status{RankHeader: h, State: StateRunning, Step: 9, Epoch: 8, Phase: PhaseAborted, Reason: ReasonBlocked, Peer: 2},
		&Status{RankHeader: RankHeader{Rank: MaxWorld - 1}, State: StateFinished, Peer: -1, Hello: &Hello{}},
		&ShardReport{RankHeader: h, Epoch: 7, Step: 50, Ref: []byte("pack-5-3-abc"), Bytes: 1 << 30, Stored: 1 << 29,
			Counts: Counts{
				Out: []OutCount{{To: 2, Sent: 10}, {To: 3, Sent: 4}, {To: 4, Sent: 0}},
				In:  []InCount{{From: 2, Delivered: 9, First: 10, Recorded: 1}, {From: 3, Delivered: 4, First: 5}, {From: 4, First: 1}},
			}},
		&EpochAbort{RankHeader: h, Epoch: 9, Reason: ReasonLate, Peer: -1, Step: 77, Detail: "past S=70"},
		&EpochAbort{RankHeader: h, Epoch: 9, Reason: ReasonBlocked, Peer: 4, Step: 68},
		&Alarm{RankHeader: h, Kind: AlarmAlignment, Peer: 1, SendStep: 12, RecvStep: 11, Detail: "x"},
		&Alarm{RankHeader: h, Kind: AlarmChannelFault, Peer: 0, Detail: "gap: want seq 5, got 7"},
		&Alarm{RankHeader: h, Kind: AlarmCutDamaged, Peer: -1, Detail: "job j cut 3 rank 1 buffer \"u\" chunk 2: file p: hash mismatch", Cut: 3},
		&Alarm{RankHeader: h, Kind: AlarmRestoreFailed, Peer: -1, Detail: "buffer u has 5 bytes in the cut, 4 in the job", Cut: 9},
	}
}

func sampleCoordMsgs() []CoordMsg {
	h := CoordHeader{CGen: 2, G: 5}
	return []CoordMsg{
		&Go{CoordHeader: h},
		&Cut{CoordHeader: h, Epoch: 12, Step: 400},
		&Abort{CoordHeader: h, Epoch: 12},
		&Commit{CoordHeader: h, Epoch: 12, Step: 400},
		&Rollback{CoordHeader: h, Rank: 7, Spawn: 1, Epoch: 11, Step: 300},
		&Rollback{CoordHeader: h, Rank: 7, Spawn: 1},
		&Beat{CoordHeader: h, Phase: JobRunning, Epoch: 12, Step: 400, State: EpochInFlight, LastCommitted: 11},
		&Fence{CoordHeader: h, Rank: 7, Spawn: 1, Reason: "replaced by spawn 5"},
		&Stop{CoordHeader: h, Code: 5, Reason: "preempted after final cut 12"},
		&Cut{CoordHeader: h, Epoch: 13, Step: 500, Final: true},
	}
}

func TestRankRoundTrip(t *testing.T) {
	for _, m := range sampleRankMsgs() {
		b := EncodeRank(m)
		got, err := DecodeRank(b)
		if err != nil {
			t.Fatalf("%T: %v", m, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("%T: round trip\n got %+v\nwant %+v", m, got, m)
		}
		checkPrefixes(t, b, func(p []byte) error { _, err := DecodeRank(p); return err })
	}
}

func TestCoordRoundTrip(t *testing.T) {
	for _, m := range sampleCoordMsgs() {
		b := EncodeCoord(m)
		got, err := DecodeCoord(b)
		if err != nil {
			t.Fatalf("%T: %v", m, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("%T: round trip\n got %+v\nwant %+v", m, got, m)
		}
		if c, ok := m.(*Cut); ok && c.Final {
			// The flag is optional: without it the message is the same
			// cut, not final; every shorter prefix is still rejected.
			if got, err := DecodeCoord(b[:len(b)-1]); err != nil || got.(*Cut).Final {
				t.Fatalf("a cut without its final flag: %+v %v", got, err)
			}
			checkPrefixes(t, b[:len(b)-1], func(p []byte) error { _, err := DecodeCoord(p); return err })
			continue
		}
		checkPrefixes(t, b, func(p []byte) error { _, err := DecodeCoord(p); return err })
	}
}

// checkPrefixes: every strict prefix of a valid message is rejected with an
// error (never accepted, never a panic), and so is one trailing byte.
func checkPrefixes(t *testing.T, b []byte, dec func([]byte) error) {
	t.Helper()
	for i := 0; i < len(b); i++ {
		if err := dec(b[:i]); err == nil {
			t.Fatalf("prefix of %d/%d bytes accepted: %x", i, len(b), b)
		}
	}
	if err := dec(append(append([]byte{}, b...), 0)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("trailing byte: got %v, want ErrMalformed", err)
	}
}

func TestFrameRoundTrip(t *testing.T) {
	d := Data{G: 3, Seq: 17, Step: 99, Payload: []byte("halo")}
	b := AppendData(nil, d)
	if len(b) != DataHeaderLen+4 {
		t.Fatalf("data frame of %d bytes, want %d", len(b), DataHeaderLen+4)
	}
	f, err := DecodeFrame(b)
	if err != nil || f.Kind != KindData || !reflect.DeepEqual(f.Data, d) {
		t.Fatalf("data: %+v %v", f, err)
	}
	empty := AppendData(nil, Data{G: 1, Seq: 1})
	if f, err := DecodeFrame(empty); err != nil || len(f.Data.Payload) != 0 {
		t.Fatalf("empty payload: %+v %v", f, err)
	}
	m := Marker{G: 3, Epoch: 8, Step: 120, Sent: 55}
	mb := EncodeMarker(m)
	f, err = DecodeFrame(mb)
	if err != nil || f.Kind != KindMarker || f.Marker != m {
		t.Fatalf("marker: %+v %v", f, err)
	}
	checkPrefixes(t, mb, func(p []byte) error { _, err := DecodeFrame(p); return err })
	for i := 0; i < DataHeaderLen; i++ {
		if _, err := DecodeFrame(b[:i]); err == nil {
			t.Fatalf("data prefix %d accepted", i)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	cases := []struct {
		name string
		b    []byte
		dec  func([]byte) error
		want error
		text string
	}{
		{"version", []byte{9, KindGo, 0, 0}, func(b []byte) error { _, err := DecodeCoord(b); return err }, ErrVersion, "version 9"},
		{"coord kind", []byte{Version, 0x7f, 0, 0}, func(b []byte) error { _, err := DecodeCoord(b); return err }, ErrUnknownKind, "0x7f"},
		{"rank kind", []byte{Version, KindGo, 0, 0, 0}, func(b []byte) error { _, err := DecodeRank(b); return err }, ErrUnknownKind, "0x20"},
		{"frame kind", []byte{Version, KindStatus}, func(b []byte) error { _, err := DecodeFrame(b); return err }, ErrUnknownKind, "0x10"},
		{"cut epoch 0", []byte{Version, KindCut, 1, 1, 0, 2}, func(b []byte) error { _, err := DecodeCoord(b); return err }, ErrMalformed, "cut.epoch"},
		{"cut final flag 2", []byte{Version, KindCut, 1, 1, 1, 2, 2}, func(b []byte) error { _, err := DecodeCoord(b); return err }, ErrMalformed, "cut.final"},
		{"rank too big", append([]byte{Version, KindEpochAbort}, 0x80, 0x80, 0x40), func(b []byte) error { _, err := DecodeRank(b); return err }, ErrTooLarge, "rank"},
		{"huge peer count", func() []byte {
			b := appendRankHeader(nil, KindStatus, RankHeader{Rank: 1})
			b = append(b, byte(StateRunning))
			b = putI(b, 0)
			b = putU(b, 0)
			b = putI(b, 0)
			b = append(b, 0, 0)
			b = putOptRank(b, -1)
			b = putU(b, 0)
			b = putI(b, 0)
			b = putBool(b, true)
			return putU(b, 500000) // claims 500,000 peers with no bytes behind
		}(), func(b []byte) error { _, err := DecodeRank(b); return err }, ErrMalformed, "hello.peers"},
		{"stop code", []byte{Version, KindStop, 1, 1, 0x80, 0x02, 0}, func(b []byte) error { _, err := DecodeCoord(b); return err }, ErrMalformed, "stop.code"},
		{"data seq 0", AppendData(nil, Data{G: 1}), func(b []byte) error { _, err := DecodeFrame(b); return err }, ErrMalformed, "seq 0"},
	}
	for _, c := range cases {
		err := c.dec(c.b)
		if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.text) {
			t.Errorf("%s: got %v, want %v mentioning %q", c.name, err, c.want, c.text)
		}
	}
}

func sampleMeta() ShardMeta {
	return ShardMeta{Rank: 2, World: 5, Epoch: 4, Step: 30, G: 2, Peers: []int{1, 3},
		Counts: Counts{
			Out: []OutCount{{To: 1, Sent: 30}, {To: 2, Sent: 3}, {To: 3, Sent: 30}},
			In:  []InCount{{From: 1, Delivered: 29, First: 30, Recorded: 1}, {From: 2, Delivered: 3, First: 4}, {From: 3, Delivered: 30, First: 31}},
		}}
}

func TestShardMeta(t *testing.T) {
	m := sampleMeta()
	b := EncodeShardMeta(m)
	got, err := DecodeShardMeta(b)
	if err != nil || !reflect.DeepEqual(got, m) {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	checkPrefixes(t, b, func(p []byte) error { _, err := DecodeShardMeta(p); return err })
	bad := sampleMeta()
	bad.Counts.In[0].First = 7
	if _, err := DecodeShardMeta(EncodeShardMeta(bad)); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "recorded range") {
		t.Fatalf("bad range: %v", err)
	}
	bad = sampleMeta()
	bad.Peers = []int{3, 1}
	if _, err := DecodeShardMeta(EncodeShardMeta(bad)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("unsorted peers: %v", err)
	}
	bad = sampleMeta()
	bad.Counts.Out = bad.Counts.Out[:2]
	if _, err := DecodeShardMeta(EncodeShardMeta(bad)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("missing count: %v", err)
	}
}

func TestJobRecord(t *testing.T) {
	rec := JobRecord{Job: "heat-2d", World: 4, Seq: 3, Generation: 2, Incarnation: 3, EpochLimit: 2048,
		Recovery: &RecoveryIntent{Epoch: 1030, Step: 500, Lost: []int{1, 3}}, BadCuts: []uint64{1029, 1031}}
	b, err := EncodeJobRecord(rec)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeJobRecord(b)
	rec.Format = JobRecordFormat
	if err != nil || !reflect.DeepEqual(got, rec) {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	for _, c := range []struct{ in, text string }{
		{`{"format":1,"job":"a b","world":1,"generation":1,"incarnation":1}`, "job name"},
		{`{"format":2,"job":"a","world":1,"generation":1,"incarnation":1}`, "format 2"},
		{`{"format":1,"job":"a","world":0,"generation":1,"incarnation":1}`, "world 0"},
		{`{"format":1,"job":"a","world":2,"generation":1,"incarnation":1,"recovery":{"epoch":1,"step":3,"lost":[1,1]}}`, "lost ranks"},
		{`{"format":1,"job":"a","world":2,"generation":1,"incarnation":1,"extra":1}`, "unknown field"},
		{`{"format":1,"job":"a","world":2,"generation":1,"incarnation":1}{}`, "trailing"},
		{`{"format":1,"job":"a","world":2,"generation":1,"incarnation":1,"bad_cuts":[3,2]}`, "bad cuts"},
		{`{"format":1,"job":"a","world":2,"generation":1,"incarnation":1,"bad_cuts":[0]}`, "bad cuts"},
		{`[`, "job record"},
	} {
		if _, err := DecodeJobRecord([]byte(c.in)); err == nil || !strings.Contains(err.Error(), c.text) {
			t.Errorf("%s: got %v, want error mentioning %q", c.in, err, c.text)
		}
	}
}
