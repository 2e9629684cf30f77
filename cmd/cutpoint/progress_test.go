package main

import (
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cutpoint/cutpoint/coordinator/driver"
)

// screen renders what a terminal shows for out: \r returns to the start of
// the line, \n starts a new one, other bytes overwrite.
func screen(out string) []string {
	lines := []string{""}
	col := 0
	for _, r := range out {
		cur := []rune(lines[len(lines)-1])
		switch r {
		case '\r':
			col = 0
		case '\n':
			lines = append(lines, "")
			col = 0
		default:
			if col < len(cur) {
				cur[col] = r
			} else {
				cur = append(cur, r)
			}
			col++
			lines[len(lines)-1] = string(cur)
		}
	}
	for i := range lines {
		lines[i] = strings.TrimRight(lines[i], " ")
	}
	return lines
}

// TestProgressStepsAsideForLogs: a log line written while the live line
// is shown gets a line of its own, the live line comes back under it, and
// after done what follows starts on a fresh line.
func TestProgressStepsAsideForLogs(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	pp := &progressPrinter{on: true, out: w}
	pp.update(driver.Progress{Step: 1234, Steps: 5000, Cuts: 3, LastCut: 3, LastCutStep: 1200, LastCutTime: time.Second, Recoveries: 1})
	pp.Write([]byte("time=x level=WARN msg=\"rank lost\"\n"))
	pp.done()
	pp.update(driver.Progress{Step: 5000, Steps: 5000}) // after done: nothing
	pp.Write([]byte("result abc\n"))
	w.Close()
	b, _ := io.ReadAll(r)
	got := screen(string(b))
	want := []string{
		`time=x level=WARN msg="rank lost"`,
		"step 1234/5000 | cuts 3 | last cut 3 @1200: 0 B -> 0 B in 1s | recoveries 1",
		"result abc",
		"",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("screen:\n%s\nwant:\n%s\n(raw %q)", strings.Join(got, "\n"), strings.Join(want, "\n"), b)
	}
}
