package wire

import (
	"reflect"
	"testing"
)

// Each fuzz target checks: no panic; whatever decodes re-encodes to bytes
// that decode to the same value (the encoding is a function of the value).

func FuzzDecodeFrame(f *testing.F) {
	f.Add(AppendData(nil, Data{G: 1, Seq: 1, Step: 0, Payload: []byte("x")}))
	f.Add(EncodeMarker(Marker{G: 2, Epoch: 3, Step: 4, Sent: 5}))
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := DecodeFrame(b)
		if err != nil {
			return
		}
		var again []byte
		switch fr.Kind {
		case KindData:
			again = AppendData(nil, fr.Data)
		case KindMarker:
			again = EncodeMarker(fr.Marker)
		default:
			t.Fatalf("decoded unknown kind %d", fr.Kind)
		}
		fr2, err := DecodeFrame(again)
		if err != nil {
			t.Fatalf("re-encoded frame does not decode: %v", err)
		}
		if fr2.Kind != fr.Kind || fr2.Marker != fr.Marker || fr2.Data.G != fr.Data.G || fr2.Data.Seq != fr.Data.Seq ||
			fr2.Data.Step != fr.Data.Step || string(fr2.Data.Payload) != string(fr.Data.Payload) {
			t.Fatalf("round trip: %+v != %+v", fr2, fr)
		}
	})
}

func FuzzDecodeRank(f *testing.F) {
	for _, m := range sampleRankMsgs() {
		f.Add(EncodeRank(m))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeRank(b)
		if err != nil {
			return
		}
		m2, err := DecodeRank(EncodeRank(m))
		if err != nil || !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip: %+v -> %+v, %v", m, m2, err)
		}
	})
}

func FuzzDecodeCoord(f *testing.F) {
	for _, m := range sampleCoordMsgs() {
		f.Add(EncodeCoord(m))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeCoord(b)
		if err != nil {
			return
		}
		m2, err := DecodeCoord(EncodeCoord(m))
		if err != nil || !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip: %+v -> %+v, %v", m, m2, err)
		}
	})
}

func FuzzDecodeShardMeta(f *testing.F) {
	f.Add(EncodeShardMeta(sampleMeta()))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeShardMeta(b)
		if err != nil {
			return
		}
		m2, err := DecodeShardMeta(EncodeShardMeta(m))
		if err != nil || !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip: %+v -> %+v, %v", m, m2, err)
		}
	})
}

func FuzzDecodeJobRecord(f *testing.F) {
	b, _ := EncodeJobRecord(JobRecord{Job: "j", World: 3, Generation: 1, Incarnation: 2, EpochLimit: 1024,
		Recovery: &RecoveryIntent{Epoch: 4, Step: 10, Lost: []int{2}}})
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, err := DecodeJobRecord(b)
		if err != nil {
			return
		}
		enc, err := EncodeJobRecord(rec)
		if err != nil {
			t.Fatalf("decoded record does not encode: %v", err)
		}
		rec2, err := DecodeJobRecord(enc)
		if err != nil || !reflect.DeepEqual(rec, rec2) {
			t.Fatalf("round trip: %+v -> %+v, %v", rec, rec2, err)
		}
	})
}
