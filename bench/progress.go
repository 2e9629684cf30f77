package bench

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progress shows the run: a bar on a terminal, a log line per task
// otherwise.
type progress struct {
	bar   *progressbar.ProgressBar
	log   *slog.Logger
	total int
	n     int
	t0    time.Time
	task  time.Time
}

func newProgress(w io.Writer, log *slog.Logger, total int) *progress {
	p := &progress{log: log, total: total, t0: time.Now()}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.bar = progressbar.NewOptions(total,
			progressbar.OptionSetWriter(f),
			progressbar.OptionSetDescription("bench"),
			progressbar.OptionShowCount(),
			progressbar.OptionSetElapsedTime(true),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
		)
	}
	return p
}

func (p *progress) start(name string) {
	p.task = time.Now()
	if p.bar != nil {
		p.bar.Describe(name)
		return
	}
	p.log.Info("bench: start", "task", fmt.Sprintf("%d/%d", p.n+1, p.total), "name", name)
}

func (p *progress) done(name string, recs []Record) {
	p.n++
	if p.bar != nil {
		_ = p.bar.Add(1)
		return
	}
	attrs := []any{"task", fmt.Sprintf("%d/%d", p.n, p.total), "name", name, "took", time.Since(p.task).Round(time.Millisecond)}
	for _, r := range recs {
		switch {
		case r.OverheadPct != nil:
			attrs = append(attrs, r.What, fmt.Sprintf("%+.2f%%", r.OverheadPct.Median))
		case r.RecoveryS != nil:
			attrs = append(attrs, r.What, fmt.Sprintf("%.2fs", r.RecoveryS.Median))
		case r.RawGBps != nil:
			attrs = append(attrs, r.What, fmt.Sprintf("%.3gGB/s", r.RawGBps.Median))
		}
	}
	p.log.Info("bench: done", attrs...)
}

func (p *progress) finish() {
	if p.bar != nil {
		_ = p.bar.Finish()
	}
	p.log.Info("bench: finished", "tasks", p.total, "took", time.Since(p.t0).Round(time.Second))
}
