package ckpt

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors. Each is documented with the methods that return it; test
// with errors.Is.
var (
	// ErrNoStore: Open or OpenDir found no store at the location (and
	// Options.Create was not set). The error names the location.
	ErrNoStore = errors.New("no cutpoint store here")

	// ErrNotFound: a job, cut, rank, buffer or job file that was asked
	// for does not exist.
	ErrNotFound = errors.New("not found")

	// ErrExist: CreateJobFile found the file already there (another
	// coordinator claimed that generation); Commit found the cut already
	// committed.
	ErrExist = errors.New("already exists")

	// ErrStaleEpoch: Commit was asked to commit an epoch that is not newer
	// than the latest committed cut of the job. Epochs only grow.
	ErrStaleEpoch = errors.New("epoch not newer than the latest committed cut")

	// ErrCorrupt matches every *CorruptError: stored bytes that fail a
	// check (checksum, structure, a missing file a committed cut needs).
	ErrCorrupt = errors.New("damaged checkpoint data")

	// ErrClosed: the ShardWriter was already closed or aborted.
	ErrClosed = errors.New("shard writer closed")

	// ErrAborted: the ShardWriter was aborted while the call ran.
	ErrAborted = errors.New("shard writer aborted")
)

// CorruptError reports damaged or missing stored data with everything
// needed to find it. Fields that do not apply are empty (Rank, Chunk and
// Offset are then -1).
type CorruptError struct {
	Job    string
	Epoch  uint64 // 0: not about one cut
	Rank   int
	Buffer string // buffer name, or "channel from N"
	Chunk  int
	File   string // store-relative file name
	Offset int64
	Err    error // what is wrong
}

func (e *CorruptError) Error() string {
	var b strings.Builder
	sep := func() {
		if b.Len() > 0 {
			b.WriteString(" ")
		}
	}
	if e.Job != "" {
		fmt.Fprintf(&b, "job %s", e.Job)
	}
	if e.Epoch != 0 {
		sep()
		fmt.Fprintf(&b, "cut %d", e.Epoch)
	}
	if e.Rank >= 0 {
		sep()
		fmt.Fprintf(&b, "rank %d", e.Rank)
	}
	if e.Buffer != "" {
		sep()
		fmt.Fprintf(&b, "buffer %q", e.Buffer)
	}
	if e.Chunk >= 0 {
		sep()
		fmt.Fprintf(&b, "chunk %d", e.Chunk)
	}
	if e.File != "" {
		if b.Len() > 0 {
			b.WriteString(":")
		}
		sep()
		fmt.Fprintf(&b, "file %s", e.File)
		if e.Offset >= 0 {
			fmt.Fprintf(&b, " offset %d", e.Offset)
		}
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	if e.Err != nil {
		b.WriteString(e.Err.Error())
	} else {
		b.WriteString("damaged")
	}
	return b.String()
}

func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }
func (e *CorruptError) Unwrap() error        { return e.Err }

// corrupt starts a CorruptError about a file with the unknown fields unset.
func corrupt(job string, epoch uint64, file string, err error) *CorruptError {
	return &CorruptError{Job: job, Epoch: epoch, Rank: -1, Chunk: -1, Offset: -1, File: file, Err: err}
}
