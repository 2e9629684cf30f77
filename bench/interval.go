package bench

import (
	"math"
	"math/rand/v2"
	"slices"
)

// Interval is a confidence interval of the mean of paired differences
// (or ratios): the verdict of a goal is read from it, not from a median,
// so that a noisy machine gives "inconclusive" instead of a lucky "yes".
type Interval struct {
	Mean   float64 `json:"mean"`
	Low    float64 `json:"low"`
	High   float64 `json:"high"`
	Level  float64 `json:"level"`  // e.g. 0.95
	Method string  `json:"method"` // "bootstrap" (percentile, seeded)
	N      int     `json:"n"`
}

// bootstrapResamples is how many resamples bootstrapCI draws: enough for
// stable 2.5 % and 97.5 % percentiles, cheap next to any measurement.
const bootstrapResamples = 10000

// bootstrapCI is the percentile bootstrap interval of the mean of xs at
// level, drawn from a generator seeded with seed so that the same samples
// always give the same interval. Nil with fewer than 2 samples.
func bootstrapCI(xs []float64, level float64, seed uint64) *Interval {
	var v []float64
	for _, x := range xs {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			v = append(v, x)
		}
	}
	if len(v) < 2 {
		return nil
	}
	rng := rand.New(rand.NewPCG(seed, 0x6a09e667f3bcc909))
	means := make([]float64, bootstrapResamples)
	for i := range means {
		s := 0.0
		for range v {
			s += v[rng.IntN(len(v))]
		}
		means[i] = s / float64(len(v))
	}
	slices.Sort(means)
	q := func(p float64) float64 {
		k := int(p * float64(len(means)-1))
		return means[max(0, min(k, len(means)-1))]
	}
	alpha := (1 - level) / 2
	return &Interval{Mean: mean(v), Low: q(alpha), High: q(1 - alpha), Level: level, Method: "bootstrap", N: len(v)}
}

func mean(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

// Verdicts of a goal read from an interval.
const (
	VerdictMet          = "met"
	VerdictNotMet       = "not met"
	VerdictInconclusive = "inconclusive"
	VerdictNotMeasured  = "not measured"
)

// verdict reads a goal "value <= limit" (atMost) or "value >= limit" from
// an interval: met when the whole interval is on the good side, not met
// when it is all on the bad side, inconclusive when it straddles the limit.
func verdict(ci *Interval, limit float64, atMost bool) string {
	switch {
	case ci == nil:
		return VerdictNotMeasured
	case atMost && ci.High <= limit, !atMost && ci.Low >= limit:
		return VerdictMet
	case atMost && ci.Low > limit, !atMost && ci.High < limit:
		return VerdictNotMet
	}
	return VerdictInconclusive
}

// metOf maps a verdict to Goal.Met: nil when it is neither met nor not.
func metOf(v string) *bool {
	switch v {
	case VerdictMet:
		return boolp(true)
	case VerdictNotMet:
		return boolp(false)
	}
	return nil
}
