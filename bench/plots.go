package bench

import (
	"fmt"
	"math"
	"path/filepath"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// Plot file names.
const (
	PlotThroughput = "throughput_vs_size.png"
	PlotBlocking   = "blocking_per_cut.png"
	PlotOverhead   = "overhead_vs_interval.png"
	PlotRecovery   = "recovery.png"
)

// Small images: 5 x 3.4 inches at the default 96 dpi.
const plotW, plotH = 5 * vg.Inch, 3.4 * vg.Inch

// writePlots draws what the results hold into dir and returns the file
// names written; a plot without data is not drawn.
func writePlots(res *Results, dir string) ([]string, error) {
	var out []string
	for _, pl := range []struct {
		name string
		draw func(*Results) (*plot.Plot, error)
	}{
		{PlotThroughput, plotThroughput},
		{PlotBlocking, plotBlocking},
		{PlotOverhead, plotOverhead},
		{PlotRecovery, plotRecovery},
	} {
		p, err := pl.draw(res)
		if err != nil {
			return out, fmt.Errorf("plot %s: %w", pl.name, err)
		}
		if p == nil {
			continue
		}
		if err := p.Save(plotW, plotH, filepath.Join(dir, pl.name)); err != nil {
			return out, fmt.Errorf("plot %s: %w", pl.name, err)
		}
		out = append(out, pl.name)
	}
	return out, nil
}

// series collects (state MiB, value) points, one per size (the median of
// the rows at that size).
func series(res *Results, keep func(Record) bool, val func(Record) *Stat) plotter.XYs {
	by := map[float64][]float64{}
	for _, r := range res.Records {
		if !keep(r) {
			continue
		}
		if s := val(r); s != nil && s.Median > 0 {
			x := float64(r.StateBytes) / (1 << 20)
			by[x] = append(by[x], s.Median)
		}
	}
	xs := make([]float64, 0, len(by))
	for x := range by {
		xs = append(xs, x)
	}
	slices.Sort(xs)
	pts := make(plotter.XYs, 0, len(xs))
	for _, x := range xs {
		pts = append(pts, plotter.XY{X: x, Y: statOf(by[x]...).Median})
	}
	return pts
}

func mainCut(kind string) func(Record) bool {
	return func(r Record) bool {
		return r.Family == FamilyStore && r.What == "cut" && r.Device == "cpu" && r.Kind == kind && r.Codec == "s2" &&
			r.Shuffle != nil && *r.Shuffle && r.Ranks == 2 && r.Workers == 0
	}
}

func what(w string) func(Record) bool {
	return func(r Record) bool { return r.Family == FamilyStore && r.What == w }
}

func whatKind(w, kind string) func(Record) bool {
	return func(r Record) bool { return r.Family == FamilyStore && r.What == w && r.Kind == kind }
}

func raw(r Record) *Stat { return r.RawGBps }

// addLines adds the named series that have at least one point.
func addLines(p *plot.Plot, named ...any) error {
	var keep []any
	for i := 0; i+1 < len(named); i += 2 {
		if pts, ok := named[i+1].(plotter.XYs); ok && len(pts) > 0 {
			keep = append(keep, named[i], pts)
		}
	}
	if len(keep) == 0 {
		return nil
	}
	return plotutil.AddLinePoints(p, keep...)
}

// logAxes puts the axes on a log scale; call it after adding the data
// (a degenerate range is widened: a single point would otherwise give a
// range reaching zero).
func logAxes(p *plot.Plot, x, y bool) {
	fix := func(a *plot.Axis) {
		if a.Min <= 0 || a.Min >= a.Max {
			a.Min, a.Max = math.Max(a.Min, 1e-9)/2, math.Max(a.Max, 1e-9)*2
		}
		a.Scale = plot.LogScale{}
		a.Tick.Marker = plot.LogTicks{Prec: -1}
	}
	if x {
		fix(&p.X)
	}
	if y {
		fix(&p.Y)
	}
}

// sizeTicks labels the state sizes the series have (in MiB), on a log axis
// whose default ticks would label only powers of ten.
func sizeTicks(series ...plotter.XYs) plot.ConstantTicks {
	seen := map[float64]bool{}
	var ticks plot.ConstantTicks
	for _, s := range series {
		for _, p := range s {
			if !seen[p.X] {
				seen[p.X] = true
				ticks = append(ticks, plot.Tick{Value: p.X, Label: sizeName(int64(p.X * (1 << 20)))})
			}
		}
	}
	slices.SortFunc(ticks, func(a, b plot.Tick) int { return cmpF(a.Value, b.Value) })
	return ticks
}

// roomForLegend raises a log Y axis's top so that the legend in the upper
// corner does not cover the highest line.
func roomForLegend(p *plot.Plot) { p.Y.Max *= 6 }

func plotThroughput(res *Results) (*plot.Plot, error) {
	heat := series(res, mainCut("heat-f64"), raw)
	uni := series(res, mainCut("uniform-f64"), raw)
	if len(heat)+len(uni) == 0 {
		return nil, nil
	}
	p := plot.New()
	p.Title.Text = "Cut throughput vs state size (s2 + shuffle, 2 ranks)"
	p.X.Label.Text = "total state"
	p.Y.Label.Text = "raw GB/s to durable"
	restore := series(res, mainCut("heat-f64"), func(r Record) *Stat { return r.RestoreGBps })
	err := addLines(p,
		"cutpoint heat-f64", heat,
		"cutpoint uniform-f64", uni,
		"restore heat-f64", restore,
		"zstd CLI heat-f64", series(res, whatKind("zstd CLI", "heat-f64"), raw),
		"zstd CLI uniform-f64", series(res, whatKind("zstd CLI", "uniform-f64"), raw),
		"single-threaded heat-f64", series(res, whatKind("single-threaded", "heat-f64"), raw),
		"disk write+fsync", series(res, what("write+fsync"), raw),
		"memcpy", series(res, what("memcpy"), raw),
	)
	logAxes(p, true, true)
	roomForLegend(p)
	p.X.Tick.Marker = sizeTicks(heat, uni)
	p.Legend.Top = true
	p.Legend.TextStyle.Font.Size = vg.Points(7)
	return p, err
}

func plotBlocking(res *Results) (*plot.Plot, error) {
	keep := mainCut("heat-f64")
	block := series(res, keep, func(r Record) *Stat { return r.BlockingMs })
	if len(block) == 0 {
		return nil, nil
	}
	p := plot.New()
	p.Title.Text = "Blocking per cut (heat-f64, 2 ranks, CPU)"
	p.X.Label.Text = "total state"
	p.Y.Label.Text = "ms the job waits"
	err := addLines(p,
		"cutpoint (capture)", block,
		"memcpy of the same state", series(res, keep, func(r Record) *Stat { return r.MemcpyMs }),
		"stop-the-world (until durable)", series(res, keep, func(r Record) *Stat { return r.StopWorldBlockingMs }),
	)
	// The job runs' cuts, at their state size.
	var jobPts plotter.XYs
	for _, r := range res.Records {
		if r.Family == FamilyJob && r.BlockingMs != nil && !r.StopTheWorld && r.StoreIO == "" && r.Hash == "" && r.What != "memory" {
			jobPts = append(jobPts, plotter.XY{X: float64(r.StateBytes) / (1 << 20), Y: math.Max(r.BlockingMs.Median, 1e-3)})
		}
	}
	if err == nil && len(jobPts) > 0 {
		s, e := plotter.NewScatter(jobPts)
		if e != nil {
			return nil, e
		}
		s.GlyphStyle.Shape = plotutil.Shape(5)
		s.GlyphStyle.Radius = vg.Points(4)
		p.Add(s)
		p.Legend.Add("heat2d job (cutpoint run)", s)
	}
	logAxes(p, true, true)
	roomForLegend(p)
	p.X.Tick.Marker = sizeTicks(block, jobPts)
	p.Legend.Top = true
	p.Legend.Left = true
	p.Legend.TextStyle.Font.Size = vg.Points(7)
	return p, err
}

// errPoints are points with vertical error bars (min to max).
type errPoints struct {
	plotter.XYs
	plotter.YErrors
}

func plotOverhead(res *Results) (*plot.Plot, error) {
	var pts, stw errPoints
	for _, r := range res.Records {
		if r.Family != FamilyJob || r.OverheadPct == nil || r.Device != "cpu" || r.StoreIO != "" || r.Hash != "" {
			continue
		}
		pt := plotter.XY{X: r.IntervalS, Y: r.OverheadPct.Median}
		e := struct{ Low, High float64 }{r.OverheadPct.Median - r.OverheadPct.Min, r.OverheadPct.Max - r.OverheadPct.Median}
		if r.StopTheWorld {
			stw.XYs, stw.YErrors = append(stw.XYs, pt), append(stw.YErrors, e)
		} else {
			pts.XYs, pts.YErrors = append(pts.XYs, pt), append(pts.YErrors, e)
		}
	}
	if len(pts.XYs) == 0 {
		return nil, nil
	}
	slices.SortFunc(pts.XYs, func(a, b plotter.XY) int { return cmpF(a.X, b.X) })
	p := plot.New()
	p.Title.Text = "heat2d runtime overhead vs cut interval"
	p.X.Label.Text = "seconds between cuts"
	p.Y.Label.Text = "overhead % (median, min-max)"
	for i, set := range []struct {
		name string
		e    errPoints
	}{{"cutpoint", pts}, {"stop-the-world", stw}} {
		if len(set.e.XYs) == 0 {
			continue
		}
		l, s, err := plotter.NewLinePoints(set.e)
		if err != nil {
			return nil, err
		}
		l.Color, s.Color = plotutil.Color(i), plotutil.Color(i)
		s.Shape = plotutil.Shape(i)
		eb, err := plotter.NewYErrorBars(set.e)
		if err != nil {
			return nil, err
		}
		eb.Color = plotutil.Color(i)
		if set.name == "cutpoint" {
			p.Add(l)
		}
		p.Add(s, eb)
		p.Legend.Add(set.name, l, s)
	}
	goal := plotter.NewFunction(func(float64) float64 { return 2 })
	goal.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	p.Add(goal)
	p.Legend.Add("goal: 2% at 10 s", goal)
	zero := plotter.NewFunction(func(float64) float64 { return 0 })
	zero.Width = vg.Points(0.5)
	p.Add(zero)
	p.X.Min = 0
	// Functions do not widen the axes: keep the goal and zero in view.
	p.Y.Min = min(p.Y.Min, 0)
	p.Y.Max = max(p.Y.Max, 3)
	p.Legend.Top = true
	p.Legend.TextStyle.Font.Size = vg.Points(7)
	return p, nil
}

func cmpF(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func plotRecovery(res *Results) (*plot.Plot, error) {
	var r *Record
	for i := range res.Records {
		if res.Records[i].What == "recovery" && res.Records[i].RecoveryS != nil {
			r = &res.Records[i]
			break
		}
	}
	if r == nil {
		return nil, nil
	}
	labels := []string{"kill → computing", "respawn", "repl. start-up", "restore I/O", "coordinator"}
	stats := []*Stat{r.RecoveryS, r.RespawnS, r.ReplacementStartS, r.RestoreS, r.CoordRecoveryS}
	vals := make(plotter.Values, len(stats))
	var e errPoints
	for i, s := range stats {
		vals[i] = s.med()
		if s == nil {
			vals[i] = 0
			s = &Stat{}
		}
		e.XYs = append(e.XYs, plotter.XY{X: float64(i), Y: vals[i]})
		e.YErrors = append(e.YErrors, struct{ Low, High float64 }{s.Median - s.Min, s.Max - s.Median})
	}
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Recovery after SIGKILL of one rank (%s, %d ranks, %d runs)", sizeName(r.StateBytes), r.Ranks, r.Reps)
	p.Y.Label.Text = "seconds (median, min-max)"
	bars, err := plotter.NewBarChart(vals, vg.Points(26))
	if err != nil {
		return nil, err
	}
	bars.Color = plotutil.Color(0)
	eb, err := plotter.NewYErrorBars(e)
	if err != nil {
		return nil, err
	}
	p.Add(bars, eb)
	goal := plotter.NewFunction(func(float64) float64 { return 2 + r.RestoreS.med() })
	goal.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	p.Add(goal)
	p.Legend.Add("goal: 2 s + restore I/O", goal)
	p.Legend.Top = true
	p.Legend.TextStyle.Font.Size = vg.Points(7)
	p.NominalX(labels...)
	p.Y.Min = 0
	// The goal line is a function, which does not widen the axis.
	p.Y.Max = max(p.Y.Max, 1.15*(2+r.RestoreS.med()))
	return p, nil
}
