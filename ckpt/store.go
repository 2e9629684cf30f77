package ckpt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cutpoint/cutpoint/ckpt/backend"
	"github.com/cutpoint/cutpoint/ckpt/backend/local"
)

// configName is the store's marker and settings file at its root.
const configName = "cutpoint-store.json"

// Options configure a Store. Zero values take the defaults.
type Options struct {
	// Codec for the chunks this Store writes: "none", "s2", "s2-better",
	// "zstd", "zstd-1".."zstd-19". Empty: the codec the store was created with
	// (s2 for a new store). Each chunk records its codec, so a store can
	// hold several.
	Codec string
	// ChunkSize in bytes, a multiple of 64 in [MinChunkSize,
	// MaxChunkSize]. It is fixed when the store is created (default 4
	// MiB); opening an existing store with a different non-zero value is
	// an error.
	ChunkSize int
	// Workers run shuffle, hash, compress and decompress; default
	// GOMAXPROCS.
	Workers int
	// MaxInFlight bounds the bytes a ShardWriter holds in its pipeline
	// (shuffle and compression buffers: 2 chunk sizes per chunk in
	// flight); default 4 x Workers x ChunkSize, minimum 2 x ChunkSize.
	// The sources' own memory (staging buffers) is not counted.
	MaxInFlight int64
	// Logger; default slog.Default().
	Logger *slog.Logger
	// Create makes Open and OpenDir create the store (and OpenDir its
	// directory) when there is none. Without it a missing store is an
	// error, so a mistyped --store fails instead of starting afresh.
	Create bool
	// Now is the clock for the times recorded in cuts; default time.Now.
	Now func() time.Time
	// Hash is the content hash of a new store: "xxh3" (default: XXH3-128,
	// with XXH3-64 stored checksums) or "blake3" (BLAKE3-256, with XXH64
	// stored checksums; collision resistant, about 12 times the CPU per
	// byte). It is fixed when the store is created; a store created before
	// the choice existed uses blake3. Opening an existing store with a
	// different non-empty value is an error.
	Hash string
	// BufferedIO makes OpenDir's store write packs through the page cache
	// (a restore on the same node may then read them from memory) instead
	// of with O_DIRECT (less CPU per cut, no checkpoint data in the cache).
	BufferedIO bool
}

type storeConfig struct {
	Format    int    `json:"format"`
	ChunkSize int    `json:"chunk_size"`
	Codec     string `json:"codec"`
	// Hash is absent in stores created before it existed: blake3.
	Hash    string `json:"hash,omitempty"`
	Created string `json:"created"`
}

// hash is the store's hash.
func (c storeConfig) hash() hashID {
	if c.Hash == "" {
		return hashBLAKE3
	}
	h, _ := parseHash(c.Hash) // parseConfig checked it
	return h
}

// Store is a checkpoint store: many jobs, each with its committed cuts.
// All methods are safe for concurrent use. Commit and GC of one job are
// serialized within the process; across processes only the holder of the
// job's lease (AcquireLease) may run them.
type Store struct {
	b         backend.Backend
	where     string // for messages: the directory or the backend
	chunkSize int
	workers   int
	inflight  int64
	log       *slog.Logger
	now       func() time.Time
	codecs    *codecs
	hash      hashID       // of the chunks this store writes
	filters   filterPolicy // filterAuto but in tests and benchmarks

	jobLocks sync.Map // job name -> *sync.Mutex
	bufPool  sync.Pool
}

// OpenDir opens the store in directory dir; see Options.Create.
func OpenDir(ctx context.Context, dir string, opts Options) (*Store, error) {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist) && opts.Create:
		if err := local.MkdirAll(dir); err != nil {
			return nil, fmt.Errorf("create store %s: %w", dir, err)
		}
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("store %s: directory does not exist: %w", dir, ErrNoStore)
	case err != nil:
		return nil, fmt.Errorf("store %s: %w", dir, err)
	case !fi.IsDir():
		return nil, fmt.Errorf("store %s: not a directory: %w", dir, ErrNoStore)
	}
	b, err := local.NewWithOptions(dir, local.Options{Buffered: opts.BufferedIO})
	if err != nil {
		return nil, err
	}
	s, err := open(ctx, b, dir, opts)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Open opens the store kept by b; see Options.Create.
func Open(ctx context.Context, b backend.Backend, opts Options) (*Store, error) {
	return open(ctx, b, fmt.Sprint(b), opts)
}

func open(ctx context.Context, b backend.Backend, where string, opts Options) (*Store, error) {
	if opts.ChunkSize != 0 {
		if err := checkChunkSize(opts.ChunkSize); err != nil {
			return nil, err
		}
	}
	var codecSet *Codec
	if opts.Codec != "" {
		c, err := ParseCodec(opts.Codec)
		if err != nil {
			return nil, err
		}
		codecSet = &c
	}
	if opts.Hash != "" {
		if _, err := parseHash(opts.Hash); err != nil {
			return nil, fmt.Errorf("store options: %w", err)
		}
	}
	if opts.Workers < 0 || opts.MaxInFlight < 0 {
		return nil, fmt.Errorf("store options: negative Workers %d or MaxInFlight %d", opts.Workers, opts.MaxInFlight)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	cfg, err := readConfig(ctx, b, where)
	if errors.Is(err, ErrNoStore) && opts.Create {
		cfg = storeConfig{Format: FormatVersion, ChunkSize: opts.ChunkSize, Codec: "s2", Hash: opts.Hash, Created: now().UTC().Format(time.RFC3339)}
		if cfg.ChunkSize == 0 {
			cfg.ChunkSize = DefaultChunkSize
		}
		if cfg.Hash == "" {
			cfg.Hash = DefaultHash
		}
		if codecSet != nil {
			cfg.Codec = codecSet.String()
		}
		data, _ := json.MarshalIndent(cfg, "", "  ")
		err = b.CreateExclusive(ctx, configName, append(data, '\n'))
		if errors.Is(err, backend.ErrExist) {
			// Another process created the store at the same moment; it
			// claims the name before it writes the content, so a read
			// meanwhile may find the file still empty: wait for it.
			cfg, err = readConfig(ctx, b, where)
			for i := 0; i < 100 && errors.Is(err, ErrCorrupt) && ctx.Err() == nil; i++ {
				time.Sleep(10 * time.Millisecond)
				cfg, err = readConfig(ctx, b, where)
			}
		}
	}
	if err != nil {
		return nil, err
	}
	if opts.ChunkSize != 0 && opts.ChunkSize != cfg.ChunkSize {
		return nil, fmt.Errorf("store %s: created with chunk size %d, asked for %d", where, cfg.ChunkSize, opts.ChunkSize)
	}
	if opts.Hash != "" && opts.Hash != cfg.hash().String() {
		return nil, fmt.Errorf("store %s: created with hash %s, asked for %s", where, cfg.hash(), opts.Hash)
	}
	codec, _ := ParseCodec(cfg.Codec)
	if codecSet != nil {
		codec = *codecSet
	}
	workers := opts.Workers
	if workers == 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	inflight := opts.MaxInFlight
	if inflight == 0 {
		inflight = 4 * int64(workers) * int64(cfg.ChunkSize)
	}
	if inflight < 2*int64(cfg.ChunkSize) {
		return nil, fmt.Errorf("store options: MaxInFlight %d is below 2 chunk sizes (%d)", inflight, 2*cfg.ChunkSize)
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	s := &Store{
		b: b, where: where, chunkSize: cfg.ChunkSize, workers: workers, inflight: inflight,
		log: log, now: now, codecs: &codecs{codec: codec, workers: workers}, hash: cfg.hash(),
	}
	return s, nil
}

func readConfig(ctx context.Context, b backend.Backend, where string) (storeConfig, error) {
	data, err := b.ReadFile(ctx, configName, 64<<10)
	if errors.Is(err, backend.ErrNotExist) {
		return storeConfig{}, fmt.Errorf("store %s: no %s: %w", where, configName, ErrNoStore)
	}
	if err != nil {
		return storeConfig{}, fmt.Errorf("store %s: %w", where, err)
	}
	cfg, err := parseConfig(data)
	if err != nil {
		return storeConfig{}, &CorruptError{Rank: -1, Chunk: -1, Offset: -1, File: configName, Err: fmt.Errorf("store %s: %w", where, err)}
	}
	return cfg, nil
}

func parseConfig(data []byte) (storeConfig, error) {
	var cfg storeConfig
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return cfg, err
	}
	if dec.More() {
		return cfg, errors.New("trailing data")
	}
	if cfg.Format != FormatVersion {
		return cfg, fmt.Errorf("format %d, this build reads %d", cfg.Format, FormatVersion)
	}
	if err := checkChunkSize(cfg.ChunkSize); err != nil {
		return cfg, err
	}
	if _, err := ParseCodec(cfg.Codec); err != nil || cfg.Codec == "" {
		return cfg, fmt.Errorf("codec %q", cfg.Codec)
	}
	if cfg.Hash != "" {
		if _, err := parseHash(cfg.Hash); err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}

// Close releases the codecs. Readers and writers must be finished.
func (s *Store) Close() error {
	s.codecs.close()
	return nil
}

// Hash is the store's content hash: "xxh3" or "blake3" (Options.Hash).
func (s *Store) Hash() string { return s.hash.String() }

// ChunkSize is the store's chunk size; sources cut buffers at multiples of
// it.
func (s *Store) ChunkSize() int { return s.chunkSize }

// Codec is the codec this Store writes with.
func (s *Store) Codec() string { return s.codecs.codec.String() }

// Backend returns the backend (for tools and tests).
func (s *Store) Backend() backend.Backend { return s.b }

func (s *Store) String() string { return s.where }

func (s *Store) jobLock(job string) *sync.Mutex {
	m, _ := s.jobLocks.LoadOrStore(job, &sync.Mutex{})
	return m.(*sync.Mutex)
}

// buf returns a pooled scratch buffer with capacity >= n.
func (s *Store) buf(n int) []byte {
	if p, ok := s.bufPool.Get().(*[]byte); ok && cap(*p) >= n {
		return (*p)[:n]
	}
	return make([]byte, n, max(n, maxCompressed(s.chunkSize)))
}

func (s *Store) putBuf(b []byte) {
	if cap(b) >= s.chunkSize {
		s.bufPool.Put(&b)
	}
}

// --- jobs and job files ------------------------------------------------------

// Jobs lists the jobs that have anything in the store, sorted.
func (s *Store) Jobs(ctx context.Context) ([]string, error) {
	var jobs []string
	err := s.b.List(ctx, "jobs", func(fi backend.FileInfo) error {
		_, name := backend.Split(fi.Name)
		if fi.IsDir && ValidJobName(name) == nil {
			jobs = append(jobs, name)
		}
		return nil
	})
	if errors.Is(err, backend.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store %s: list jobs: %w", s.where, err)
	}
	return jobs, nil
}

func checkJobFileName(job, name string) error {
	if err := ValidJobName(job); err != nil {
		return err
	}
	if name == "cuts" || name == "packs" || backend.ValidName(name) != nil || strings.Contains(name, "/") {
		return fmt.Errorf("job file name %q: want [A-Za-z0-9._-], not cuts or packs", truncName(name))
	}
	return nil
}

// PutJobFile atomically replaces (or creates) a small file of the job, such
// as the coordinator's write-ahead record "job.json"; it is durable when
// PutJobFile returns. At most MaxJobFileLen bytes.
func (s *Store) PutJobFile(ctx context.Context, job, name string, data []byte) error {
	if err := checkJobFileName(job, name); err != nil {
		return err
	}
	if len(data) > MaxJobFileLen {
		return fmt.Errorf("job %s file %s: %d bytes, limit %d", job, name, len(data), MaxJobFileLen)
	}
	if err := s.b.Replace(ctx, jobDir(job)+"/"+name, data); err != nil {
		return fmt.Errorf("job %s: %w", job, err)
	}
	return nil
}

// CreateJobFile creates a small job file that must not exist yet (a
// coordinator's generation claim, e.g. "gen-000003"). When it exists the
// error matches ErrExist. See backend.Backend.CreateExclusive for what a
// crash may leave.
func (s *Store) CreateJobFile(ctx context.Context, job, name string, data []byte) error {
	if err := checkJobFileName(job, name); err != nil {
		return err
	}
	if len(data) > MaxJobFileLen {
		return fmt.Errorf("job %s file %s: %d bytes, limit %d", job, name, len(data), MaxJobFileLen)
	}
	err := s.b.CreateExclusive(ctx, jobDir(job)+"/"+name, data)
	if errors.Is(err, backend.ErrExist) {
		return fmt.Errorf("job %s file %s: %w", job, name, ErrExist)
	}
	if err != nil {
		return fmt.Errorf("job %s: %w", job, err)
	}
	return nil
}

// GetJobFile reads a job file; a missing one matches ErrNotFound.
func (s *Store) GetJobFile(ctx context.Context, job, name string) ([]byte, error) {
	if err := checkJobFileName(job, name); err != nil {
		return nil, err
	}
	data, err := s.b.ReadFile(ctx, jobDir(job)+"/"+name, MaxJobFileLen)
	if errors.Is(err, backend.ErrNotExist) {
		return nil, fmt.Errorf("job %s file %s: %w", job, name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("job %s: %w", job, err)
	}
	return data, nil
}

// ListJobFiles returns the names of the job's files that start with
// prefix, sorted.
func (s *Store) ListJobFiles(ctx context.Context, job, prefix string) ([]string, error) {
	if err := ValidJobName(job); err != nil {
		return nil, err
	}
	var names []string
	err := s.b.List(ctx, jobDir(job), func(fi backend.FileInfo) error {
		_, name := backend.Split(fi.Name)
		if !fi.IsDir && !fi.Temp && strings.HasPrefix(name, prefix) {
			names = append(names, name)
		}
		return nil
	})
	if errors.Is(err, backend.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("job %s: %w", job, err)
	}
	return names, nil
}

// --- committed cuts ----------------------------------------------------------

// CutInfo summarizes a committed cut.
type CutInfo struct {
	Job         string
	Epoch       uint64
	Step        int64
	World       int
	Incarnation uint64
	Time        time.Time
	RawBytes    int64 // logical bytes of all ranks
	StoredBytes int64 // stored size of every chunk the cut references
	NewBytes    int64 // stored bytes the cut wrote (not reused from older cuts)
	Meta        map[string]string
}

// Ratio is RawBytes / StoredBytes (compression, not counting reuse).
func (c CutInfo) Ratio() float64 {
	if c.StoredBytes == 0 {
		return 1
	}
	return float64(c.RawBytes) / float64(c.StoredBytes)
}

// Cut is a committed cut: its summary and one ShardRef per rank.
type Cut struct {
	CutInfo
	Shards []ShardRef
}

func infoOf(m *manifest) CutInfo {
	ci := CutInfo{Job: m.job, Epoch: m.epoch, Step: m.step, World: m.world, Incarnation: m.incarnation, Time: cutTime(m.time), Meta: m.meta}
	for _, r := range m.shards {
		ci.RawBytes = addClamp(ci.RawBytes, r.RawBytes)
		ci.StoredBytes = addClamp(ci.StoredBytes, r.StoredBytes)
		ci.NewBytes = addClamp(ci.NewBytes, r.NewBytes)
	}
	return ci
}

// committedEpochs lists the epochs with a manifest, ascending, from the
// file names alone.
func (s *Store) committedEpochs(ctx context.Context, job string) ([]uint64, error) {
	var epochs []uint64
	err := s.b.List(ctx, cutsDir(job), func(fi backend.FileInfo) error {
		if e, ok := parseManifestName(fi.Name); ok && !fi.IsDir && !fi.Temp {
			epochs = append(epochs, e)
		}
		return nil
	})
	if errors.Is(err, backend.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("job %s: list cuts: %w", job, err)
	}
	return epochs, nil // List returns names in order; names are zero-padded
}

func parseManifestName(name string) (uint64, bool) {
	_, base := backend.Split(name)
	digits, ok := strings.CutSuffix(base, ".cut")
	if !ok || len(digits) != 20 {
		return 0, false
	}
	e, err := strconv.ParseUint(digits, 10, 64)
	if err != nil || e == 0 || epochString(e) != digits {
		return 0, false
	}
	return e, true
}

func (s *Store) loadManifest(ctx context.Context, job string, epoch uint64) (*manifest, error) {
	name := manifestName(job, epoch)
	data, err := s.b.ReadFile(ctx, name, MaxManifestLen)
	if errors.Is(err, backend.ErrNotExist) {
		return nil, fmt.Errorf("job %s cut %d: %w", job, epoch, ErrNotFound)
	}
	if errors.Is(err, backend.ErrTooLarge) {
		return nil, corrupt(job, epoch, name, err)
	}
	if err != nil {
		return nil, fmt.Errorf("job %s cut %d: %w", job, epoch, err)
	}
	m, err := decodeManifest(data)
	if err != nil {
		return nil, corrupt(job, epoch, name, err)
	}
	if m.job != job || m.epoch != epoch {
		return nil, corrupt(job, epoch, name, fmt.Errorf("manifest of job %q cut %d under this name", m.job, m.epoch))
	}
	return m, nil
}

// LoadCut reads a committed cut's manifest. A missing cut matches
// ErrNotFound; a damaged manifest is a *CorruptError.
func (s *Store) LoadCut(ctx context.Context, job string, epoch uint64) (*Cut, error) {
	if err := ValidJobName(job); err != nil {
		return nil, err
	}
	m, err := s.loadManifest(ctx, job, epoch)
	if err != nil {
		return nil, err
	}
	return &Cut{CutInfo: infoOf(m), Shards: m.shards}, nil
}

// List returns the job's committed cuts in ascending epoch order. Damaged
// manifests are left out and reported in the error (each a *CorruptError,
// joined); any other error means the listing failed and cuts is nil. A job
// with no cuts gives an empty list.
func (s *Store) List(ctx context.Context, job string) ([]CutInfo, error) {
	if err := ValidJobName(job); err != nil {
		return nil, err
	}
	epochs, err := s.committedEpochs(ctx, job)
	if err != nil {
		return nil, err
	}
	var cuts []CutInfo
	var damaged []error
	for _, e := range epochs {
		m, err := s.loadManifest(ctx, job, e)
		if errors.Is(err, ErrCorrupt) {
			damaged = append(damaged, err)
			continue
		}
		if errors.Is(err, ErrNotFound) {
			continue // removed by a GC since the listing
		}
		if err != nil {
			return nil, err
		}
		cuts = append(cuts, infoOf(m))
	}
	return cuts, errors.Join(damaged...)
}

// latestEpoch is the highest committed epoch by file name (0: none).
func (s *Store) latestEpoch(ctx context.Context, job string) (uint64, error) {
	epochs, err := s.committedEpochs(ctx, job)
	if err != nil || len(epochs) == 0 {
		return 0, err
	}
	return epochs[len(epochs)-1], nil
}
