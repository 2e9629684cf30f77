package transport_test

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"hash"
	"testing"

	"github.com/zeebo/blake3"
	"golang.org/x/crypto/chacha20poly1305"
)

// BenchmarkFrameMAC measures the candidate frame tags on their own, per
// frame of 64 KiB and 1 MiB: tagging (the sender) and checking (the
// receiver: recompute and compare, or the AEAD's Open). The choice of the
// frame tag rests on it (docs/format.md, Authentication; raw results under
// docs/bench/2026-12-02/frame-mac/):
//
//   - blake3: keyed BLAKE3 (zeebo/blake3, the frame tag before frame
//     format version 2), a domain byte then the frame;
//   - hmac-sha256: HMAC-SHA256 (crypto/sha256 uses SHA-NI where the CPU
//     has it);
//   - gmac: AES-256-GCM sealing an empty plaintext with the frame as
//     additional data, a fresh nonce per frame (crypto/aes, AES-NI and
//     PCLMULQDQ);
//   - poly1305: ChaCha20-Poly1305 sealing an empty plaintext with the
//     frame as additional data: Poly1305 under a one-time key ChaCha20
//     draws from the nonce (golang.org/x/crypto).
//
// Run with BLAKE3_DISABLE_AVX2=1 to see what zeebo/blake3's AVX2 path
// (the only vector path it has on amd64 besides SSE4.1) is worth.
func BenchmarkFrameMAC(b *testing.B) {
	var key [32]byte
	for i := range key {
		key[i] = byte(i + 1)
	}
	for _, size := range []int{64 << 10, 1 << 20} {
		frame := make([]byte, size)
		for i := range frame {
			frame[i] = byte(i * 7)
		}
		for _, c := range macCandidates(key) {
			t := c.tag(frame)
			b.Run(c.name+"/tag/"+sizeName(size), func(b *testing.B) {
				b.SetBytes(int64(size))
				for b.Loop() {
					t = c.tag(frame)
				}
			})
			b.Run(c.name+"/check/"+sizeName(size), func(b *testing.B) {
				b.SetBytes(int64(size))
				for b.Loop() {
					if !c.check(frame, t) {
						b.Fatal("a genuine tag fails")
					}
				}
			})
		}
	}
}

type macCandidate struct {
	name  string
	tag   func(frame []byte) []byte
	check func(frame, tag []byte) bool
}

func macCandidates(key [32]byte) []macCandidate {
	bl, _ := blake3.NewKeyed(key[:])
	blTag := func(frame []byte) []byte {
		bl.Reset()
		_, _ = bl.Write([]byte{3})
		_, _ = bl.Write(frame)
		var full [32]byte
		return append([]byte(nil), bl.Sum(full[:0])[:16]...)
	}
	hm := hmac.New(sha256.New, key[:])
	hmTag := func(h hash.Hash, frame []byte) []byte {
		h.Reset()
		_, _ = h.Write(frame)
		var full [32]byte
		return append([]byte(nil), h.Sum(full[:0])[:16]...)
	}
	blk, _ := aes.NewCipher(key[:])
	gcm, _ := cipher.NewGCM(blk)
	cp, _ := chacha20poly1305.New(key[:])
	// The nonce: a counter, as a sender keeps one (the benchmark checks
	// the tag made under the nonce it last used).
	aead := func(a cipher.AEAD) (func([]byte) []byte, func([]byte, []byte) bool) {
		var ctr uint64
		nonce := make([]byte, a.NonceSize())
		out := make([]byte, 0, a.Overhead())
		seal := func(frame []byte) []byte {
			ctr++
			binary.LittleEndian.PutUint64(nonce[4:], ctr)
			out = a.Seal(out[:0], nonce, nil, frame)
			return out
		}
		open := func(frame, tag []byte) bool {
			_, err := a.Open(nil, nonce, tag, frame)
			return err == nil
		}
		return seal, open
	}
	gSeal, gOpen := aead(gcm)
	pSeal, pOpen := aead(cp)
	return []macCandidate{
		{"blake3", blTag, func(frame, tag []byte) bool { return subtle.ConstantTimeCompare(blTag(frame), tag) == 1 }},
		{"hmac-sha256", func(f []byte) []byte { return hmTag(hm, f) }, func(f, t []byte) bool { return hmac.Equal(hmTag(hm, f), t) }},
		{"gmac", gSeal, gOpen},
		{"poly1305", pSeal, pOpen},
	}
}
