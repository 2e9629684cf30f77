package transport

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/zeebo/blake3"

	"github.com/cutpoint/cutpoint/rank/transport/channel"
)

// Keys give the pair keys that authenticate frames (Options.Keys):
// PairKey(peer) is the 32-byte key of the channels between Self and peer
// in both directions (rank.Options.Keys, derived by the launcher; see
// docs/format.md, Authentication).
type Keys interface {
	PairKey(peer int) (key [32]byte, ok bool)
}

// TagLen is the length of the authentication trailer at the end of every
// frame when Options.Keys is set: an 8-byte nonce (little-endian) and the
// 16-byte GMAC tag (AES-256-GCM sealing no plaintext, the frame's header
// and payload as additional data) under the frame key of the frame's
// sender, receiver, incarnation and session (frameKeyContext). Since the
// frame key names the direction and the header names the pair, a frame
// cannot be turned around or passed off as another pair's. Frame format
// version 2; version 1 carried 16 bytes of keyed BLAKE3 (docs/format.md,
// Authentication: GMAC checks a 64 KiB frame in about half the time).
const TagLen = nonceLen + gmacLen

const (
	nonceLen = 8
	gmacLen  = 16
)

// frameKeyContext is the BLAKE3 derive-key context of frame keys: a frame
// key is DeriveKey(frameKeyContext, pair key ‖ u32 from ‖ u32 to ‖ u64 g ‖
// u64 session), all big-endian. It is a key of its own for every direction
// and sender session, so the nonce counter of one sender session, which
// starts at 1, never meets another's under one key: the session is 64
// random bits a sender draws anew at every Open and Reset, in every
// process (docs/format.md, Authentication, has the whole argument).
const frameKeyContext = "cutpoint 2026-12-02 frame key v2"

// frameAuth holds the pair keys of the declared peers and the frame keys
// in use: the writer's (sealing, one per peer: its own current session)
// and the subscriptions' (checking, the two most recent sessions of each
// peer per subscription, so that the frames of a peer's Reset may overlap
// its earlier ones without deriving keys in turn).
type frameAuth struct {
	keys map[int][32]byte
	// nonce is the last nonce sealed: one counter for every frame of this
	// endpoint, whatever its peer or session, so that no two frames it
	// seals share one even under a key they share.
	nonce atomic.Uint64
	seal  map[int]*frameKey // writer goroutine only
	mu    [3]sync.Mutex     // by channel.Sub (1, 2): guards open[sub]
	open  [3]map[int]*[2]*frameKey
}

// frameKey is the GMAC of one (from, to, g, session).
type frameKey struct {
	header
	gcm cipher.AEAD // safe for concurrent use: it keeps no state between calls
}

func newFrameAuth(k Keys, peers []int) (*frameAuth, error) {
	a := &frameAuth{keys: map[int][32]byte{}, seal: map[int]*frameKey{}}
	a.open[channel.DataSub], a.open[channel.AckSub] = map[int]*[2]*frameKey{}, map[int]*[2]*frameKey{}
	for _, p := range peers {
		key, ok := k.PairKey(p)
		if !ok {
			return nil, fmt.Errorf("no pair key for peer %d", p)
		}
		a.keys[p] = key
	}
	return a, nil
}

// header are the fields of a frame's common header that select its key.
type header struct {
	from, to   uint32
	g, session uint64
}

func headerOf(frame []byte) header {
	return header{
		from:    binary.LittleEndian.Uint32(frame[4:]),
		to:      binary.LittleEndian.Uint32(frame[8:]),
		g:       binary.LittleEndian.Uint64(frame[16:]),
		session: binary.LittleEndian.Uint64(frame[24:]),
	}
}

func (k *frameKey) is(h header) bool { return k != nil && k.header == h }

func deriveFrameKey(pair [32]byte, h header) *frameKey {
	var in [32 + 4 + 4 + 8 + 8]byte
	copy(in[:], pair[:])
	binary.BigEndian.PutUint32(in[32:], h.from)
	binary.BigEndian.PutUint32(in[36:], h.to)
	binary.BigEndian.PutUint64(in[40:], h.g)
	binary.BigEndian.PutUint64(in[48:], h.session)
	var key [32]byte
	blake3.DeriveKey(frameKeyContext, in[:], key[:])
	blk, _ := aes.NewCipher(key[:]) // 32-byte keys are always accepted
	gcm, _ := cipher.NewGCM(blk)    // standard nonce and tag sizes are always accepted
	return &frameKey{header: h, gcm: gcm}
}

// gcmNonce is the 12-byte GCM nonce of a frame's 8-byte nonce: 4 zero
// bytes, then the nonce as it is on the wire.
func gcmNonce(n []byte) [12]byte {
	var iv [12]byte
	copy(iv[4:], n)
	return iv
}

// sealFrame appends the trailer of a frame to peer (writer goroutine; the
// frame's header is the endpoint's own, so it is well-formed).
func (a *frameAuth) sealFrame(peer int, frame []byte) []byte {
	h := headerOf(frame)
	k := a.seal[peer]
	if !k.is(h) {
		k = deriveFrameKey(a.keys[peer], h)
		a.seal[peer] = k
	}
	n := a.nonce.Add(1)
	if n == 0 {
		// 2^64 frames: not reachable in any run (centuries at a billion
		// frames a second), and a repeated nonce would give the key away.
		panic("transport: frame nonce counter wrapped")
	}
	var nb [nonceLen]byte
	binary.LittleEndian.PutUint64(nb[:], n)
	iv := gcmNonce(nb[:])
	frame = append(frame, nb[:]...)
	body := frame[:len(frame)-nonceLen]
	return k.gcm.Seal(frame, iv[:], nil, body)
}

// openFrame checks the trailer of a frame that arrived on sub and returns
// the frame without it; from is the rank its header claims (-1 when it
// claims none of the declared peers, so that the warnings about it share
// one rate limit).
func (a *frameAuth) openFrame(sub channel.Sub, b []byte) (frame []byte, from int, err error) {
	if len(b) < channel.CommonHeaderLen+TagLen {
		return nil, -1, fmt.Errorf("frame of %d bytes, too short for a header and its %d-byte trailer", len(b), TagLen)
	}
	if b[0] != channel.FrameVersion {
		// Checked before the tag, so that a frame of another release is
		// named as such rather than reported as a forgery.
		return nil, -1, fmt.Errorf("frame format version mismatch: frame of version %d, this rank reads version %d (ranks of different cutpoint releases in one job?)", b[0], channel.FrameVersion)
	}
	h := headerOf(b)
	key, ok := a.keys[int(h.from)]
	if !ok || h.from > channel.MaxRankOnWire {
		return nil, -1, fmt.Errorf("frame claims rank %d, not a declared peer: no key to check it", h.from)
	}
	from = int(h.from)
	frame = b[:len(b)-TagLen]
	nb, tag := b[len(frame):len(frame)+nonceLen], b[len(frame)+nonceLen:]
	k := a.openKey(sub, key, h)
	iv := gcmNonce(nb)
	if _, err := k.gcm.Open(nil, iv[:], tag, frame); err != nil {
		return nil, from, fmt.Errorf("frame claiming rank %d fails authentication under that pair's key", from)
	}
	return frame, from, nil
}

// openKey is the frame key of h, derived on a miss in place of the older
// of the two kept for h.from: bounded whatever the frames claim, and a
// forger who varies the session costs one derivation per frame, no more
// than checking the frame does.
func (a *frameAuth) openKey(sub channel.Sub, pair [32]byte, h header) *frameKey {
	a.mu[sub].Lock()
	defer a.mu[sub].Unlock()
	ks := a.open[sub][int(h.from)]
	if ks == nil {
		ks = new([2]*frameKey)
		a.open[sub][int(h.from)] = ks
	}
	switch {
	case ks[0].is(h):
		return ks[0]
	case ks[1].is(h):
		ks[0], ks[1] = ks[1], ks[0]
		return ks[0]
	}
	k := deriveFrameKey(pair, h)
	ks[0], ks[1] = k, ks[0]
	return k
}
