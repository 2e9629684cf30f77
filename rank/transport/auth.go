package transport

import (
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"sync"

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

// TagLen is the length of the tag at the end of every frame when
// Options.Keys is set: the first 16 bytes of keyed BLAKE3, under the pair
// key, of frameDomain and the frame (header and payload). The frame's
// header names its sender and receiver, so a frame cannot be turned
// around or passed off as another pair's.
const TagLen = 16

// frameDomain is the domain byte of frame tags (internal/wire.DomainFrame:
// the same construction as the tags of rank messages, under other keys).
const frameDomain = 3

// frameAuth holds the keys of the declared peers and a keyed hasher per
// peer and use (the writer seals; the data and ack subscriptions verify on
// goroutines of their own), made on first use.
type frameAuth struct {
	keys map[int][32]byte
	seal map[int]*blake3.Hasher // writer goroutine only
	mu   [3]sync.Mutex          // by channel.Sub (1, 2): the subscription callbacks of a Reset may overlap
	open [3]map[int]*blake3.Hasher
}

func newFrameAuth(k Keys, peers []int) (*frameAuth, error) {
	a := &frameAuth{keys: map[int][32]byte{}, seal: map[int]*blake3.Hasher{}}
	a.open[channel.DataSub], a.open[channel.AckSub] = map[int]*blake3.Hasher{}, map[int]*blake3.Hasher{}
	for _, p := range peers {
		key, ok := k.PairKey(p)
		if !ok {
			return nil, fmt.Errorf("no pair key for peer %d", p)
		}
		a.keys[p] = key
	}
	return a, nil
}

func hasher(tab map[int]*blake3.Hasher, key [32]byte, peer int) *blake3.Hasher {
	h := tab[peer]
	if h == nil {
		h, _ = blake3.NewKeyed(key[:]) // 32-byte keys are always accepted
		tab[peer] = h
	}
	return h
}

func tag(h *blake3.Hasher, frame []byte) [TagLen]byte {
	h.Reset()
	_, _ = h.Write([]byte{frameDomain})
	_, _ = h.Write(frame)
	var full [32]byte
	h.Sum(full[:0])
	var t [TagLen]byte
	copy(t[:], full[:])
	return t
}

// sealFrame appends the tag of a frame to peer (writer goroutine).
func (a *frameAuth) sealFrame(peer int, frame []byte) []byte {
	t := tag(hasher(a.seal, a.keys[peer], peer), frame)
	return append(frame, t[:]...)
}

// openFrame checks the tag of a frame that arrived on sub and returns the
// frame without it; from is the rank its header claims (-1 when it claims
// none of the declared peers, so that the warnings about it share one
// rate limit).
func (a *frameAuth) openFrame(sub channel.Sub, b []byte) (frame []byte, from int, err error) {
	if len(b) < channel.CommonHeaderLen+TagLen {
		return nil, -1, fmt.Errorf("frame of %d bytes, too short for a header and its tag", len(b))
	}
	claim := int64(binary.LittleEndian.Uint32(b[4:]))
	key, ok := a.keys[int(claim)]
	if !ok {
		return nil, -1, fmt.Errorf("frame claims rank %d, not a declared peer: no key to check it", claim)
	}
	from = int(claim)
	frame, got := b[:len(b)-TagLen], b[len(b)-TagLen:]
	a.mu[sub].Lock()
	t := tag(hasher(a.open[sub], key, from), frame)
	a.mu[sub].Unlock()
	if subtle.ConstantTimeCompare(t[:], got) != 1 {
		return nil, from, fmt.Errorf("frame claiming rank %d fails authentication under that pair's key", from)
	}
	return frame, from, nil
}
