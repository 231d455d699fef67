package bench

import (
	"context"
	"math"
	"slices"
	"sync"
	"time"
)

// outcome is how one request ended, as the flow judges it.
type outcome int

const (
	ok   outcome = iota
	shed         // 503 with Retry-After: load shedding, as designed
	fail         // anything else: an error
)

// sample is one request's result.
type sample struct {
	op      string
	latency time.Duration
	out     outcome
}

// recorder collects one worker's samples; merged after the run.
type recorder struct {
	samples []sample
}

func (r *recorder) add(op string, start time.Time, out outcome) time.Time {
	now := time.Now()
	r.samples = append(r.samples, sample{op: op, latency: now.Sub(start), out: out})
	return now
}

// iteration is one closed-loop step of worker w; it records its requests.
type iteration func(ctx context.Context, w int, r *recorder) error

// closedLoop runs c workers, each calling it back to back, for d.
func closedLoop(ctx context.Context, c int, d time.Duration, it iteration) ([]sample, time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	recs := make([]recorder, c)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range c {
		wg.Go(func() {
			for ctx.Err() == nil {
				if err := it(ctx, w, &recs[w]); err != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	var all []sample
	for i := range recs {
		all = append(all, recs[i].samples...)
	}
	return all, elapsed
}

// OpResult summarises one operation of a flow.
type OpResult struct {
	Op       string  `json:"op"`
	Requests int     `json:"requests"`
	RPS      float64 `json:"rps"`
	P50ms    float64 `json:"p50_ms"`
	P95ms    float64 `json:"p95_ms"`
	P99ms    float64 `json:"p99_ms"`
	MaxMs    float64 `json:"max_ms"`
	Errors   int     `json:"errors"`
	Shed     int     `json:"shed_503"`
}

// summarise turns samples into per-op results (ops in first-seen order).
// Latency percentiles are over successful requests; shed and failed ones
// are counted apart, as a 503 answered in 50 µs would flatter them.
func summarise(samples []sample, elapsed time.Duration) []OpResult {
	var order []string
	by := map[string][]sample{}
	for _, s := range samples {
		if _, seen := by[s.op]; !seen {
			order = append(order, s.op)
		}
		by[s.op] = append(by[s.op], s)
	}
	var out []OpResult
	for _, op := range order {
		ss := by[op]
		r := OpResult{Op: op}
		var lat []time.Duration
		for _, s := range ss {
			switch s.out {
			case ok:
				r.Requests++
				lat = append(lat, s.latency)
			case shed:
				r.Shed++
			default:
				r.Errors++
			}
		}
		r.RPS = float64(r.Requests) / elapsed.Seconds()
		slices.Sort(lat)
		r.P50ms, r.P95ms, r.P99ms = ms(pct(lat, 50)), ms(pct(lat, 95)), ms(pct(lat, 99))
		if len(lat) > 0 {
			r.MaxMs = ms(lat[len(lat)-1])
		}
		out = append(out, r)
	}
	return out
}

// pct is the nearest-rank percentile of sorted durations.
func pct(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e4) / 100 }
