package main

import (
	"fmt"
	"os"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/cutpoint/cutpoint/coordinator/driver"
)

// progressPrinter shows one live line on a terminal: step, cuts committed,
// the last cut's size and time, recoveries. Elsewhere it prints nothing
// (the structured log says the same).
type progressPrinter struct {
	mu    sync.Mutex
	on    bool
	out   *os.File
	last  time.Time
	width int
	p     driver.Progress
}

func newProgressPrinter(g *GlobalOptions, mode string) (*progressPrinter, error) {
	pp := &progressPrinter{}
	f, isFile := g.Stderr.(*os.File)
	switch mode {
	case "auto":
		pp.on = isFile && term.IsTerminal(int(f.Fd()))
	case "always":
		pp.on = isFile
	case "never":
	default:
		return nil, fmt.Errorf("--progress %q: want auto, always or never", mode)
	}
	pp.out = f
	return pp, nil
}

func (pp *progressPrinter) update(p driver.Progress) {
	if !pp.on {
		return
	}
	pp.mu.Lock()
	defer pp.mu.Unlock()
	pp.p = p
	if time.Since(pp.last) < 200*time.Millisecond {
		return
	}
	pp.last = time.Now()
	pp.draw()
}

func (pp *progressPrinter) draw() {
	p := pp.p
	step := fmt.Sprintf("step %d", p.Step)
	if p.Steps > 0 {
		step = fmt.Sprintf("step %d/%d", p.Step, p.Steps)
	}
	line := fmt.Sprintf("%s | cuts %d", step, p.Cuts)
	if p.Cuts > 0 {
		line += fmt.Sprintf(" | last cut %d @%d: %s -> %s in %s", p.LastCut, p.LastCutStep,
			humanBytes(int64(p.LastCutBytes)), humanBytes(int64(p.LastCutStored)), p.LastCutTime.Round(time.Millisecond))
	}
	line += fmt.Sprintf(" | recoveries %d", p.Recoveries)
	if !p.RecoveringSince.IsZero() {
		line += " (recovering)"
	}
	if p.Unprotected {
		line += fmt.Sprintf(" | UNPROTECTED since step %d", p.UnprotectedStep)
	}
	pad := ""
	if n := pp.width - len(line); n > 0 {
		pad = fmt.Sprintf("%*s", n, "")
	}
	pp.width = len(line)
	fmt.Fprintf(pp.out, "\r%s%s", line, pad)
}

// done ends the live line.
func (pp *progressPrinter) done() {
	if !pp.on {
		return
	}
	pp.mu.Lock()
	defer pp.mu.Unlock()
	pp.draw()
	fmt.Fprintln(pp.out)
}
