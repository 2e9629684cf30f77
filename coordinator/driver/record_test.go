package driver

import (
	"context"
	"log/slog"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cutpoint/cutpoint/ckpt"
	"github.com/cutpoint/cutpoint/ckpt/backend/fault"
	"github.com/cutpoint/cutpoint/ckpt/backend/mem"
	"github.com/cutpoint/cutpoint/internal/wire"
)

// TestJobRecordWriteRetried: a store that refuses the record write for a
// while (EPERM) delays the write instead of failing the job; one that
// keeps refusing fails it after RecordRetry, naming the error.
func TestJobRecordWriteRetried(t *testing.T) {
	ctx := context.Background()
	f := fault.New(mem.New())
	st, err := ckpt.Open(ctx, f, ckpt.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	refusals := 3
	f.FailOn(func(op fault.Op, name string) error {
		if op == fault.OpReplace && strings.HasSuffix(name, JobRecordFile) && refusals > 0 {
			refusals--
			return syscall.EPERM
		}
		return nil
	})
	d := &driver{cfg: Config{Store: st, RecordRetry: 5 * time.Second}, job: "j", log: slog.New(slog.DiscardHandler)}
	rec := wire.JobRecord{Job: "j", World: 1, Seq: 1, Generation: 1, Incarnation: 1, EpochLimit: 8}
	if err := d.writeRecord(ctx, rec); err != nil {
		t.Fatalf("write with 3 refusals: %v", err)
	}
	if refusals != 0 {
		t.Fatalf("%d refusals left: the write did not go through the store", refusals)
	}
	if b, err := st.GetJobFile(ctx, "j", JobRecordFile); err != nil || !strings.Contains(string(b), `"seq": 1`) {
		t.Fatalf("record not written: %q %v", b, err)
	}
	refusals = 1 << 30
	d.cfg.RecordRetry = 300 * time.Millisecond
	start := time.Now()
	err = d.writeRecord(ctx, rec)
	if err == nil || !strings.Contains(err.Error(), "operation not permitted") {
		t.Fatalf("a store that keeps refusing: %v", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("gave up after %v, bound 300ms", took)
	}
}
