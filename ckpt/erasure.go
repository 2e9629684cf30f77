package ckpt

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/klauspost/reedsolomon"
	"github.com/zeebo/blake3"

	"github.com/cutpoint/cutpoint/ckpt/backend"
)

// Erasure-coded copies of a shard (level LevelErasure): each pack of the
// shard is cut into stripes of K blocks, M parity blocks are computed per
// stripe (Reed-Solomon, klauspost/reedsolomon), and fragment i (the i-th
// block of every stripe, i < K data, K <= i < K+M parity) is written to
// the i-th of K+M stores, next to the pack's name:
// <pack>.rs<i>-<K>-<M>. Any K intact fragments rebuild the pack.

// LevelErasure is the level name of erasure-coded fragments.
const LevelErasure = "rs"

// Erasure limits.
const (
	MaxErasureData   = 32
	MaxErasureParity = 16
	// erasureBlock is the block size of a stripe: memory is (K+M) blocks.
	erasureBlock    = 1 << 20
	fragmentMagic   = "CPTRSF\r\n"
	fragmentVersion = 1
	fragmentHdrLen  = 8 + 2 + 1 + 1 + 1 + 4 + 8 + hashLen + hashLen
)

// fragmentHeader is the fixed header of a fragment file:
//
//	[8] magic, u16 version, u8 K, u8 M, u8 index, u32 block size,
//	i64 pack size, [32] BLAKE3 of the pack, [32] BLAKE3 of the fragment's
//	body (everything after the header).
type fragmentHeader struct {
	k, m, index int
	block       int
	packSize    int64
	packHash    [hashLen]byte
	bodyHash    [hashLen]byte
}

func (h fragmentHeader) stripes() int64 {
	per := int64(h.k) * int64(h.block)
	return (h.packSize + per - 1) / per
}

func (h fragmentHeader) encode() []byte {
	b := make([]byte, 0, fragmentHdrLen)
	b = append(b, fragmentMagic...)
	b = binary.LittleEndian.AppendUint16(b, fragmentVersion)
	b = append(b, byte(h.k), byte(h.m), byte(h.index))
	b = binary.LittleEndian.AppendUint32(b, uint32(h.block))
	b = binary.LittleEndian.AppendUint64(b, uint64(h.packSize))
	b = append(b, h.packHash[:]...)
	return append(b, h.bodyHash[:]...)
}

// decodeFragmentHeader parses and bounds a fragment header; fileSize is the
// fragment file's size, which must be the header plus one block per stripe.
func decodeFragmentHeader(b []byte, fileSize int64) (fragmentHeader, error) {
	var h fragmentHeader
	if len(b) < fragmentHdrLen {
		return h, fmt.Errorf("fragment header: %d bytes: %w", len(b), errShort)
	}
	if string(b[:8]) != fragmentMagic {
		return h, fmt.Errorf("fragment: not an erasure fragment (magic %q)", b[:8])
	}
	if v := binary.LittleEndian.Uint16(b[8:]); v != fragmentVersion {
		return h, fmt.Errorf("fragment: version %d, this build reads %d", v, fragmentVersion)
	}
	h.k, h.m, h.index = int(b[10]), int(b[11]), int(b[12])
	h.block = int(binary.LittleEndian.Uint32(b[13:]))
	size := binary.LittleEndian.Uint64(b[17:])
	copy(h.packHash[:], b[25:])
	copy(h.bodyHash[:], b[25+hashLen:])
	switch {
	case h.k < 1 || h.k > MaxErasureData || h.m < 1 || h.m > MaxErasureParity:
		return h, fmt.Errorf("fragment: K=%d M=%d out of range (1..%d, 1..%d)", h.k, h.m, MaxErasureData, MaxErasureParity)
	case h.index >= h.k+h.m:
		return h, fmt.Errorf("fragment: index %d of %d", h.index, h.k+h.m)
	case h.block < 64 || h.block > erasureBlock:
		return h, fmt.Errorf("fragment: block size %d out of range", h.block)
	case size > MaxPackLen:
		return h, fmt.Errorf("fragment: pack size %d above the limit %d", size, int64(MaxPackLen))
	}
	h.packSize = int64(size)
	if want := int64(fragmentHdrLen) + h.stripes()*int64(h.block); fileSize != want {
		return h, fmt.Errorf("fragment: %d bytes, its header needs %d (truncated or replaced)", fileSize, want)
	}
	return h, nil
}

// MaxPackLen bounds the pack a fragment header may describe.
const MaxPackLen = 1 << 46

// FragmentName is the name of fragment i of pack (a store-relative pack
// name) under K+M erasure coding.
func FragmentName(pack string, i, k, m int) string {
	return pack + ".rs" + strconv.Itoa(i) + "-" + strconv.Itoa(k) + "-" + strconv.Itoa(m)
}

// packListSuffix names, next to a shard's own pack, the list of the packs
// the shard needs (its index's pack table), written with its fragments:
// a store that holds fragments and no pack learns from it what a kept
// shard references (for GC).
const packListSuffix = ".rspacks"

// maxPackList bounds a pack list file.
const maxPackList = 1 << 20

// fragmentOf splits a fragment's (or pack list's) file name into its
// pack's name; ok is false for any other name.
func fragmentOf(name string) (pack string, ok bool) {
	if p, found := strings.CutSuffix(name, packListSuffix); found && strings.HasSuffix(p, ".pack") {
		return p, true
	}
	i := strings.LastIndex(name, ".rs")
	if i < 0 || !strings.HasSuffix(name[:i], ".pack") {
		return "", false
	}
	parts := strings.Split(name[i+3:], "-")
	if len(parts) != 3 {
		return "", false
	}
	for _, p := range parts {
		if _, err := strconv.Atoi(p); err != nil {
			return "", false
		}
	}
	return name[:i], true
}

// FragmentError is a failed write of fragment Index (to the Index-th
// store of EncodeShard): the caller may give that fragment another store
// and encode again (the fragments written stay and are skipped).
type FragmentError struct {
	Index int
	Err   error
}

func (e *FragmentError) Error() string {
	return fmt.Sprintf("erasure fragment %d: %v", e.Index, e.Err)
}

func (e *FragmentError) Unwrap() error { return e.Err }

// EncodeShard writes the K+M erasure fragments of every pack of the shard
// ref names (its own and the older ones it reuses chunks from) to dsts,
// fragment i to dsts[i], skipping a fragment a store already holds with the
// right size (an older cut's, or one written before a failed try). It
// returns the bytes written. A failed write to one of dsts is a
// *FragmentError naming it.
func (s *Store) EncodeShard(ctx context.Context, ref ShardRef, dsts []*Store, k, m int) (int64, error) {
	if k < 1 || k > MaxErasureData || m < 1 || m > MaxErasureParity || len(dsts) != k+m {
		return 0, fmt.Errorf("erasure: K=%d M=%d with %d stores", k, m, len(dsts))
	}
	idx, err := s.readShardIndex(ctx, ref)
	if err != nil {
		return 0, fmt.Errorf("erasure encode from %s: %w", s.where, err)
	}
	enc, err := reedsolomon.New(k, m)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, p := range append([]string{idx.packs[0]}, idx.packs[1:]...) {
		c, err := s.encodePack(ctx, enc, jobDir(ref.Job)+"/"+p, dsts, k, m)
		n += c
		if err != nil {
			return n, fmt.Errorf("erasure encode job %s cut %d rank %d: %w", ref.Job, ref.Epoch, ref.Rank, err)
		}
	}
	list := []byte(strings.Join(idx.packs, "\n") + "\n")
	for i, d := range dsts {
		if err := d.b.Replace(ctx, ref.Pack()+packListSuffix, list); err != nil {
			return n, fmt.Errorf("erasure encode job %s cut %d rank %d: %w", ref.Job, ref.Epoch, ref.Rank, &FragmentError{Index: i, Err: err})
		}
	}
	return n, nil
}

// readPackList reads the pack list written with a shard's fragments: the
// job-relative names of the packs the shard needs. Every line must be a
// pack name.
func (s *Store) readPackList(ctx context.Context, ref ShardRef) ([]string, error) {
	data, err := s.b.ReadFile(ctx, ref.Pack()+packListSuffix, maxPackList)
	if err != nil {
		return nil, err
	}
	lines, err := parsePackList(data, packRel(ref.Epoch, ref.Rank, ref.Incarnation, ref.Nonce))
	if err != nil {
		return nil, corrupt(ref.Job, ref.Epoch, ref.Pack()+packListSuffix, err)
	}
	return lines, nil
}

// parsePackList checks a pack list: newline-terminated pack names, own
// first.
func parsePackList(data []byte, own string) ([]string, error) {
	if len(data) > maxPackList {
		return nil, fmt.Errorf("pack list: %d bytes, limit %d", len(data), maxPackList)
	}
	body, ok := strings.CutSuffix(string(data), "\n")
	if !ok {
		return nil, errors.New("pack list: not newline-terminated")
	}
	lines := strings.Split(body, "\n")
	for _, l := range lines {
		if _, err := parsePackRel(l); err != nil {
			return nil, fmt.Errorf("pack list: %w", err)
		}
	}
	if lines[0] != own {
		return nil, errors.New("pack list of another shard")
	}
	return lines, nil
}

func (s *Store) encodePack(ctx context.Context, enc reedsolomon.Encoder, pack string, dsts []*Store, k, m int) (int64, error) {
	r, err := s.b.Open(ctx, pack)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	block := int(min(int64(erasureBlock), max((r.Size()+int64(k)-1)/int64(k), 64)))
	h := fragmentHeader{k: k, m: m, block: block, packSize: r.Size()}
	fileSize := int64(fragmentHdrLen) + h.stripes()*int64(block)
	// need: the fragments a store lacks (the others are an older cut's,
	// or written by a try that failed at another store).
	need := make([]bool, len(dsts))
	done := true
	for i, d := range dsts {
		if fi, err := d.b.Stat(ctx, FragmentName(pack, i, k, m)); err != nil || fi.Size != fileSize {
			need[i], done = true, false
		}
	}
	if done {
		return 0, nil
	}
	// Two passes: the header records the hashes of the pack and of each
	// fragment body, so the bodies are encoded once to hash them and once
	// to write them (parity is cheap next to the I/O).
	packHash := blake3.New()
	bodyHash := make([]*blake3.Hasher, k+m)
	for i := range bodyHash {
		bodyHash[i] = blake3.New()
	}
	if err := stripes(ctx, r, enc, h, func(blocks [][]byte, data int) error {
		_, _ = packHash.Write(joinData(blocks[:k], data))
		for i, b := range blocks {
			_, _ = bodyHash[i].Write(b)
		}
		return nil
	}); err != nil {
		return 0, err
	}
	copy(h.packHash[:], packHash.Sum(nil))
	ws := make([]backend.Writer, k+m)
	abort := func() {
		for _, w := range ws {
			if w != nil {
				w.Abort()
			}
		}
	}
	for i, d := range dsts {
		if !need[i] {
			continue
		}
		hi := h
		hi.index = i
		copy(hi.bodyHash[:], bodyHash[i].Sum(nil))
		w, err := d.b.Create(ctx, FragmentName(pack, i, k, m))
		if err != nil {
			abort()
			return 0, &FragmentError{Index: i, Err: err}
		}
		ws[i] = w
		if _, err := w.Write(hi.encode()); err != nil {
			abort()
			return 0, &FragmentError{Index: i, Err: err}
		}
	}
	var n int64
	if err := stripes(ctx, r, enc, h, func(blocks [][]byte, _ int) error {
		for i, b := range blocks {
			if ws[i] == nil {
				continue
			}
			if _, err := ws[i].Write(b); err != nil {
				return &FragmentError{Index: i, Err: err}
			}
			n += int64(len(b))
		}
		return nil
	}); err != nil {
		abort()
		return n, err
	}
	for i, w := range ws {
		if w == nil {
			continue
		}
		if err := w.Commit(); err != nil {
			abort()
			return n, &FragmentError{Index: i, Err: err}
		}
		ws[i] = nil // committed: not aborted by a later failure
	}
	return n, nil
}

// joinData is the first data bytes of the stripe's data blocks.
func joinData(blocks [][]byte, data int) []byte {
	out := make([]byte, 0, data)
	for _, b := range blocks {
		out = append(out, b[:min(len(b), data-len(out))]...)
		if len(out) == data {
			break
		}
	}
	return out
}

// stripes reads the pack stripe by stripe, computes the parity and calls
// fn with the K+M blocks and the stripe's count of pack bytes.
func stripes(ctx context.Context, r backend.Reader, enc reedsolomon.Encoder, h fragmentHeader, fn func([][]byte, int) error) error {
	blocks := make([][]byte, h.k+h.m)
	for i := range blocks {
		blocks[i] = make([]byte, h.block)
	}
	per := int64(h.k) * int64(h.block)
	buf := make([]byte, per)
	for st := int64(0); st < h.stripes(); st++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		off := st * per
		data := int(min(per, h.packSize-off))
		clear(buf)
		if _, err := r.ReadAt(buf[:data], off); err != nil && !(errors.Is(err, io.EOF) && data > 0) {
			return err
		}
		for i := 0; i < h.k; i++ {
			copy(blocks[i], buf[i*h.block:(i+1)*h.block])
		}
		if err := enc.Encode(blocks); err != nil {
			return err
		}
		if err := fn(blocks, data); err != nil {
			return err
		}
	}
	return nil
}

// RebuildShard rebuilds the shard ref names into dst from erasure
// fragments in srcs (any stores; each fragment is looked for in all of
// them): the shard's own pack first, then every older pack its index
// lists that dst lacks. A fragment whose body does not hash to its
// header's is not used; a rebuilt pack must hash to what the fragments
// recorded, and the shard is checked in dst afterwards. It returns the
// fragment bytes read.
func (dst *Store) RebuildShard(ctx context.Context, ref ShardRef, srcs []*Store) (int64, error) {
	if err := ref.check(); err != nil {
		return 0, err
	}
	n, err := dst.rebuildPack(ctx, ref.Pack(), srcs)
	if err != nil {
		return n, fmt.Errorf("erasure rebuild job %s cut %d rank %d: %w", ref.Job, ref.Epoch, ref.Rank, err)
	}
	idx, err := dst.readShardIndex(ctx, ref)
	if err != nil {
		return n, fmt.Errorf("erasure rebuild: %w", err)
	}
	for _, p := range idx.packs[1:] {
		name := jobDir(ref.Job) + "/" + p
		if _, err := dst.b.Stat(ctx, name); err == nil {
			continue
		}
		c, err := dst.rebuildPack(ctx, name, srcs)
		n += c
		if err != nil {
			return n, fmt.Errorf("erasure rebuild job %s cut %d rank %d: %w", ref.Job, ref.Epoch, ref.Rank, err)
		}
	}
	if err := dst.HasShard(ctx, ref); err != nil {
		return n, fmt.Errorf("erasure rebuild: %w", err)
	}
	return n, nil
}

// FragmentsHeld lists, sorted, the indices of the erasure fragments of
// the shard's own pack that this store holds: files named as fragments
// of it whose header decodes (bounded) and matches the file's size and
// name. Bodies are not hashed here (a rebuild does that before it uses
// one): it says where fragments are, for tools.
func (s *Store) FragmentsHeld(ctx context.Context, ref ShardRef) ([]int, error) {
	if err := ref.check(); err != nil {
		return nil, err
	}
	pack := ref.Pack()
	names, err := fragmentNames(ctx, s.b, pack)
	if err != nil {
		return nil, err
	}
	var out []int
	for _, name := range names {
		r, h, err := openFragment(ctx, s.b, pack, name)
		if err != nil {
			continue
		}
		r.Close()
		if FragmentName(pack, h.index, h.k, h.m) != name || slices.Contains(out, h.index) {
			continue
		}
		out = append(out, h.index)
	}
	slices.Sort(out)
	return out, nil
}

// fragmentNames lists the names in b that may be erasure fragments of
// pack (<pack>.rs…, not temporary, not directories), at most
// MaxErasureData+MaxErasureParity of them: a directory is no reason to
// hold more. A pack whose directory b lacks has none.
func fragmentNames(ctx context.Context, b backend.Backend, pack string) ([]string, error) {
	dir, base := backend.Split(pack)
	var names []string
	err := b.List(ctx, dir, func(fi backend.FileInfo) error {
		if _, n := backend.Split(fi.Name); !fi.Temp && !fi.IsDir && strings.HasPrefix(n, base+".rs") && len(names) < MaxErasureData+MaxErasureParity {
			names = append(names, fi.Name)
		}
		return nil
	})
	if errors.Is(err, backend.ErrNotExist) {
		return nil, nil
	}
	return names, err
}

// openFragment opens name, a fragment of pack, and decodes its header
// (bounded, checked against the file's size); the caller closes the
// reader. Its body is not read.
func openFragment(ctx context.Context, b backend.Backend, pack, name string) (backend.Reader, fragmentHeader, error) {
	if p, ok := fragmentOf(name); !ok || p != pack {
		return nil, fragmentHeader{}, fmt.Errorf("%s: not a fragment of %s", name, pack)
	}
	r, err := b.Open(ctx, name)
	if err != nil {
		return nil, fragmentHeader{}, err
	}
	hb := make([]byte, fragmentHdrLen)
	if _, err := r.ReadAt(hb, 0); err != nil {
		r.Close()
		return nil, fragmentHeader{}, err
	}
	h, err := decodeFragmentHeader(hb, r.Size())
	if err != nil {
		r.Close()
		return nil, fragmentHeader{}, err
	}
	return r, h, nil
}

type fragmentSrc struct {
	r backend.Reader
	h fragmentHeader
}

func (dst *Store) rebuildPack(ctx context.Context, pack string, srcs []*Store) (int64, error) {
	// Find the fragments: every name <pack>.rs<i>-K-M in every store.
	found := map[int]fragmentSrc{}
	var k, m int
	var read int64
	defer func() {
		for _, f := range found {
			f.r.Close()
		}
	}()
	for _, s := range srcs {
		names, _ := fragmentNames(ctx, s.b, pack)
		for _, name := range names {
			r, h, err := openFragment(ctx, s.b, pack, name)
			if err != nil {
				continue
			}
			if k != 0 && (h.k != k || h.m != m) {
				r.Close()
				continue
			}
			if _, dup := found[h.index]; dup {
				r.Close()
				continue
			}
			// The whole body must hash to the header's before it is used.
			bh := blake3.New()
			if _, err := io.Copy(bh, io.NewSectionReader(r, fragmentHdrLen, r.Size()-fragmentHdrLen)); err != nil || string(bh.Sum(nil)) != string(h.bodyHash[:]) {
				r.Close()
				continue
			}
			read += r.Size()
			k, m = h.k, h.m
			found[h.index] = fragmentSrc{r: r, h: h}
		}
	}
	if k == 0 || len(found) < k {
		return read, fmt.Errorf("pack %s: %d intact erasure fragments, %d needed: %w", pack, len(found), max(k, 1), ErrNotFound)
	}
	var h fragmentHeader
	for _, f := range found {
		h = f.h
		break
	}
	for _, f := range found {
		if f.h.packSize != h.packSize || f.h.packHash != h.packHash || f.h.block != h.block {
			return read, fmt.Errorf("pack %s: erasure fragments disagree on the pack they encode", pack)
		}
	}
	enc, err := reedsolomon.New(k, m)
	if err != nil {
		return read, err
	}
	w, err := dst.b.Create(ctx, pack)
	if err != nil {
		return read, err
	}
	ph := blake3.New()
	blocks := make([][]byte, k+m)
	per := int64(k) * int64(h.block)
	for st := int64(0); st < h.stripes(); st++ {
		if err := ctx.Err(); err != nil {
			w.Abort()
			return read, err
		}
		for i := range blocks {
			f, ok := found[i]
			if !ok {
				blocks[i] = blocks[i][:0]
				continue
			}
			if cap(blocks[i]) < h.block {
				blocks[i] = make([]byte, h.block)
			}
			blocks[i] = blocks[i][:h.block]
			if _, err := f.r.ReadAt(blocks[i], int64(fragmentHdrLen)+st*int64(h.block)); err != nil {
				w.Abort()
				return read, err
			}
		}
		if err := enc.ReconstructData(blocks); err != nil {
			w.Abort()
			return read, err
		}
		data := joinData(blocks[:k], int(min(per, h.packSize-st*per)))
		_, _ = ph.Write(data)
		if _, err := w.Write(data); err != nil {
			w.Abort()
			return read, err
		}
	}
	if string(ph.Sum(nil)) != string(h.packHash[:]) {
		w.Abort()
		return read, fmt.Errorf("pack %s: rebuilt from erasure fragments, BLAKE3 mismatch", pack)
	}
	if err := w.Commit(); err != nil {
		return read, err
	}
	return read, nil
}
