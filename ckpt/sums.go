package ckpt

import (
	"fmt"

	"github.com/cespare/xxhash/v2"
	"github.com/zeebo/blake3"
	"github.com/zeebo/xxh3"
)

// hashID names the pair of checksums a chunk carries: its content hash
// (of the filtered bytes: the content address that deduplication compares,
// checked after decompression) and its stored checksum (of the stored
// bytes, checked before they reach a decoder). A store fixes its hash when
// it is created; shard and pack indexes record it, so every chunk is
// checked with the functions that wrote it.
type hashID uint8

const (
	// hashBLAKE3: BLAKE3-256 content hash, XXH64 stored checksum. Stores
	// created before the choice existed use it, and so do the indexes of
	// versions that record none.
	hashBLAKE3 hashID = 0
	// hashXXH3: XXH3-128 content hash (its canonical big-endian 16 bytes,
	// then 16 zero bytes), XXH3-64 stored checksum. About 12 times
	// cheaper per byte than BLAKE3 here (docs/benchmarks.md): the content
	// hash reads every byte of every cut, and on a busy node its CPU time
	// is taken from the job. Not collision resistant against an adversary,
	// which a job's own checkpoint store does not need; 128 bits keep
	// accidental collisions out of reach (below 2^-48 for 2^40 chunks).
	hashXXH3 hashID = 1

	// DefaultHash is the hash of a new store.
	DefaultHash = "xxh3"
)

var hashNames = [...]string{hashBLAKE3: "blake3", hashXXH3: "xxh3"}

func (h hashID) valid() bool { return int(h) < len(hashNames) }

func (h hashID) String() string {
	if h.valid() {
		return hashNames[h]
	}
	return fmt.Sprintf("hash(%d)", uint8(h))
}

// parseHash parses a hash name as Options.Hash and cutpoint-store.json
// spell it.
func parseHash(s string) (hashID, error) {
	for i, n := range hashNames {
		if s == n {
			return hashID(i), nil
		}
	}
	return 0, fmt.Errorf("hash %q: want blake3 or xxh3", s)
}

// CheckHash reports whether s names a content hash a store can be created
// with.
func CheckHash(s string) error {
	_, err := parseHash(s)
	return err
}

// content is the content hash of filtered bytes.
func (h hashID) content(b []byte) (out [hashLen]byte) {
	if h == hashXXH3 {
		v := xxh3.Hash128(b).Bytes()
		copy(out[:], v[:])
		return out
	}
	return blake3.Sum256(b)
}

// sum is the checksum of stored bytes.
func (h hashID) sum(b []byte) uint64 {
	if h == hashXXH3 {
		return xxh3.Hash(b)
	}
	return xxhash.Sum64(b)
}

// contentName and sumName name the two functions in messages.
func (h hashID) contentName() string {
	if h == hashXXH3 {
		return "XXH3-128"
	}
	return "BLAKE3"
}

func (h hashID) sumName() string {
	if h == hashXXH3 {
		return "XXH3-64"
	}
	return "XXH64"
}

// contentLen is how many leading bytes of the 32-byte hash field the
// content hash fills; the rest are zero, and decoders require that.
func (h hashID) contentLen() int {
	if h == hashXXH3 {
		return 16
	}
	return hashLen
}

// checkPadding reports whether a hash field has zeros past contentLen.
func (h hashID) checkPadding(f *[hashLen]byte) bool {
	for _, b := range f[h.contentLen():] {
		if b != 0 {
			return false
		}
	}
	return true
}
