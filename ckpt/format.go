package ckpt

import (
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"regexp"

	"github.com/cutpoint/cutpoint/internal/jobname"
	"sort"
	"strconv"
	"time"

	"github.com/zeebo/blake3"
)

// FormatVersion is the version of the store (its layout and
// cutpoint-store.json) and of every structure below but the shard index;
// docs/format.md is its specification. A reader refuses versions it does
// not know.
const FormatVersion = 1

// shardIndexVersion is the version of the shard indexes this build
// writes. Version 2 added the per-chunk filter byte to chunk references,
// version 3 the hash byte (hashID) after the version; versions 1 (every
// chunk plain shuffle, BLAKE3) and 2 (BLAKE3) are still read.
const shardIndexVersion = 3

// packIndexVersion is the version of the pack indexes this build writes.
// Version 2 added the hash byte after the version; version 1 (BLAKE3) is
// still read.
const packIndexVersion = 2

// Limits of the format. Decoders enforce them on hostile input; writers
// refuse to produce anything beyond them.
const (
	MinChunkSize     = 4 << 10
	MaxChunkSize     = 64 << 20
	DefaultChunkSize = 4 << 20

	MaxJobName      = 64
	MaxBufferName   = 256
	MaxBuffers      = 1 << 16
	MaxBufferLen    = 1 << 40 // 1 TiB per buffer
	MaxChannels     = 1 << 20
	MaxMessages     = 1 << 26 // per channel
	MaxMessageLen   = 1 << 30
	MaxMeta         = 1 << 20 // participant state bytes per shard
	MaxIndexLen     = 256 << 20
	MaxWorld        = 1 << 20
	MaxCutMeta      = 256 // entries
	MaxCutMetaKey   = 64
	MaxCutMetaValue = 4096
	MaxManifestLen  = 512 << 20
	MaxJobFileLen   = 1 << 20
	MaxShardRefLen  = 512
	// maxPacksPerShard bounds the pack table of one shard index (its own
	// pack plus the packs of older cuts it reuses chunks from).
	maxPacksPerShard = 1 << 20
)

// Magic markers, one per structure, each 8 bytes.
const (
	magicPack        = "CPTPACK\n"
	magicPackTrailer = "CPTPEND\n"
	magicPackIndex   = "CPTPIDX\n"
	magicShardIndex  = "CPTSIDX\n"
	magicManifest    = "CPTCUT\r\n"
	magicShardRef    = "CPTSREF\n"
)

const (
	packHeaderLen  = 16
	packTrailerLen = 100
	hashLen        = 32
	chunkRefLen    = 4 + 8 + 4 + 1 + 1 + 8 + hashLen // shard index version 2
	chunkRefLenV1  = chunkRefLen - 1                 // version 1: no filter byte
	packEntryLen   = 8 + 4 + 4 + 1 + 8 + hashLen
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// chunkRef locates one chunk: which pack (an index into the shard index's
// pack table), where, how it is stored, the filter that turns its decoded
// bytes back into the buffer's, the checksum of the stored bytes (checked
// before they reach a decoder, and catching flips that decompress to the
// same bytes), and the hash of its filtered (uncompressed) bytes, which is
// also the stored chunk's content address; alg says which functions those
// are (its shard index's). Its raw length follows from its position in the
// stream.
type chunkRef struct {
	pack   uint32
	offset int64
	stored uint32
	codec  codecID
	filter filterID
	alg    hashID
	sum    uint64
	hash   [hashLen]byte
}

// stream is a byte sequence cut into chunks: a protected buffer, or the
// concatenated messages of a channel.
type stream struct {
	length    int64
	elemSize  int
	chunkSize int
	chunks    []chunkRef
}

// rawLen is the raw length of chunk i.
func (s *stream) rawLen(i int) int {
	start := int64(i) * int64(s.chunkSize)
	return int(min(int64(s.chunkSize), s.length-start))
}

type bufferEntry struct {
	name string
	stream
}

type channelEntry struct {
	from     int
	firstSeq uint64
	lengths  []uint32
	stream
}

// shardIndex describes one rank's state in one cut. It is stored in the
// rank's pack for that cut, after the chunks and the pack index.
type shardIndex struct {
	job         string
	epoch       uint64
	rank        int
	incarnation uint64
	step        int64
	baseEpoch   uint64
	created     int64  // unix nanoseconds
	alg         hashID // of every chunk ref
	meta        []byte
	packs       []string // job-relative pack names; packs[0] is this shard's own
	buffers     []bufferEntry
	channels    []channelEntry
}

// packEntry is one chunk physically in a pack, as the pack index lists it.
type packEntry struct {
	offset int64
	stored uint32
	raw    uint32
	codec  codecID
	sum    uint64
	hash   [hashLen]byte
}

// packTrailer ends every pack file and locates its two indexes.
type packTrailer struct {
	packIndexOff, shardIndexOff   int64
	packIndexLen, shardIndexLen   uint32
	packIndexHash, shardIndexHash [hashLen]byte
}

// --- names -----------------------------------------------------------------

// ValidJobName checks a job name: 1 to 64 of [A-Za-z0-9._-], not
// starting with '.' (a hidden file) or '-'. The rule is internal/jobname's,
// the one every layer uses.
func ValidJobName(job string) error { return jobname.Check(job) }

func truncName(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

func epochString(e uint64) string { return fmt.Sprintf("%020d", e) }

func jobDir(job string) string   { return "jobs/" + job }
func cutsDir(job string) string  { return jobDir(job) + "/cuts" }
func packsDir(job string) string { return jobDir(job) + "/packs" }
func manifestName(job string, e uint64) string {
	return cutsDir(job) + "/" + epochString(e) + ".cut"
}

// packRel is a pack's name relative to its job directory, as shard indexes
// record it.
func packRel(epoch uint64, rank int, incarnation uint64, nonce [8]byte) string {
	return fmt.Sprintf("packs/%s/r%06d-g%d-%s.pack", epochString(epoch), rank, incarnation, hex.EncodeToString(nonce[:]))
}

var packRelRE = regexp.MustCompile(`^packs/([0-9]{20})/r([0-9]{6})-g([0-9]{1,20})-([0-9a-f]{16})\.pack$`)

type packID struct {
	epoch       uint64
	rank        int
	incarnation uint64
	nonce       [8]byte
}

// parsePackRel checks a pack name from an index: only names this package
// produces are accepted, so no index can point outside the job's packs
// directory.
func parsePackRel(s string) (packID, error) {
	m := packRelRE.FindStringSubmatch(s)
	if m == nil {
		return packID{}, fmt.Errorf("pack name %q is not packs/<epoch>/r<rank>-g<incarnation>-<nonce>.pack", truncName(s))
	}
	var id packID
	var err error
	if id.epoch, err = strconv.ParseUint(m[1], 10, 64); err != nil {
		return packID{}, fmt.Errorf("pack name %q: epoch: %v", s, err)
	}
	r, _ := strconv.Atoi(m[2])
	id.rank = r
	if id.incarnation, err = strconv.ParseUint(m[3], 10, 64); err != nil {
		return packID{}, fmt.Errorf("pack name %q: incarnation: %v", s, err)
	}
	hex.Decode(id.nonce[:], []byte(m[4]))
	if packRel(id.epoch, id.rank, id.incarnation, id.nonce) != s {
		return packID{}, fmt.Errorf("pack name %q is not in canonical form", s)
	}
	return id, nil
}

// --- ShardRef ----------------------------------------------------------------

// ShardRef is what a rank reports for a durable shard and what a cut's
// manifest records per rank: enough to find the shard index, check it
// (BLAKE3-256 of its bytes) and show sizes. Its binary form is well under
// 1 KiB (MaxShardRefLen) and travels over NATS.
type ShardRef struct {
	Job         string
	Epoch       uint64
	Rank        int
	Incarnation uint64
	Step        int64
	// BaseEpoch is the committed cut whose chunks this shard reuses, 0 for
	// none. GC must keep (pin) that cut until this shard's cut commits or
	// aborts.
	BaseEpoch uint64
	Nonce     [8]byte

	IndexOffset int64 // where the shard index starts in the pack
	IndexLen    int64
	IndexHash   [32]byte

	RawBytes    int64 // bytes of the buffers and channel messages
	StoredBytes int64 // stored (compressed) size of every chunk referenced
	NewBytes    int64 // stored size of the chunks written to this shard's pack
	Chunks      int   // chunks referenced
	NewChunks   int   // chunks written to this shard's pack
}

// Pack returns the store-relative name of the shard's pack file.
func (r ShardRef) Pack() string {
	return jobDir(r.Job) + "/" + packRel(r.Epoch, r.Rank, r.Incarnation, r.Nonce)
}

func (r ShardRef) check() error {
	if err := ValidJobName(r.Job); err != nil {
		return err
	}
	switch {
	case r.Epoch == 0:
		return fmt.Errorf("epoch 0 (epochs start at 1)")
	case r.Rank < 0 || r.Rank >= MaxWorld:
		return fmt.Errorf("rank %d out of range", r.Rank)
	case r.Incarnation == 0:
		return fmt.Errorf("incarnation 0 (incarnations start at 1)")
	case r.Step < 0:
		return fmt.Errorf("negative step %d", r.Step)
	case r.BaseEpoch >= r.Epoch:
		return fmt.Errorf("base epoch %d not older than epoch %d", r.BaseEpoch, r.Epoch)
	case r.IndexOffset < packHeaderLen || r.IndexLen <= 0 || r.IndexLen > MaxIndexLen:
		return fmt.Errorf("index at %d length %d out of range", r.IndexOffset, r.IndexLen)
	case r.RawBytes < 0 || r.StoredBytes < 0 || r.NewBytes < 0 || r.NewBytes > r.StoredBytes:
		return fmt.Errorf("byte counts raw %d stored %d new %d inconsistent", r.RawBytes, r.StoredBytes, r.NewBytes)
	case r.Chunks < 0 || r.NewChunks < 0 || r.NewChunks > r.Chunks:
		return fmt.Errorf("chunk counts %d, new %d inconsistent", r.Chunks, r.NewChunks)
	}
	return nil
}

func (r ShardRef) encode(e *encoder) {
	e.raw([]byte(magicShardRef))
	e.u16(FormatVersion)
	e.str8(r.Job)
	e.u64(r.Epoch)
	e.u32(uint32(r.Rank))
	e.u64(r.Incarnation)
	e.i64(r.Step)
	e.u64(r.BaseEpoch)
	e.raw(r.Nonce[:])
	e.i64(r.IndexOffset)
	e.u32(uint32(r.IndexLen))
	e.raw(r.IndexHash[:])
	e.i64(r.RawBytes)
	e.i64(r.StoredBytes)
	e.i64(r.NewBytes)
	e.u32(uint32(r.Chunks))
	e.u32(uint32(r.NewChunks))
}

// MarshalBinary encodes the reference (versioned, with a CRC-32C).
func (r ShardRef) MarshalBinary() ([]byte, error) {
	if err := r.check(); err != nil {
		return nil, fmt.Errorf("shard ref: %w", err)
	}
	e := encoder{b: make([]byte, 0, 200)}
	r.encode(&e)
	e.u32(crc32.Checksum(e.b, castagnoli))
	return e.b, nil
}

// UnmarshalShardRef decodes MarshalBinary's output. Any other input,
// including one over MaxShardRefLen bytes, is an error saying what is wrong.
func UnmarshalShardRef(b []byte) (ShardRef, error) {
	if len(b) > MaxShardRefLen {
		return ShardRef{}, fmt.Errorf("shard ref: %d bytes, limit %d", len(b), MaxShardRefLen)
	}
	if len(b) < 4 {
		return ShardRef{}, fmt.Errorf("shard ref: %d bytes: %w", len(b), errShort)
	}
	body := b[:len(b)-4]
	d := decoder{b: body}
	r := decodeShardRef(&d)
	d.end("shard ref")
	if d.err != nil {
		return ShardRef{}, fmt.Errorf("shard ref: %w", d.err)
	}
	if got, want := crc32.Checksum(body, castagnoli), leU32(b[len(b)-4:]); got != want {
		return ShardRef{}, fmt.Errorf("shard ref: CRC-32C %08x, recorded %08x", got, want)
	}
	if err := r.check(); err != nil {
		return ShardRef{}, fmt.Errorf("shard ref: %w", err)
	}
	return r, nil
}

func leU32(p []byte) uint32 {
	return uint32(p[0]) | uint32(p[1])<<8 | uint32(p[2])<<16 | uint32(p[3])<<24
}

func decodeShardRef(d *decoder) ShardRef {
	var r ShardRef
	d.magic(magicShardRef, "shard ref")
	if v := d.u16(); d.err == nil && v != FormatVersion {
		d.fail("format version %d, this build reads %d", v, FormatVersion)
	}
	r.Job = d.str8()
	r.Epoch = d.u64()
	r.Rank = int(d.u32())
	r.Incarnation = d.u64()
	r.Step = d.i64()
	r.BaseEpoch = d.u64()
	copy(r.Nonce[:], d.take(8))
	r.IndexOffset = d.i64()
	r.IndexLen = int64(d.u32())
	r.IndexHash = d.hash()
	r.RawBytes = d.i64()
	r.StoredBytes = d.i64()
	r.NewBytes = d.i64()
	r.Chunks = int(d.u32())
	r.NewChunks = int(d.u32())
	return r
}

// --- pack header, pack index, trailer -------------------------------------

func packHeader() []byte {
	e := encoder{b: make([]byte, 0, packHeaderLen)}
	e.raw([]byte(magicPack))
	e.u16(FormatVersion)
	e.u16(0)
	e.u32(0)
	return e.b
}

func checkPackHeader(p []byte) error {
	d := decoder{b: p}
	d.magic(magicPack, "pack file")
	if v := d.u16(); d.err == nil && v != FormatVersion {
		d.fail("format version %d, this build reads %d", v, FormatVersion)
	}
	// The reserved fields are zero in version 1, which keeps every byte of
	// a pack covered by a check.
	if r1, r2 := d.u16(), d.u32(); d.err == nil && (r1 != 0 || r2 != 0) {
		d.fail("reserved header fields %#x %#x are not zero", r1, r2)
	}
	d.end("pack header")
	return d.err
}

func encodePackIndex(alg hashID, entries []packEntry) []byte {
	e := encoder{b: make([]byte, 0, 16+len(entries)*packEntryLen)}
	e.raw([]byte(magicPackIndex))
	e.u16(packIndexVersion)
	e.u8(uint8(alg))
	e.u32(uint32(len(entries)))
	for _, c := range entries {
		e.i64(c.offset)
		e.u32(c.stored)
		e.u32(c.raw)
		e.u8(uint8(c.codec))
		e.u64(c.sum)
		e.raw(c.hash[:])
	}
	return e.b
}

// decodePackIndex decodes a pack index found at dataEnd (the end of the
// chunk area): every entry must lie inside [packHeaderLen, dataEnd). It
// returns the entries and the hash they were computed with.
func decodePackIndex(b []byte, dataEnd int64) ([]packEntry, hashID, error) {
	d := decoder{b: b}
	d.magic(magicPackIndex, "pack index")
	alg := hashBLAKE3
	version := d.u16()
	switch {
	case d.err != nil:
	case version == packIndexVersion:
		alg = d.alg()
	case version != 1:
		d.fail("format version %d, this build reads 1 to %d", version, packIndexVersion)
	}
	n := d.count(packEntryLen, MaxIndexLen/packEntryLen, "pack index entries")
	entries := make([]packEntry, 0, n)
	for i := 0; i < n && d.err == nil; i++ {
		c := packEntry{offset: d.i64(), stored: d.u32(), raw: d.u32(), codec: codecID(d.u8()), sum: d.u64(), hash: d.hash()}
		if d.err != nil {
			break
		}
		if err := checkExtent(c.offset, int64(c.stored), dataEnd); err != nil {
			d.fail("entry %d: %v", i, err)
		}
		if !alg.checkPadding(&c.hash) {
			d.fail("entry %d: %s hash with non-zero padding", i, alg)
		}
		if c.codec == codecSplit && version < packIndexVersion {
			d.fail("entry %d: codec %s in a version-%d index", i, c.codec, version)
		}
		if !c.codec.valid() || c.raw == 0 || c.raw > MaxChunkSize || c.stored > c.raw ||
			(c.codec == codecNone && c.stored != c.raw) {
			d.fail("entry %d: codec %d, stored %d, raw %d inconsistent", i, c.codec, c.stored, c.raw)
		}
		entries = append(entries, c)
	}
	d.end("pack index")
	if d.err != nil {
		return nil, 0, d.err
	}
	return entries, alg, nil
}

func checkExtent(off, n, end int64) error {
	if off < packHeaderLen || n < 0 || off > end || n > end-off {
		return fmt.Errorf("extent [%d, +%d) outside the chunk area [%d, %d)", off, n, packHeaderLen, end)
	}
	return nil
}

func encodeTrailer(t packTrailer) []byte {
	e := encoder{b: make([]byte, 0, packTrailerLen)}
	e.i64(t.packIndexOff)
	e.u32(t.packIndexLen)
	e.i64(t.shardIndexOff)
	e.u32(t.shardIndexLen)
	e.raw(t.packIndexHash[:])
	e.raw(t.shardIndexHash[:])
	e.u32(crc32.Checksum(e.b, castagnoli))
	e.raw([]byte(magicPackTrailer))
	return e.b
}

// decodeTrailer decodes the last packTrailerLen bytes of a pack of the
// given size and checks that the indexes lie where the format puts them:
// pack index right after the chunks, shard index right after it, trailer
// right after that.
func decodeTrailer(p []byte, size int64) (packTrailer, error) {
	if len(p) != packTrailerLen {
		return packTrailer{}, fmt.Errorf("pack trailer: %d bytes, want %d", len(p), packTrailerLen)
	}
	d := decoder{b: p}
	var t packTrailer
	t.packIndexOff = d.i64()
	t.packIndexLen = d.u32()
	t.shardIndexOff = d.i64()
	t.shardIndexLen = d.u32()
	t.packIndexHash = d.hash()
	t.shardIndexHash = d.hash()
	crc := d.u32()
	d.magic(magicPackTrailer, "pack trailer")
	if d.err != nil {
		return packTrailer{}, fmt.Errorf("pack trailer: %w", d.err)
	}
	if got := crc32.Checksum(p[:88], castagnoli); got != crc {
		return packTrailer{}, fmt.Errorf("pack trailer: CRC-32C %08x, recorded %08x", got, crc)
	}
	if t.packIndexOff < packHeaderLen || t.packIndexLen > MaxIndexLen || t.shardIndexLen > MaxIndexLen ||
		t.shardIndexOff != t.packIndexOff+int64(t.packIndexLen) ||
		t.shardIndexOff+int64(t.shardIndexLen)+packTrailerLen != size {
		return packTrailer{}, fmt.Errorf("pack trailer: index extents (%d+%d, %d+%d) do not fit a %d-byte pack",
			t.packIndexOff, t.packIndexLen, t.shardIndexOff, t.shardIndexLen, size)
	}
	return t, nil
}

// --- shard index -----------------------------------------------------------

func encodeStream(e *encoder, s *stream) {
	e.u64(uint64(s.length))
	e.u8(uint8(s.elemSize))
	e.u32(uint32(s.chunkSize))
	e.u32(uint32(len(s.chunks)))
	for _, c := range s.chunks {
		e.u32(c.pack)
		e.i64(c.offset)
		e.u32(c.stored)
		e.u8(uint8(c.codec))
		e.u8(uint8(c.filter))
		e.u64(c.sum)
		e.raw(c.hash[:])
	}
}

func encodeShardIndex(x *shardIndex) []byte {
	e := encoder{b: make([]byte, 0, 4096)}
	e.raw([]byte(magicShardIndex))
	e.u16(shardIndexVersion)
	e.u8(uint8(x.alg))
	e.str8(x.job)
	e.u64(x.epoch)
	e.u32(uint32(x.rank))
	e.u64(x.incarnation)
	e.i64(x.step)
	e.u64(x.baseEpoch)
	e.i64(x.created)
	e.bytes32(x.meta)
	e.u32(uint32(len(x.packs)))
	for _, p := range x.packs {
		e.str16(p)
	}
	e.u32(uint32(len(x.buffers)))
	for i := range x.buffers {
		b := &x.buffers[i]
		e.str16(b.name)
		encodeStream(&e, &b.stream)
	}
	e.u32(uint32(len(x.channels)))
	for i := range x.channels {
		c := &x.channels[i]
		e.u32(uint32(c.from))
		e.u64(c.firstSeq)
		e.u32(uint32(len(c.lengths)))
		for _, l := range c.lengths {
			e.uvarint(uint64(l))
		}
		encodeStream(&e, &c.stream)
	}
	return e.b
}

// decodeStream decodes a stream of a shard index of the given version
// whose chunks were hashed with alg.
func decodeStream(d *decoder, npacks int, what string, version uint16, alg hashID) stream {
	var s stream
	length := d.u64()
	s.elemSize = int(d.u8())
	s.chunkSize = int(d.u32())
	if d.err != nil {
		return s
	}
	if length > MaxBufferLen {
		d.fail("%s: length %d over the limit %d", what, length, int64(MaxBufferLen))
		return s
	}
	s.length = int64(length)
	if !validElemSize(s.elemSize) {
		d.fail("%s: element size %d", what, s.elemSize)
		return s
	}
	if err := checkChunkSize(s.chunkSize); err != nil {
		d.fail("%s: %v", what, err)
		return s
	}
	want := ceilDiv(s.length, s.chunkSize)
	refLen := chunkRefLen
	if version == 1 {
		refLen = chunkRefLenV1
	}
	n := d.count(refLen, MaxIndexLen/refLen, what+" chunks")
	if d.err != nil {
		return s
	}
	if int64(n) != want {
		d.fail("%s: %d chunks, a %d-byte stream of %d-byte chunks has %d", what, n, s.length, s.chunkSize, want)
		return s
	}
	s.chunks = make([]chunkRef, n)
	for i := range s.chunks {
		c := chunkRef{pack: d.u32(), offset: d.i64(), stored: d.u32(), codec: codecID(d.u8()), alg: alg}
		if version > 1 {
			c.filter = filterID(d.u8())
		}
		c.sum, c.hash = d.u64(), d.hash()
		if d.err != nil {
			return s
		}
		raw := s.rawLen(i)
		switch {
		case int(c.pack) >= npacks:
			d.fail("%s chunk %d: pack %d of %d", what, i, c.pack, npacks)
		case !c.codec.valid():
			d.fail("%s chunk %d: unknown codec %d", what, i, c.codec)
		case c.codec == codecSplit && version < 3:
			d.fail("%s chunk %d: codec %s in a version-%d index", what, i, c.codec, version)
		case !c.filter.validFor(s.elemSize):
			d.fail("%s chunk %d: filter %d with element size %d", what, i, c.filter, s.elemSize)
		case !alg.checkPadding(&c.hash):
			d.fail("%s chunk %d: %s hash with non-zero padding", what, i, alg)
		case c.stored == 0 || int64(c.stored) > int64(raw) || (c.codec == codecNone && int(c.stored) != raw):
			d.fail("%s chunk %d: stored %d bytes with codec %s for %d raw", what, i, c.stored, c.codec, raw)
		case c.offset < packHeaderLen || c.offset > 1<<62:
			d.fail("%s chunk %d: offset %d", what, i, c.offset)
		}
		s.chunks[i] = c
	}
	return s
}

func decodeShardIndex(b []byte) (*shardIndex, error) {
	if len(b) > MaxIndexLen {
		return nil, fmt.Errorf("shard index: %d bytes, limit %d", len(b), MaxIndexLen)
	}
	d := decoder{b: b}
	d.magic(magicShardIndex, "shard index")
	version := d.u16()
	if d.err == nil && (version < 1 || version > shardIndexVersion) {
		d.fail("format version %d, this build reads 1 to %d", version, shardIndexVersion)
	}
	x := &shardIndex{}
	if version >= 3 {
		x.alg = d.alg()
	}
	x.job = d.str8()
	x.epoch = d.u64()
	x.rank = int(d.u32())
	x.incarnation = d.u64()
	x.step = d.i64()
	x.baseEpoch = d.u64()
	x.created = d.i64()
	x.meta = d.bytes32(MaxMeta, "meta")
	if d.err == nil {
		if err := ValidJobName(x.job); err != nil {
			d.fail("%v", err)
		} else if x.epoch == 0 || x.rank >= MaxWorld || x.incarnation == 0 || x.step < 0 || x.baseEpoch >= x.epoch {
			d.fail("epoch %d, rank %d, incarnation %d, step %d, base %d out of range", x.epoch, x.rank, x.incarnation, x.step, x.baseEpoch)
		}
	}
	np := d.count(2, maxPacksPerShard, "packs")
	seen := map[string]bool{}
	for i := 0; i < np && d.err == nil; i++ {
		p := d.str16()
		if d.err != nil {
			break
		}
		id, err := parsePackRel(p)
		if err != nil {
			d.fail("pack %d: %v", i, err)
			break
		}
		if seen[p] {
			d.fail("pack %q listed twice", p)
		}
		seen[p] = true
		if i == 0 && (id.epoch != x.epoch || id.rank != x.rank || id.incarnation != x.incarnation) {
			d.fail("own pack %q does not belong to epoch %d rank %d incarnation %d", p, x.epoch, x.rank, x.incarnation)
		}
		if i > 0 && id.epoch >= x.epoch {
			d.fail("pack %q is not older than epoch %d", p, x.epoch)
		}
		x.packs = append(x.packs, p)
	}
	if d.err == nil && np == 0 {
		d.fail("no packs")
	}
	nb := d.count(2+8+1+4+4, MaxBuffers, "buffers")
	names := map[string]bool{}
	for i := 0; i < nb && d.err == nil; i++ {
		name := d.str16()
		if d.err == nil {
			if err := validBufferName(name); err != nil {
				d.fail("buffer %d: %v", i, err)
				break
			}
			if names[name] {
				d.fail("buffer %q listed twice", name)
				break
			}
			names[name] = true
		}
		s := decodeStream(&d, len(x.packs), fmt.Sprintf("buffer %q", name), version, x.alg)
		x.buffers = append(x.buffers, bufferEntry{name: name, stream: s})
	}
	nc := d.count(4+8+4+8+1+4+4, MaxChannels, "channels")
	froms := map[int]bool{}
	for i := 0; i < nc && d.err == nil; i++ {
		c := channelEntry{from: int(d.u32()), firstSeq: d.u64()}
		if d.err == nil && (c.from >= MaxWorld || froms[c.from]) {
			d.fail("channel %d: from rank %d out of range or repeated", i, c.from)
			break
		}
		froms[c.from] = true
		nm := d.count(1, MaxMessages, "messages")
		var total uint64
		c.lengths = make([]uint32, 0, nm)
		for j := 0; j < nm && d.err == nil; j++ {
			l := d.uvarint()
			if l > MaxMessageLen {
				d.fail("channel from %d message %d: %d bytes over the limit", c.from, j, l)
			}
			total += l
			c.lengths = append(c.lengths, uint32(l))
		}
		c.stream = decodeStream(&d, len(x.packs), fmt.Sprintf("channel from %d", c.from), version, x.alg)
		if d.err == nil && (uint64(c.length) != total || c.elemSize != 1) {
			d.fail("channel from %d: %d message bytes, stream of %d (element size %d)", c.from, total, c.length, c.elemSize)
		}
		x.channels = append(x.channels, c)
	}
	d.end("shard index")
	if d.err != nil {
		return nil, fmt.Errorf("shard index: %w", d.err)
	}
	return x, nil
}

func validElemSize(s int) bool { return s == 1 || s == 2 || s == 4 || s == 8 }

func checkChunkSize(c int) error {
	if c < MinChunkSize || c > MaxChunkSize || c%64 != 0 {
		return fmt.Errorf("chunk size %d: want a multiple of 64 in [%d, %d]", c, MinChunkSize, MaxChunkSize)
	}
	return nil
}

// validBufferName accepts printable ASCII names of 1..MaxBufferName bytes;
// buffer names are shown by inspect and in errors, never used as paths.
func validBufferName(name string) error {
	if name == "" || len(name) > MaxBufferName {
		return fmt.Errorf("buffer name %q: want 1 to %d bytes", truncName(name), MaxBufferName)
	}
	for i := 0; i < len(name); i++ {
		if name[i] < 0x20 || name[i] > 0x7e {
			return fmt.Errorf("buffer name %q: byte %#x is not printable ASCII", truncName(name), name[i])
		}
	}
	return nil
}

// --- manifest ----------------------------------------------------------------

// manifest is a committed cut: the file whose rename commits it.
type manifest struct {
	job         string
	epoch       uint64
	step        int64
	world       int
	incarnation uint64
	time        int64 // unix nanoseconds
	meta        map[string]string
	shards      []ShardRef
}

func encodeManifest(m *manifest) []byte {
	e := encoder{b: make([]byte, 0, 256+len(m.shards)*220)}
	e.raw([]byte(magicManifest))
	e.u16(FormatVersion)
	e.str8(m.job)
	e.u64(m.epoch)
	e.i64(m.step)
	e.u32(uint32(m.world))
	e.u64(m.incarnation)
	e.i64(m.time)
	keys := make([]string, 0, len(m.meta))
	for k := range m.meta {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	e.u16(uint16(len(keys)))
	for _, k := range keys {
		e.str8(k)
		e.str16(m.meta[k])
	}
	for _, r := range m.shards {
		var se encoder
		r.encode(&se)
		e.str16(string(se.b))
	}
	h := blake3.Sum256(e.b)
	e.raw(h[:])
	return e.b
}

func checkCutMeta(meta map[string]string) error {
	if len(meta) > MaxCutMeta {
		return fmt.Errorf("cut meta: %d entries, limit %d", len(meta), MaxCutMeta)
	}
	for k, v := range meta {
		if k == "" || len(k) > MaxCutMetaKey || len(v) > MaxCutMetaValue {
			return fmt.Errorf("cut meta %q: key of 1..%d bytes and value of at most %d bytes", truncName(k), MaxCutMetaKey, MaxCutMetaValue)
		}
	}
	return nil
}

func decodeManifest(b []byte) (*manifest, error) {
	if len(b) > MaxManifestLen {
		return nil, fmt.Errorf("manifest: %d bytes, limit %d", len(b), MaxManifestLen)
	}
	if len(b) < hashLen+len(magicManifest) {
		return nil, fmt.Errorf("manifest: %d bytes: %w", len(b), errShort)
	}
	body := b[:len(b)-hashLen]
	if h := blake3.Sum256(body); string(h[:]) != string(b[len(body):]) {
		// Check the magic first so that a file of another kind is named as
		// such rather than as a damaged manifest.
		if string(b[:len(magicManifest)]) != magicManifest {
			return nil, fmt.Errorf("manifest: not a cut manifest (magic %q)", b[:len(magicManifest)])
		}
		return nil, fmt.Errorf("manifest: BLAKE3 mismatch: damaged or truncated")
	}
	d := decoder{b: body}
	d.magic(magicManifest, "cut manifest")
	if v := d.u16(); d.err == nil && v != FormatVersion {
		d.fail("format version %d, this build reads %d", v, FormatVersion)
	}
	m := &manifest{}
	m.job = d.str8()
	m.epoch = d.u64()
	m.step = d.i64()
	m.world = int(d.u32())
	m.incarnation = d.u64()
	m.time = d.i64()
	if d.err == nil {
		if err := ValidJobName(m.job); err != nil {
			d.fail("%v", err)
		} else if m.epoch == 0 || m.step < 0 || m.world <= 0 || m.world > MaxWorld || m.incarnation == 0 {
			d.fail("epoch %d, step %d, world %d, incarnation %d out of range", m.epoch, m.step, m.world, m.incarnation)
		}
	}
	nm := int(d.u16())
	if d.err == nil && nm > MaxCutMeta {
		d.fail("meta: %d entries, limit %d", nm, MaxCutMeta)
	}
	m.meta = map[string]string{}
	for i := 0; i < nm && d.err == nil; i++ {
		k := d.str8()
		v := d.str16()
		m.meta[k] = v
	}
	if d.err == nil {
		if err := checkCutMeta(m.meta); err != nil {
			d.fail("%v", err)
		}
		if len(m.meta) != nm {
			d.fail("meta: repeated key")
		}
	}
	if d.err == nil && int64(m.world)*(2+40) > int64(d.left()) {
		d.fail("world %d does not fit in %d bytes", m.world, d.left())
	}
	for i := 0; i < m.world && d.err == nil; i++ {
		n := int(d.u16())
		if d.err == nil && n > MaxShardRefLen {
			d.fail("rank %d: shard ref of %d bytes", i, n)
			break
		}
		sd := decoder{b: d.take(n)}
		if d.err != nil {
			break
		}
		r := decodeShardRef(&sd)
		sd.end("shard ref")
		if sd.err != nil {
			d.fail("rank %d: %v", i, sd.err)
			break
		}
		if err := r.check(); err != nil {
			d.fail("rank %d: %v", i, err)
			break
		}
		if r.Job != m.job || r.Epoch != m.epoch || r.Rank != i || r.Step != m.step || r.Incarnation != m.incarnation {
			d.fail("rank %d: shard of job %q epoch %d rank %d step %d incarnation %d in a cut of job %q epoch %d step %d incarnation %d",
				i, r.Job, r.Epoch, r.Rank, r.Step, r.Incarnation, m.job, m.epoch, m.step, m.incarnation)
			break
		}
		m.shards = append(m.shards, r)
	}
	d.end("manifest")
	if d.err != nil {
		return nil, fmt.Errorf("manifest: %w", d.err)
	}
	return m, nil
}

// cutTime converts a manifest's time.
func cutTime(ns int64) time.Time { return time.Unix(0, ns).UTC() }
