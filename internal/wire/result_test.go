package wire

import (
	"bytes"
	"errors"
	"testing"
)

func TestResultRoundTrip(t *testing.T) {
	in := Result{Rank: 3, G: 7, Data: []byte("digest")}
	b, err := EncodeResult(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := DecodeResult(b)
	if err != nil || out.Rank != 3 || out.G != 7 || !bytes.Equal(out.Data, in.Data) {
		t.Fatalf("round trip: %+v, %v", out, err)
	}
	if _, err := EncodeResult(Result{Data: make([]byte, MaxResultLen+1)}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversize result: %v", err)
	}
	for _, bad := range [][]byte{nil, {Version}, {2, KindResult, 0, 0, 0}, {Version, KindStatus, 0}, append(b, 0)} {
		if _, err := DecodeResult(bad); err == nil {
			t.Errorf("decoded %x", bad)
		}
	}
}

func FuzzDecodeResult(f *testing.F) {
	b, _ := EncodeResult(Result{Rank: 1, G: 2, Data: []byte{1, 2, 3}})
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeResult(b)
		if err != nil {
			return
		}
		again, err := EncodeResult(r)
		if err != nil {
			t.Fatalf("decoded result does not encode: %v", err)
		}
		r2, err := DecodeResult(again)
		if err != nil || r2.Rank != r.Rank || r2.G != r.G || !bytes.Equal(r2.Data, r.Data) {
			t.Fatalf("round trip %+v -> %+v (%v)", r, r2, err)
		}
	})
}
