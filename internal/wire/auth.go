package wire

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/zeebo/blake3"
)

// Authentication of the messages of a job (docs/format.md,
// "Authentication"). A job's keys all derive from one secret the launcher
// draws for the run, the job key; who holds which is in
// docs/operations.md, Security:
//
//   - control messages (coordinator to ranks) carry an ed25519 signature
//     (SigLen bytes at the end) by the coordinator's key, derived from the
//     job key; a rank holds only the public half, so no rank can sign;
//   - rank messages and results (rank to coordinator) carry a TagLen-byte
//     keyed BLAKE3 tag under the sender's report key (one per rank, derived
//     from the job key and the rank): the coordinator derives every rank's,
//     a rank holds its own;
//   - transport frames (rank to rank, rank/transport) carry a GMAC tag
//     under a key derived from the pair key of the two ranks of the
//     channel (one per unordered pair) and the frame's direction,
//     incarnation and session: a rank holds the keys of the pairs it is in.
//
// The identity a message claims (its rank field, a frame's from) selects
// the key it is checked with, so a rank holding its own keys cannot pass
// for another rank or for the coordinator.
const (
	// KeyLen is the length of the job key and of every derived symmetric key.
	KeyLen = 32
	// TagLen is the length of the MAC trailer of rank messages and
	// results (128 bits of keyed BLAKE3; transport frames carry their own,
	// rank/transport.TagLen).
	TagLen = 16
	// SigLen is the length of the signature trailer of control messages.
	SigLen = ed25519.SignatureSize
)

// ErrAuth: a message's trailer does not authenticate it (forged, altered,
// from a sender without the job's keys, or no trailer at all).
var ErrAuth = errors.New("message fails authentication")

// Key derivation contexts (BLAKE3's derive-key mode): fixed, distinct
// strings, so no key of one purpose is a key of another.
const (
	ctxControl = "cutpoint 2026-12-02 control signing seed v1"
	ctxReport  = "cutpoint 2026-12-02 rank report key v1"
	ctxPair    = "cutpoint 2026-12-02 rank pair key v1"
	// ctlContext is ed25519ctx's context: a control signature is of no
	// use as a signature of anything else.
	ctlContext = "cutpoint control v1"
)

// Domain bytes: the first input of every tag, so a tag of one kind of
// message never passes for another kind under the same key.
const (
	DomainReport byte = 1 // rank-to-coordinator message
	DomainResult byte = 2 // job result
	DomainFrame  byte = 3 // transport frame (frame format version 1; version 2 tags frames with GMAC under keys of their own)
)

// JobKey is the secret of one run of a job. It is never logged (String
// redacts it) and never on a command line.
type JobKey [KeyLen]byte

// NewJobKey draws a job key.
func NewJobKey() JobKey {
	var k JobKey
	_, _ = rand.Read(k[:]) // crypto/rand.Read never fails (Go >= 1.24)
	return k
}

// ParseJobKey reads a job key written by Hex.
func ParseJobKey(s string) (JobKey, error) {
	var k JobKey
	if len(s) != 2*KeyLen {
		return k, fmt.Errorf("wire: job key of %d characters, want %d hex digits: %w", len(s), 2*KeyLen, ErrMalformed)
	}
	if _, err := hex.Decode(k[:], []byte(s)); err != nil {
		return k, fmt.Errorf("wire: job key is not hex: %w", ErrMalformed)
	}
	return k, nil
}

// Hex encodes the key for the environment of a process that must hold it.
func (k JobKey) Hex() string { return hex.EncodeToString(k[:]) }

// String redacts the key, so no log line shows it.
func (k JobKey) String() string { return "JobKey(redacted)" }

// ControlKey is the coordinator's signing key.
func (k JobKey) ControlKey() ed25519.PrivateKey {
	var seed [ed25519.SeedSize]byte
	blake3.DeriveKey(ctxControl, k[:], seed[:])
	return ed25519.NewKeyFromSeed(seed[:])
}

// ReportKey is rank's key for its messages and result to the coordinator.
func (k JobKey) ReportKey(rank int) [KeyLen]byte {
	var in [KeyLen + 4]byte
	copy(in[:], k[:])
	binary.BigEndian.PutUint32(in[KeyLen:], uint32(rank))
	var out [KeyLen]byte
	blake3.DeriveKey(ctxReport, in[:], out[:])
	return out
}

// PairKey is the key of the channels between ranks a and b, in both
// directions (each frame names its sender and receiver in its
// authenticated header).
func (k JobKey) PairKey(a, b int) [KeyLen]byte {
	a, b = min(a, b), max(a, b)
	var in [KeyLen + 8]byte
	copy(in[:], k[:])
	binary.BigEndian.PutUint32(in[KeyLen:], uint32(a))
	binary.BigEndian.PutUint32(in[KeyLen+4:], uint32(b))
	var out [KeyLen]byte
	blake3.DeriveKey(ctxPair, in[:], out[:])
	return out
}

// RankKeys derives what rank of a world of world ranks holds.
func (k JobKey) RankKeys(rank, world int) *RankKeys {
	rk := &RankKeys{Rank: rank, World: world, Control: k.ControlKey().Public().(ed25519.PublicKey), Report: k.ReportKey(rank)}
	rk.pairs = make([][KeyLen]byte, world)
	for p := range world {
		if p != rank {
			rk.pairs[p] = k.PairKey(rank, p)
		}
	}
	return rk
}

// RankKeys are the keys one rank holds: the coordinator's public key, its
// own report key and the pair keys of its channels. A world that shares
// one environment (an MPI world, one srun step) cannot be given keys per
// rank: there every rank holds the job key and derives its RankKeys.
type RankKeys struct {
	Rank    int
	World   int
	Control ed25519.PublicKey
	Report  [KeyLen]byte
	pairs   [][KeyLen]byte // by peer; the entry of Rank is unused
}

// PairKey is the key of the channels between this rank and peer.
func (rk *RankKeys) PairKey(peer int) ([KeyLen]byte, bool) {
	if peer < 0 || peer >= len(rk.pairs) || peer == rk.Rank {
		return [KeyLen]byte{}, false
	}
	return rk.pairs[peer], true
}

// String redacts the keys.
func (rk *RankKeys) String() string { return fmt.Sprintf("RankKeys(rank %d, redacted)", rk.Rank) }

// rankKeysVersion is the first byte of an encoded RankKeys.
const rankKeysVersion = 1

// Encode writes the keys for the rank's environment (base64url, no
// padding): version, rank, world, the public key, the report key, then
// the pair keys of every other rank in rank order. 32 bytes per rank of
// the world: a world of 1024 ranks takes 43 KiB.
func (rk *RankKeys) Encode() string {
	b := make([]byte, 0, 1+8+ed25519.PublicKeySize+KeyLen*len(rk.pairs))
	b = append(b, rankKeysVersion)
	b = binary.BigEndian.AppendUint32(b, uint32(rk.Rank))
	b = binary.BigEndian.AppendUint32(b, uint32(rk.World))
	b = append(b, rk.Control...)
	b = append(b, rk.Report[:]...)
	for p, k := range rk.pairs {
		if p != rk.Rank {
			b = append(b, k[:]...)
		}
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodeRankKeys reads what Encode wrote, for rank of a world of world
// ranks (both must match what the keys were derived for).
func DecodeRankKeys(s string, rank, world int) (*RankKeys, error) {
	if world < 1 || world > MaxWorld || rank < 0 || rank >= world {
		return nil, fmt.Errorf("wire: rank keys for rank %d of %d: %w", rank, world, ErrMalformed)
	}
	head := 1 + 8 + ed25519.PublicKeySize + KeyLen
	want := head + KeyLen*(world-1)
	if base64.RawURLEncoding.DecodedLen(len(s)) != want {
		return nil, fmt.Errorf("wire: rank keys of %d characters, want %d bytes for a world of %d: %w", len(s), want, world, ErrMalformed)
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != want {
		return nil, fmt.Errorf("wire: rank keys are not base64url: %w", ErrMalformed)
	}
	if b[0] != rankKeysVersion {
		return nil, fmt.Errorf("wire: rank keys version %d: %w", b[0], ErrVersion)
	}
	if r, w := binary.BigEndian.Uint32(b[1:]), binary.BigEndian.Uint32(b[5:]); int(r) != rank || int(w) != world {
		return nil, fmt.Errorf("wire: rank keys of rank %d of %d given to rank %d of %d: %w", r, w, rank, world, ErrMalformed)
	}
	rk := &RankKeys{Rank: rank, World: world, Control: ed25519.PublicKey(append([]byte(nil), b[9:9+ed25519.PublicKeySize]...))}
	off := 9 + ed25519.PublicKeySize
	copy(rk.Report[:], b[off:])
	off += KeyLen
	rk.pairs = make([][KeyLen]byte, world)
	for p := range world {
		if p == rank {
			continue
		}
		copy(rk.pairs[p][:], b[off:])
		off += KeyLen
	}
	return rk, nil
}

// MAC computes tags under one key. It is not safe for concurrent use; its
// state (8 KiB) is kept between tags so a tag allocates nothing.
type MAC struct{ h *blake3.Hasher }

// NewMAC returns a MAC under key.
func NewMAC(key [KeyLen]byte) *MAC {
	h, _ := blake3.NewKeyed(key[:]) // a 32-byte key is always accepted
	return &MAC{h: h}
}

// Tag is the tag of domain and msg.
func (m *MAC) Tag(domain byte, msg []byte) [TagLen]byte {
	m.h.Reset()
	_, _ = m.h.Write([]byte{domain})
	_, _ = m.h.Write(msg)
	var full [32]byte
	m.h.Sum(full[:0])
	var t [TagLen]byte
	copy(t[:], full[:])
	return t
}

// Seal appends the tag of domain and msg to msg.
func (m *MAC) Seal(domain byte, msg []byte) []byte {
	t := m.Tag(domain, msg)
	return append(msg, t[:]...)
}

// Open checks the tag at the end of b and returns the message before it
// (aliasing b), or ErrAuth.
func (m *MAC) Open(domain byte, b []byte) ([]byte, error) {
	if len(b) < TagLen {
		return nil, fmt.Errorf("wire: %d bytes, no room for a %d-byte tag: %w", len(b), TagLen, ErrAuth)
	}
	msg, tag := b[:len(b)-TagLen], b[len(b)-TagLen:]
	t := m.Tag(domain, msg)
	if subtle.ConstantTimeCompare(t[:], tag) != 1 {
		return nil, fmt.Errorf("wire: tag does not match: %w", ErrAuth)
	}
	return msg, nil
}

var ctlOpts = &ed25519.Options{Context: ctlContext}

// SignCoord appends the coordinator's signature to an encoded control
// message.
func SignCoord(key ed25519.PrivateKey, msg []byte) []byte {
	sig, err := key.Sign(nil, msg, ctlOpts)
	if err != nil {
		panic(fmt.Sprintf("wire: ed25519 sign: %v", err)) // only for a bad key or options: a programmer error
	}
	return append(msg, sig...)
}

// OpenCoord checks the signature at the end of b and returns the control
// message before it (aliasing b), or ErrAuth.
func OpenCoord(pub ed25519.PublicKey, b []byte) ([]byte, error) {
	if len(b) < SigLen+2 {
		return nil, fmt.Errorf("wire: control message of %d bytes, no room for a %d-byte signature: %w", len(b), SigLen, ErrAuth)
	}
	msg, sig := b[:len(b)-SigLen], b[len(b)-SigLen:]
	if err := ed25519.VerifyWithOptions(pub, msg, sig, ctlOpts); err != nil {
		return nil, fmt.Errorf("wire: control signature: %w", ErrAuth)
	}
	return msg, nil
}

// ClaimedRank reads the rank a rank-to-coordinator message or a result
// claims (the field after the two-byte header), to select the key it is
// checked with; ok is false when there is none to read.
func ClaimedRank(b []byte) (rank int, ok bool) {
	if len(b) < 3 {
		return 0, false
	}
	v, n := binary.Uvarint(b[2:])
	if n <= 0 || v >= MaxWorld {
		return 0, false
	}
	return int(v), true
}
