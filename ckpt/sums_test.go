package ckpt

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/zeebo/blake3"

	"github.com/cutpoint/cutpoint/ckpt/backend/mem"
)

// TestHashFunctions pins both hashes to published values, so that a
// dependency update cannot change what a store's checksums mean: BLAKE3 of
// the empty input (its specification's test vector) and XXH3 of the empty
// input (the xxHash reference's canonical outputs).
func TestHashFunctions(t *testing.T) {
	b := hashBLAKE3.content(nil)
	if got := hex.EncodeToString(b[:]); got != "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262" {
		t.Errorf("BLAKE3(\"\") = %s", got)
	}
	x := hashXXH3.content(nil)
	if got := hex.EncodeToString(x[:]); got != "99aa06d3014798d86001c324468d497f"+strings.Repeat("00", 16) {
		t.Errorf("XXH3-128(\"\") field = %s", got)
	}
	if got := hashXXH3.sum(nil); got != 0x2d06800538d394c2 {
		t.Errorf("XXH3-64(\"\") = %#x", got)
	}
	if got := hashBLAKE3.sum(nil); got != 0xef46db3751d8e999 {
		t.Errorf("XXH64(\"\") = %#x", got)
	}
}

// TestStoreHash: a new store records its hash (xxh3 by default, blake3 on
// request) and writes every index with it; reopening asks for the same or
// none; a bad name is an error naming it; a config without the key is a
// blake3 store.
func TestStoreHash(t *testing.T) {
	for _, h := range []string{"", "xxh3", "blake3"} {
		opts := testOptions()
		opts.Hash = h
		s, b := newMemStore(t, opts)
		want := h
		if want == "" {
			want = DefaultHash
		}
		if s.Hash() != want {
			t.Fatalf("Hash() = %s, want %s", s.Hash(), want)
		}
		if cfg := readFile(t, b, configName); !bytes.Contains(cfg, []byte(`"hash": "`+want+`"`)) {
			t.Fatalf("config without the hash: %s", cfg)
		}
		_, ds := writeCut(t, s, "h", 1, 2, 20000, 0)
		checkRestore(t, s, "h", 1, ds)
		cut, _ := s.LoadCut(bg, "h", 1)
		x, err := s.readShardIndex(bg, cut.Shards[0])
		if err != nil || x.alg.String() != want {
			t.Fatalf("shard index hash %v, %v", x.alg, err)
		}
		pack := readFile(t, b, cut.Shards[0].Pack())
		tr, _ := decodeTrailer(pack[len(pack)-packTrailerLen:], int64(len(pack)))
		if _, alg, err := decodePackIndex(pack[tr.packIndexOff:tr.packIndexOff+int64(tr.packIndexLen)], tr.packIndexOff); err != nil || alg != x.alg {
			t.Fatalf("pack index hash %v, %v", alg, err)
		}
		if _, err := s.Verify(bg, "h", 0, nil); err != nil {
			t.Fatal(err)
		}
		other := "blake3"
		if want == "blake3" {
			other = "xxh3"
		}
		for _, o := range []Options{{Hash: want}, {}} {
			if s2, err := Open(bg, b, o); err != nil {
				t.Fatalf("reopen with %q: %v", o.Hash, err)
			} else {
				s2.Close()
			}
		}
		if _, err := Open(bg, b, Options{Hash: other}); err == nil || !strings.Contains(err.Error(), "created with hash "+want) {
			t.Fatalf("reopen with %s: %v", other, err)
		}
	}
	if _, err := Open(bg, mem.New(), Options{Create: true, Hash: "sha1"}); err == nil || !strings.Contains(err.Error(), `hash "sha1"`) {
		t.Fatalf("hash sha1: %v", err)
	}
	cfg, err := parseConfig([]byte(`{"format":1,"chunk_size":4096,"codec":"s2","created":""}`))
	if err != nil || cfg.hash() != hashBLAKE3 {
		t.Fatalf("config without hash: %v, %v", cfg.hash(), err)
	}
	if _, err := parseConfig([]byte(`{"format":1,"chunk_size":4096,"codec":"s2","hash":"md5","created":""}`)); err == nil {
		t.Fatal("config with hash md5 accepted")
	}
}

// TestBaseWithOtherHash: a base whose index records another hash than the
// store's (only a hand-edited store has one) is refused by NewShard, naming
// both, instead of mixing checksums in one index.
func TestBaseWithOtherHash(t *testing.T) {
	opts := testOptions()
	opts.Hash = "blake3"
	s, _ := newMemStore(t, opts)
	writeCut(t, s, "mix", 1, 1, 20000, 0)
	s.hash = hashXXH3
	_, err := s.NewShard(bg, ShardSpec{Job: "mix", Epoch: 2, Incarnation: 1, Base: &BaseRef{Epoch: 1}})
	if err == nil || !strings.Contains(err.Error(), "hashed with blake3, this store writes xxh3") {
		t.Fatalf("NewShard on a blake3 base in an xxh3 store: %v", err)
	}
}

// TestPackIndexVersions: version 1 has no hash byte and decodes as BLAKE3
// and re-encodes at version 2; an unknown version or hash and an XXH3 hash
// with non-zero padding are refused.
func TestPackIndexVersions(t *testing.T) {
	var h [hashLen]byte
	h[3] = 7
	entries := []packEntry{{offset: 16, stored: 10, raw: 20, codec: codecS2, sum: 99, hash: h}}
	b := encodePackIndex(hashXXH3, entries)
	if got, alg, err := decodePackIndex(b, 100); err != nil || alg != hashXXH3 || got[0] != entries[0] {
		t.Fatalf("version 2: %v %v %v", got, alg, err)
	}
	const algAt = len(magicPackIndex) + 2
	v1 := append(append([]byte(nil), b[:algAt]...), b[algAt+1:]...)
	binary.LittleEndian.PutUint16(v1[len(magicPackIndex):], 1)
	got, alg, err := decodePackIndex(v1, 100)
	if err != nil || alg != hashBLAKE3 || got[0] != entries[0] {
		t.Fatalf("version 1: %v %v %v", got, alg, err)
	}
	if !bytes.Equal(encodePackIndex(alg, got)[algAt+1:], b[algAt+1:]) {
		t.Fatal("version 1 does not re-encode to the same entries")
	}
	for name, mut := range map[string]func([]byte){
		"format version 3": func(c []byte) { binary.LittleEndian.PutUint16(c[len(magicPackIndex):], 3) },
		"unknown hash 9":   func(c []byte) { c[algAt] = 9 },
		"non-zero padding": func(c []byte) { c[len(c)-1] = 1 },
	} {
		c := append([]byte(nil), b...)
		mut(c)
		if _, _, err := decodePackIndex(c, 100); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestVerifyPackIndexHash: a pack whose pack index names another chunk
// hash than its shard index (both intact, the trailer consistent) is
// reported by Verify as damage of that pack.
func TestVerifyPackIndexHash(t *testing.T) {
	s, b := newMemStore(t, testOptions())
	writeCut(t, s, "ph", 1, 1, 20000, 0)
	cut, _ := s.LoadCut(bg, "ph", 1)
	name := cut.Shards[0].Pack()
	pack := readFile(t, b, name)
	tr, err := decodeTrailer(pack[len(pack)-packTrailerLen:], int64(len(pack)))
	if err != nil {
		t.Fatal(err)
	}
	pi := pack[tr.packIndexOff : tr.packIndexOff+int64(tr.packIndexLen)]
	const algAt = len(magicPackIndex) + 2
	if pi[algAt] != byte(hashXXH3) {
		t.Fatal("layout changed: hash byte not found")
	}
	pi[algAt] = byte(hashBLAKE3)
	tr.packIndexHash = blake3.Sum256(pi)
	copy(pack[len(pack)-packTrailerLen:], encodeTrailer(tr))
	putFile(t, b, name, pack)
	_, err = s.Verify(bg, "ph", 0, nil)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "pack index names chunk hash blake3, its shard index xxh3") {
		t.Fatalf("Verify = %v", err)
	}
}
