package wire

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/cutpoint/cutpoint/internal/jobname"
)

// JobRecordFormat is the value of JobRecord.Format this package writes.
const JobRecordFormat = 1

// JobRecord is the coordinator's small write-ahead record (job.json in the
// store, R15). The coordinator asks for it to be written, durably, before
// it acts on anything it holds: a new incarnation, a recovery intent, or a
// new block of epoch ids.
type JobRecord struct {
	Format int    `json:"format"`
	Job    string `json:"job"`
	World  int    `json:"world"`
	// Seq counts writes; the coordinator acknowledges a write by it.
	Seq uint64 `json:"seq"`
	// Generation of the coordinator that wrote it (one per coordinator
	// process; claimed by exclusive create by the driver).
	Generation uint64 `json:"generation"`
	// Incarnation g of the ranks.
	Incarnation uint64 `json:"incarnation"`
	// EpochLimit: every epoch id below it may have been used; a later
	// generation starts issuing at it (R3).
	EpochLimit uint64 `json:"epoch_limit"`
	// Recovery is set while a recovery to Incarnation is in progress.
	Recovery *RecoveryIntent `json:"recovery,omitempty"`
	// BadCuts are committed cuts a restore found damaged (ascending): no
	// recovery of this job uses them again, also after a coordinator
	// restart or a --restore.
	BadCuts []uint64 `json:"bad_cuts,omitempty"`
}

// MaxBadCuts bounds JobRecord.BadCuts.
const MaxBadCuts = 4096

// RecoveryIntent: the cut to roll back to (Epoch 0: restart from step 0)
// and the ranks to respawn.
type RecoveryIntent struct {
	Epoch uint64 `json:"epoch"`
	Step  int64  `json:"step"`
	Lost  []int  `json:"lost"`
}

// ValidJobName reports whether s is a valid job name (internal/jobname's
// rule, the store's: no leading '.' or '-').
func ValidJobName(s string) bool { return jobname.Check(s) == nil }

// EncodeJobRecord returns the JSON bytes of rec.
func EncodeJobRecord(rec JobRecord) ([]byte, error) {
	rec.Format = JobRecordFormat
	if err := rec.check(); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("wire: job record: %w", err)
	}
	return append(b, '\n'), nil
}

// DecodeJobRecord decodes and checks a job record.
func DecodeJobRecord(b []byte) (JobRecord, error) {
	if len(b) > MaxJobRecordLen {
		return JobRecord{}, fmt.Errorf("wire: job record of %d bytes > %d: %w", len(b), MaxJobRecordLen, ErrTooLarge)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var rec JobRecord
	if err := dec.Decode(&rec); err != nil {
		return JobRecord{}, fmt.Errorf("wire: job record: %v: %w", err, ErrMalformed)
	}
	if dec.More() {
		return JobRecord{}, fmt.Errorf("wire: job record: trailing data: %w", ErrMalformed)
	}
	if rec.Format != JobRecordFormat {
		return JobRecord{}, fmt.Errorf("wire: job record format %d, this build reads %d: %w", rec.Format, JobRecordFormat, ErrVersion)
	}
	if err := rec.check(); err != nil {
		return JobRecord{}, err
	}
	return rec, nil
}

func (rec *JobRecord) check() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("wire: job record: %s: %w", fmt.Sprintf(format, args...), ErrMalformed)
	}
	if !ValidJobName(rec.Job) {
		return bad("%v", jobname.Check(rec.Job))
	}
	if rec.World < 1 || rec.World > MaxWorld {
		return bad("world %d out of 1..%d", rec.World, MaxWorld)
	}
	if rec.Generation == 0 || rec.Incarnation == 0 {
		return bad("generation %d, incarnation %d: both start at 1", rec.Generation, rec.Incarnation)
	}
	if len(rec.BadCuts) > MaxBadCuts {
		return bad("%d bad cuts > %d", len(rec.BadCuts), MaxBadCuts)
	}
	for i, e := range rec.BadCuts {
		if e == 0 || (i > 0 && e <= rec.BadCuts[i-1]) {
			return bad("bad cuts not ascending, distinct and non-zero at %d", i)
		}
	}
	if ri := rec.Recovery; ri != nil {
		if ri.Step < 0 || (ri.Epoch == 0 && ri.Step != 0) {
			return bad("recovery to epoch %d at step %d", ri.Epoch, ri.Step)
		}
		if len(ri.Lost) > rec.World {
			return bad("%d lost ranks in a world of %d", len(ri.Lost), rec.World)
		}
		for i, r := range ri.Lost {
			if r < 0 || r >= rec.World || (i > 0 && r <= ri.Lost[i-1]) {
				return bad("lost ranks not sorted, distinct and in range at %d", i)
			}
		}
	}
	return nil
}
