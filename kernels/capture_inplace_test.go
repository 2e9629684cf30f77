package kernels

import (
	"bytes"
	"context"
	"errors"
	"testing"
)

func consumed(s InPlaceSnapshot) bool {
	select {
	case <-s.Consumed():
		return true
	default:
		return false
	}
}

func TestCaptureInPlace(t *testing.T) {
	d := NewCPU(2)
	b := make([]byte, 10000)
	for i := range b {
		b[i] = byte(i * 7)
	}
	buf, _ := HostBytes(b, 4)
	if _, err := d.CaptureInPlace(buf, CaptureOptions{ChunkSize: 4096, Incremental: true}); err == nil {
		t.Fatal("an incremental in-place capture was accepted")
	}
	s, err := d.CaptureInPlace(buf, CaptureOptions{ChunkSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != 10000 || s.ElemSize() != 4 || s.Shuffled() || s.NumChunks() != 3 {
		t.Fatalf("snapshot %d bytes, elem %d, shuffled %v, %d chunks", s.Len(), s.ElemSize(), s.Shuffled(), s.NumChunks())
	}
	ctx := context.Background()
	var got [][]byte
	for i := range s.NumChunks() {
		c, unchanged, err := s.Chunk(ctx, i)
		if err != nil || unchanged {
			t.Fatalf("chunk %d: %v unchanged %v", i, err, unchanged)
		}
		got = append(got, c)
		if consumed(s) {
			t.Fatalf("consumed with chunk %d held", i)
		}
	}
	// Zero-copy: the chunks are the buffer's own bytes.
	b[0] ^= 0xff
	if got[0][0] != b[0] {
		t.Fatal("chunk 0 is a copy, not the buffer")
	}
	b[0] ^= 0xff
	if !bytes.Equal(bytes.Join(got, nil), b) {
		t.Fatal("chunks differ from the buffer")
	}
	s.Done(0)
	s.Done(0) // a second Done is ignored
	s.Done(2)
	if consumed(s) {
		t.Fatal("consumed with chunk 1 held")
	}
	// A chunk read twice must be given back twice.
	if _, _, err := s.Chunk(ctx, 1); err != nil {
		t.Fatal(err)
	}
	s.Done(1)
	if consumed(s) {
		t.Fatal("consumed with one of chunk 1's two reads held")
	}
	s.Done(1)
	if !consumed(s) {
		t.Fatal("not consumed after every chunk was read and given back")
	}
	if _, err := s.Hashes(ctx); !errors.Is(err, ErrNoHashes) {
		t.Errorf("Hashes: %v", err)
	}
	s.Release()
	if _, _, err := s.Chunk(ctx, 0); !errors.Is(err, ErrReleased) {
		t.Errorf("Chunk after Release: %v", err)
	}
}

func TestCaptureInPlaceReleased(t *testing.T) {
	d := NewCPU(1)
	buf, _ := HostBytes(make([]byte, 3*4096), 1)
	ctx := context.Background()
	// Abandoned before every chunk was read: consumed once the chunk still
	// held comes back.
	s, _ := d.CaptureInPlace(buf, CaptureOptions{ChunkSize: 4096})
	if _, _, err := s.Chunk(ctx, 0); err != nil {
		t.Fatal(err)
	}
	s.Release()
	if consumed(s) {
		t.Fatal("consumed while chunk 0 is held")
	}
	s.Done(0)
	if !consumed(s) {
		t.Fatal("not consumed after release and the last Done")
	}
	s.Release()
	// Released with nothing held: consumed at once.
	s2, _ := d.CaptureInPlace(buf, CaptureOptions{ChunkSize: 4096})
	s2.Release()
	if !consumed(s2) {
		t.Fatal("a snapshot released with nothing held is not consumed")
	}
	// An empty buffer is consumed from the start.
	e, _ := HostBytes(nil, 1)
	s3, err := d.CaptureInPlace(e, CaptureOptions{ChunkSize: 4096})
	if err != nil || !consumed(s3) {
		t.Fatalf("empty buffer: %v, consumed %v", err, err == nil && consumed(s3))
	}
	if _, _, err := s3.Chunk(ctx, 0); err == nil {
		t.Fatal("chunk 0 of an empty buffer")
	}
}
