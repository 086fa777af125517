package loadshed

import (
	"log/slog"
	"math"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// adaptive is the adaptive concurrency limit: a gradient controller on the
// no-load latency, after Envoy's adaptive concurrency filter
// (https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_filters/adaptive_concurrency_filter).
//
// Every Window, with the mean latency of the unary calls that ended in it:
//
//	gradient = baseline × (1+Tolerance) / mean    (clamped to 0.5..2)
//	limit    = limit × gradient                   if gradient > 1 and the
//	                                              window used half the limit
//	limit    = limit × (1 + (gradient−1)/2)       if gradient < 1
//
// Past the knee of a service, latency grows in proportion to concurrency
// (Little's law with a fixed throughput), so the limit converges to
// knee × (1+Tolerance), halving the distance each window; below the knee
// latency stays at the baseline and the limit grows by Tolerance per
// window. The baseline (no-load latency) is the mean latency of
// ProbeSamples calls admitted while at most a quarter of the limit (or
// MinLimit) calls were in flight: with the limit near the knee, well below
// it. It is measured at start and every ProbeInterval: passively while the
// load is light, and if too few such calls come within a second (a replica
// kept at its limit never sees them), by pinning the limit to MinLimit
// until they have, as Envoy does. Without that, a
// baseline measured under load drifts up with the queue and the limit with
// it.
//
// No goroutine: the update runs on the call path, in the done of the call
// that closes a window, guarded by a CAS so one caller does it.
type adaptive struct {
	// Immutable after newAdaptive:
	cfg                AdaptiveConfig
	window             int64 // ns
	minLimit, maxLimit float64
	log                *slog.Logger
	now                func() int64 // ns on the monotonic clock

	// Read on the call path, written once per window:
	limit     atomic.Int64 // the published limit
	winStart  atomic.Int64 // ns
	measuring atomic.Bool  // collecting baseline samples
	sampleAll atomic.Bool  // the last window was quiet: time every call
	_         [64]byte

	// Accumulated on the call path, each on its own cache line:
	acc  atomic.Uint64 // this window: count << countShift | latency sum in µs
	_    [56]byte
	peak atomic.Int64 // most calls in flight seen at admission in this window
	_    [56]byte
	pacc atomic.Uint64 // the same as acc for baseline samples
	_    [56]byte

	// Guarded by busy (the caller that wins the CAS owns them):
	busy         atomic.Bool
	est          float64 // the limit, unrounded
	saved        float64 // est before pinning
	baseline     float64 // µs; 0 until measured
	measureStart int64
	pinned       bool
	nextProbe    int64
}

// acc packs a count and a sum of latencies in µs into one word, so a sample
// is one atomic add: 24 bits of count (16M calls a window) and 40 bits of
// sum (12 days of latency).
const (
	countShift = 40
	sumMask    = 1<<countShift - 1
)

func unpack(v uint64) (n, sumMicros uint64) { return v >> countShift, v & sumMask }

// smoothing is the fraction of a downward step taken per window.
const smoothing = 0.5

// pinAfter is how long a baseline measurement waits for light load before
// pinning the limit.
const pinAfter = time.Second

func newAdaptive(cfg AdaptiveConfig, log *slog.Logger, now func() int64) *adaptive {
	a := &adaptive{
		cfg:      cfg,
		window:   int64(cfg.Window),
		minLimit: float64(cfg.MinLimit),
		maxLimit: float64(cfg.MaxLimit),
		log:      log,
		now:      now,
		est:      float64(cfg.InitialLimit),
	}
	t := now()
	a.limit.Store(int64(cfg.InitialLimit))
	a.winStart.Store(t)
	a.measuring.Store(true)
	a.sampleAll.Store(true)
	a.measureStart = t
	return a
}

// sampleEvery is how many calls share one latency sample when the traffic
// is heavy (see update): a random one in eight, an unbiased sample of the
// mean that spares the other seven two clock reads and a shared atomic add.
const sampleEvery = 8

// sample says whether to time the call being admitted.
func (a *adaptive) sample() bool {
	return a.sampleAll.Load() || a.measuring.Load() || rand.Uint32()%sampleEvery == 0
}

// admitted records the calls in flight after an admission. It returns
// whether the call is a baseline sample (if it is timed).
func (a *adaptive) admitted(inFlight int64) bool {
	for {
		p := a.peak.Load()
		if inFlight <= p || a.peak.CompareAndSwap(p, inFlight) {
			break
		}
	}
	return a.measuring.Load() && (inFlight <= int64(a.cfg.MinLimit) || inFlight*4 <= a.limit.Load())
}

// done records one finished unary call of latency rtt (ns).
func (a *adaptive) done(now, rtt int64, baseline bool) {
	sample := 1<<countShift | uint64(max(rtt/1000, 1))
	probeFull := false
	if baseline {
		pn, _ := unpack(a.pacc.Add(sample))
		probeFull = pn >= uint64(a.cfg.ProbeSamples)
	}
	n, _ := unpack(a.acc.Add(sample))
	if (now-a.winStart.Load() >= a.window && n >= uint64(a.cfg.MinSamples)) || probeFull {
		if a.busy.CompareAndSwap(false, true) {
			a.update(now)
			a.busy.Store(false)
		}
	}
}

// update runs under busy.
func (a *adaptive) update(now int64) {
	if a.measuring.Load() {
		if pn, psum := unpack(a.pacc.Load()); pn >= uint64(a.cfg.ProbeSamples) {
			a.baseline = float64(psum) / float64(pn)
			a.measuring.Store(false)
			a.pacc.Store(0)
			a.nextProbe = now + jitter(int64(a.cfg.ProbeInterval))
			if a.pinned {
				a.pinned = false
				a.est = a.saved
			}
			a.log.Debug("loadshed: adaptive: no-load latency measured",
				"baseline", time.Duration(a.baseline)*time.Microsecond, "samples", pn, "limit", int64(math.Round(a.est)))
			a.publish()
			a.resetWindow(now)
			return
		}
		if !a.pinned && now-a.measureStart >= int64(pinAfter) {
			a.pinned, a.saved = true, a.est
			a.limit.Store(int64(a.cfg.MinLimit))
			a.log.Info("loadshed: adaptive: pinning the limit to measure the no-load latency",
				"pinned_limit", a.cfg.MinLimit, "limit", int64(math.Round(a.est)))
		}
	} else if now >= a.nextProbe {
		a.pacc.Store(0)
		a.measureStart = now
		a.measuring.Store(true)
	}
	if n, _ := unpack(a.acc.Load()); now-a.winStart.Load() < a.window || n < uint64(a.cfg.MinSamples) {
		return
	}
	n, sum := unpack(a.acc.Swap(0))
	peak := a.peak.Swap(0)
	a.winStart.Store(now)
	// Time 1 call in sampleEvery once a window has 64 × MinSamples calls, and
	// every call again below 32 × MinSamples (4 × MinSamples samples).
	if m := uint64(a.cfg.MinSamples); a.sampleAll.Load() {
		a.sampleAll.Store(n < 64*m)
	} else {
		a.sampleAll.Store(n < 4*m)
	}
	if a.pinned || a.baseline == 0 || n == 0 {
		return
	}
	mean := float64(sum) / float64(n)
	g := a.baseline * (1 + a.cfg.Tolerance) / mean
	g = min(max(g, 0.5), 2)
	if g > 1 && float64(peak) < a.est/2 {
		g = 1 // app-limited: no evidence that more concurrency is served
	}
	if g < 1 {
		// Half a step down: one window's mean is noisy, and a full step to
		// the fixed point overshoots while the queue has not yet drained.
		// Steps up are whole (at most 1+Tolerance when there is no queue)
		// so that a limit recovers quickly once the load is served again.
		g = 1 + smoothing*(g-1)
	}
	a.est = min(max(a.est*g, a.minLimit), a.maxLimit)
	a.publish()
}

func (a *adaptive) publish() {
	a.limit.Store(max(int64(math.Round(a.est)), int64(a.cfg.MinLimit)))
}

func (a *adaptive) resetWindow(now int64) {
	a.acc.Store(0)
	a.peak.Store(0)
	a.winStart.Store(now)
}

// jitter returns d ± 15 %, so replicas started together do not pin their
// limits at the same moment.
func jitter(d int64) int64 {
	return d + int64((rand.Float64()*0.3-0.15)*float64(d))
}
