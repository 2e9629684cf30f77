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
// (the structured log says the same). While it is on, everything else
// written to the terminal's stderr goes through its Write, which clears
// the line first and draws it again after, so a log line never lands in
// the middle of it.
type progressPrinter struct {
	mu    sync.Mutex
	on    bool
	out   *os.File
	last  time.Time
	width int // of the line on screen; 0: none
	p     driver.Progress
	drawn bool // p was drawn at least once
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

// Write writes a log line (or several) above the live line.
func (pp *progressPrinter) Write(b []byte) (int, error) {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	if !pp.on {
		return pp.out.Write(b)
	}
	pp.clear()
	n, err := pp.out.Write(b)
	if pp.drawn && len(b) > 0 && b[len(b)-1] == '\n' {
		pp.draw()
	}
	return n, err
}

// clear erases the live line (pp.mu held).
func (pp *progressPrinter) clear() {
	if pp.width > 0 {
		fmt.Fprintf(pp.out, "\r%*s\r", pp.width, "")
		pp.width = 0
	}
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
	pp.drawn = true
	fmt.Fprintf(pp.out, "\r%s%s", line, pad)
}

// done ends the live line: the last figures stay on screen with a newline
// after them, and nothing is drawn any more (what comes after, the result
// line on stdout included, starts on a line of its own).
func (pp *progressPrinter) done() {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	if !pp.on {
		return
	}
	pp.draw()
	fmt.Fprintln(pp.out)
	pp.width = 0
	pp.on = false
}
