package driver

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cutpoint/cutpoint/ckpt"
)

// Metrics are the coordinator's Prometheus metrics (`--metrics ADDR`).
type Metrics struct {
	cuts         prometheus.Counter
	aborts       *prometheus.CounterVec
	bytesRaw     prometheus.Counter
	bytesStored  prometheus.Counter
	cutSeconds   prometheus.Histogram
	failures     prometheus.Counter
	recoveries   prometheus.Counter
	recoverySecs prometheus.Histogram
	lastCutStep  prometheus.Gauge
	lastCutRatio prometheus.Gauge
	step         prometheus.Gauge
	liveRanks    prometheus.Gauge
	unprotected  prometheus.Gauge
	badCuts      prometheus.Counter
	dropped      *prometheus.CounterVec
}

// NewMetrics registers the metrics with reg (wrap it with
// prometheus.WrapRegistererWith to add the job's name as a label).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		cuts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cutpoint_cuts_committed_total", Help: "Cuts committed."}),
		aborts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cutpoint_cuts_aborted_total", Help: "Cuts aborted, by reason."}, []string{"reason"}),
		bytesRaw: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cutpoint_cut_bytes_raw_total", Help: "Logical bytes of committed cuts (state and channel state)."}),
		bytesStored: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cutpoint_cut_bytes_stored_total", Help: "Bytes written to the store by committed cuts (new chunks, compressed)."}),
		cutSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "cutpoint_cut_duration_seconds", Help: "From a cut's start to its commit.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 14)}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cutpoint_rank_failures_total", Help: "Ranks lost (exit, missed heartbeats, no progress)."}),
		recoveries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cutpoint_recoveries_total", Help: "Recoveries finished."}),
		recoverySecs: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "cutpoint_recovery_duration_seconds", Help: "From the detection of a loss to all ranks running again.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 12)}),
		lastCutStep: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cutpoint_last_cut_step", Help: "Step of the latest committed cut."}),
		lastCutRatio: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cutpoint_last_cut_ratio", Help: "Raw over stored bytes of the latest committed cut."}),
		step: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cutpoint_step", Help: "The slowest rank's last completed step (once every rank of the incarnation reported)."}),
		liveRanks: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cutpoint_live_ranks", Help: "Ranks of the current incarnation that reported and have not exited."}),
		unprotected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cutpoint_cutting_stopped", Help: "1 while cutting has stopped (cutting-stopped: consecutive cuts failed for one cause) and no cut committed since: the job runs unprotected."}),
		badCuts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cutpoint_cuts_damaged_total", Help: "Committed cuts a restore found damaged and marked bad (the job fell back to an older one)."}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cutpoint_rank_messages_dropped_total", Help: "Rank messages and results dropped at the coordinator's boundary, by reason (fails authentication: forged, or from a sender without the job's keys)."}, []string{"reason"}),
	}
	reg.MustRegister(m.dropped)
	reg.MustRegister(m.cuts, m.aborts, m.bytesRaw, m.bytesStored, m.cutSeconds, m.failures,
		m.recoveries, m.recoverySecs, m.lastCutStep, m.lastCutRatio, m.step, m.liveRanks, m.unprotected, m.badCuts)
	return m
}

func (m *Metrics) cutCommitted(info ckpt.CutInfo, took time.Duration) {
	m.cuts.Inc()
	m.bytesRaw.Add(float64(info.RawBytes))
	m.bytesStored.Add(float64(info.NewBytes))
	if took > 0 {
		m.cutSeconds.Observe(took.Seconds())
	}
	m.lastCutStep.Set(float64(info.Step))
	m.lastCutRatio.Set(info.Ratio())
}

// messageDropped counts a drop of kind at the boundary (nil-safe: the
// driver runs without metrics unless --metrics is given).
func (m *Metrics) messageDropped(kind int) {
	if m != nil {
		m.dropped.WithLabelValues(dropNames[kind]).Inc()
	}
}

func (m *Metrics) cutAborted(reason string) { m.aborts.WithLabelValues(reason).Inc() }

func (m *Metrics) recovered(d time.Duration) {
	m.recoveries.Inc()
	m.recoverySecs.Observe(d.Seconds())
}
