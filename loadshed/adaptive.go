package loadshed

import (
	"context"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"time"
)

// adaptive is the adaptive concurrency limit: it finds the knee of the
// service (the most calls it serves at once without one waiting for
// another) from the latency of its calls against their no-load latency, and
// admits a call beyond the knee only when it is predicted to wait less than
// the time until the next call would arrive. See the package documentation
// for the algorithm and what it was chosen over.
//
// Every Window (and MinSamples calls), with
//
//	W0 = the no-load latency (mean of calls that ran alone; see below)
//	Wu = mean latency of the calls admitted within the limit
//	X  = calls completed per second, λ = calls offered per second
//
// the knee estimate K moves:
//
//   - down, half-way to X × W0, when calls waited longer than predicted
//     (within the limit: none) by more than Tolerance × W0 and the noise
//     of the window's mean, and the limit was what held calls back (it was
//     reached, calls waited beyond it, or calls were shed): the service
//     runs more calls than it serves at once. X × W0 is the concurrency
//     that serves the measured throughput at the no-load latency (Little's
//     law), that is the knee; it never rises on this branch. (At light
//     load X × W0 is only the load: a slow window there, a machine's stall,
//     says nothing about the knee);
//   - up, when the calls admitted beyond the limit waited less than half
//     the wait predicted for them (a slot was free: the knee is higher), by
//     max(1, Tolerance × K); and, for K ≥ 1/Tolerance where one more call
//     is a small step, when the limit was reached and Wu stayed within
//     tolerance, by a factor that starts at 1+Tolerance and doubles with
//     each consecutive step up (up to 2), so that a service that takes
//     hundreds of calls at once is found in a few windows.
//
// A call that finds K calls in flight is admitted if the wait predicted for
// it, last start + j × W0/K − now for the j-th call beyond K, is at most
// 2/λ: twice the mean time until the next offered call arrives. If the wait
// is longer, a later call will probably take the slot having waited less;
// if it is shorter, the slot would probably stand idle without it. So the
// worker is kept busy (goodput) while an admitted call waits a fraction of
// a service time that shrinks as the overload grows (latency), and at 1×
// the gate admits the call queued behind one in service (no false
// shedding). At most max(2, K) calls wait.
//
// The no-load latency is the mean latency of ProbeSamples calls admitted
// while no other call was in flight ("lone" calls: nothing can have queued
// them), collected all the time and smoothed; a window faster than
// W0/(1+Tolerance) lowers it at once. The first estimate comes from lone
// calls; if a second passes without enough of them, the limit is pinned to
// 1 until they come, unless calls at twice the concurrency of the first
// window at the limit took no longer (see early). Under sustained load
// lone calls stop; after ProbeInterval without a new estimate, or as soon as the limit fell three
// windows running without the latency falling (a no-load latency too low
// would otherwise drive the limit down to 1: the service got slower, it is
// not queueing), the limit is pinned to max(1, K/4), well below the knee,
// until ProbeSamples calls admitted at that concurrency give a new one
// (after ProbeInterval only if the limit was reached in the last windows
// or the calls take longer than W0 × (1+Tolerance): else nothing says W0
// changed).
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
	// counts returns the Shedder's calls admitted and shed since it
	// started, and its calls in flight.
	counts func() (admitted, shed uint64, inFlight int64)

	// Read on the call path, written once per window:
	limit    atomic.Int64 // calls admitted without condition: K, or the pin of a probe
	gap      atomic.Int64 // ns between completions at the knee (W0/K); 0: admit no call beyond the limit
	allow    atomic.Int64 // ns: the longest predicted wait a call beyond the limit is admitted with
	waitMax  atomic.Int64 // most calls admitted beyond the limit
	loneMax  atomic.Int64 // most calls in flight (the call included) for a no-load sample: 1, or a probe's pin
	winStart atomic.Int64 // ns
	// sampleShift: one call in 2^sampleShift is timed; 0 (every call) after
	// a quiet window (see update).
	sampleShift atomic.Uint32
	_           [64]byte

	lastStart   atomic.Int64 // ns: when a call last started (admitted within the limit, or took a freed slot)
	pinnedSince atomic.Int64 // ns: when a probe pinned the limit; 0 when not pinned
	measured    atomic.Bool  // the no-load latency has been measured once
	_           [48]byte

	// Accumulated on the call path, each on its own cache line:
	acc  atomic.Uint64 // calls admitted within the limit, ended this window: count << countShift | µs
	_    [56]byte
	qacc atomic.Uint64 // calls admitted beyond the limit: count | µs of latency
	_    [56]byte
	pred atomic.Uint64 // their predicted waits: count | µs
	_    [56]byte
	peak atomic.Int64 // most calls in flight seen at admission in this window
	_    [56]byte
	pacc atomic.Uint64 // no-load samples: count | µs
	psq  atomic.Uint64 // the sum of their squares, µs²
	_    [48]byte
	// spread is how many times ProbeSamples and MinSamples calls a batch
	// of no-load samples and a window need: 4 × the squared coefficient of
	// variation of the last batch, 1..maxSpread, so that the mean of a
	// service whose calls vary a lot (two methods, 1 ms and 50 ms) is
	// measured as precisely as a steady one's.
	spread atomic.Int64

	// Guarded by busy (the caller that wins the CAS owns them):
	busy       atomic.Bool
	est        float64 // K, unrounded
	saved      float64 // est before a probe pinned the limit
	baseline   float64 // W0, µs; 0 until measured
	baselineAt int64   // ns: when W0 was last measured
	started    int64   // ns: newAdaptive
	pinned     bool
	probeStart int64   // ns: when the limit was pinned
	nextProbe  int64   // ns: probe when no estimate came since
	growth     float64 // the factor of the next proportional step up
	boost      float64 // the gate's horizon factor, 1..maxBoost()
	cv         float64 // coefficient of variation of the last batch of no-load samples
	overload   float64 // offered ÷ completed, smoothed over windows
	within     float64 // latency of calls within the limit, smoothed over windows, ns
	doubt      bool    // the next probe is for the doubt rule (see update), not ProbeInterval
	downs      int     // consecutive windows with a step down
	downFrom   float64 // the excess wait of the first of them
	downK      float64 // the limit before the first of them
	lastAdm    uint64
	lastShed   uint64
	lastInF    int64
	seen       uint64                 // timed calls ended since newAdaptive
	lastPn     uint64                 // no-load samples in the batch at the last window
	fewLone    int                    // windows running in which no call ran alone
	peaks      [headroomWindows]int64 // peak of the last windows
	peakAt     int
	// Before the first no-load measurement (see early):
	earlyRef  float64 // µs: the latency of the first window at the limit; 0 when not growing
	earlyFrom float64 // the limit then
	earlyAt   int64   // ns: when calls first ran at twice earlyFrom; 0 before
	earlyOff  bool    // the latency rose with the limit: no more growing before the first measurement
}

// headroomWindows and headroomMin bound the limit by the load seen (see
// update).
const (
	headroomWindows = 8
	headroomMin     = 4
)

// acc, qacc, pred and pacc pack a count and a sum in µs into one word, so a
// sample is one atomic add: 24 bits of count (16M calls a window) and 40
// bits of sum (12 days).
const (
	countShift = 40
	sumMask    = 1<<countShift - 1
)

func unpack(v uint64) (n, sumMicros uint64) { return v >> countShift, v & sumMask }

func pack(us int64) uint64 { return 1<<countShift | uint64(min(max(us, 1), sumMask)) }

// smoothing is the fraction of a step down taken per window, and the
// weight of a new batch of lone calls in the no-load latency.
const smoothing = 0.5

// pinAfter is how long the first no-load measurement waits for lone calls
// before pinning the limit to 1.
const pinAfter = time.Second

// probeFew and probeShort end a pinned probe early: probeFew samples are
// enough once the probe has lasted probeShort.
const (
	probeFew   = 5
	probeShort = 250 * time.Millisecond
)

// doubtWindows is how many windows running the limit may fall without the
// latency falling before the no-load latency is measured again.
const doubtWindows = 3

// arrivalsAllowed is the gate's horizon in mean times between offered
// calls: a call beyond the knee is admitted if it is predicted to wait at
// most this many of them. 2, not 1: with random (Poisson) arrivals no call
// comes in a span of one mean gap a third of the time (e^-1), and the slot
// would then stand idle; in two, one time in seven.
const arrivalsAllowed = 2

func newAdaptive(cfg AdaptiveConfig, log *slog.Logger, now func() int64, counts func() (uint64, uint64, int64)) *adaptive {
	a := &adaptive{
		cfg:      cfg,
		window:   int64(cfg.Window),
		minLimit: float64(cfg.MinLimit),
		maxLimit: float64(cfg.MaxLimit),
		log:      log,
		now:      now,
		counts:   counts,
		est:      float64(cfg.InitialLimit),
		growth:   cfg.Tolerance,
		boost:    1,
		overload: 1,
	}
	t := now()
	a.started = t
	a.limit.Store(int64(cfg.InitialLimit))
	a.loneMax.Store(1)
	a.spread.Store(1)
	a.allow.Store(math.MaxInt64)
	a.waitMax.Store(2)
	a.winStart.Store(t)
	a.lastAdm, a.lastShed, a.lastInF = counts()
	return a
}

// How many calls share one latency sample (see update): every call after a
// quiet window; one in 2^sampleShiftBusy (eight) when the traffic is heavy,
// an unbiased sample of the mean that spares the other seven two clock
// reads (about 25 ns each) and a shared atomic add; and, when a window has
// more than enough samples even so (more than samplesPlenty × MinSamples),
// one in 16, 32, … up to one in 2^sampleShiftMax, back down a step below
// sampleShiftBusy's 64 × MinSamples. A window then still has at least
// 32 × MinSamples samples, and a server with very short calls (a million
// a second) does not spend its time reading the clock for them.
//
// The cost: the update runs when a timed call ends, so after the call rate
// falls to r calls a second the next one comes after about 2^k × MinSamples
// / r seconds (k the shift of the moment). One in 16 takes over 800 000
// calls a second (with the default 100 ms window and MinSamples 10), each
// further step twice that: a server at those rates whose traffic falls to
// 10 calls a second updates its limit after ~16 s instead of ~8 s at one
// in eight (the micro-benchmark's 40 M calls a second reach one in 128).
const (
	sampleShiftBusy = 3
	sampleShiftMax  = 7
	samplesPlenty   = 1024
)

// sample says whether to time the call admitted as the seq-th (any
// numbering that gives consecutive admissions consecutive numbers). The one
// in 2^sampleShift is chosen by a Fibonacci hash of seq: consecutive
// admissions are spread evenly over the outcomes but in no fixed period,
// so a client whose every eighth call is a slow one is not sampled at the
// same phase each time. It costs a multiplication, where a random number
// (math/rand/v2) cost more than the rest of a sampled-out call's admission.
func (a *adaptive) sample(seq uint64) bool {
	k := a.sampleShift.Load()
	return k == 0 || (seq*0x9E3779B97F4A7C15)>>(64-k) == 0
}

// mayQueue decides on a call that finds lim calls in flight or more, as the
// j-th beyond lim: it returns the wait predicted for it (ns) and whether to
// admit it.
func (a *adaptive) mayQueue(j, lim int64) (pred int64, ok bool) {
	gap := a.gap.Load()
	if gap == 0 || j > a.waitMax.Load() {
		return 0, false
	}
	pred = max(a.lastStart.Load()+j*gap-a.now(), 0)
	return pred, pred <= a.allow.Load()
}

// limitFor returns the limit a call of priority p sees: the limit scaled
// by p's share (Priority.Share), at least 1.
func (a *adaptive) limitFor(p Priority) int64 {
	l := a.limit.Load()
	if p == Critical { // the default: a share of 1
		return max(1, l)
	}
	return max(1, int64(float64(l)*p.Share()))
}

// admitted records the calls in flight after an admission.
func (a *adaptive) admitted(inFlight int64) {
	for {
		p := a.peak.Load()
		if inFlight <= p || a.peak.CompareAndSwap(p, inFlight) {
			break
		}
	}
}

// measuring reports whether the limit is measuring the no-load latency
// rather than limiting load: pinned by a probe, or not measured yet. The
// calls it sheds then are the measurement's cost, not refusals for load:
// the Shedder does not report them to the load sampler (load.Calls.Refuse),
// whose shed ratio health reads as overload. A probe sheds most calls for
// a quarter of a second or so, and the smoothed ratio stays over health's
// ShedEnter (1 %) for longer than its Hold (2 s) after it: measured, a
// replica at 0.9× of a four-worker service with nothing queued turned
// NOT_SERVING for load after its probes, twice in 80 s.
func (a *adaptive) measuring() bool { return a.pinnedSince.Load() != 0 || !a.measured.Load() }

// lone reports whether a call admitted with inFlight calls in flight (its
// own included) is a no-load sample.
func (a *adaptive) lone(inFlight int64) bool { return inFlight <= a.loneMax.Load() }

// started records that a call started at now (ns): it was admitted within
// the limit, or took the slot a call just freed.
func (a *adaptive) startedAt(now int64) { a.lastStart.Store(now) }

// done records one finished, timed unary call of latency rtt (ns).
func (a *adaptive) done(now, rtt int64, t token) {
	us := rtt / 1000
	probeFull := false
	if t.queued {
		a.qacc.Add(pack(us))
		a.pred.Add(pack(t.pred / 1000))
	} else {
		a.acc.Add(pack(us))
	}
	f := min(uint64(a.spread.Load()), maxWindowSpread)
	if t.baseline {
		pn, _ := unpack(a.pacc.Add(pack(us)))
		a.psq.Add(uint64(us * us))
		// A full batch ends a probe (or gives the first no-load latency) at
		// once. Otherwise the window's update takes it (noLoad): updating
		// on every batch of lone calls ran update, and its writes to the
		// line every admission reads, every few hundred calls of a server
		// with short calls at light load.
		if since := a.pinnedSince.Load(); since != 0 || !a.measured.Load() {
			probeFull = pn >= uint64(a.cfg.ProbeSamples) || (since != 0 && f == 1 && pn >= probeFew && now-since >= int64(probeShort))
		}
	}
	n, _ := unpack(a.acc.Load())
	nq, _ := unpack(a.qacc.Load())
	if (now-a.winStart.Load() >= a.window && n+nq >= f*uint64(a.cfg.MinSamples)) || probeFull {
		if a.busy.CompareAndSwap(false, true) {
			a.update(now)
			a.busy.Store(false)
		}
	}
}

// update runs under busy.
func (a *adaptive) update(now int64) {
	a.noLoad(now)
	n, _ := unpack(a.acc.Load())
	nq, _ := unpack(a.qacc.Load())
	if now-a.winStart.Load() < a.window || n+nq < min(uint64(a.spread.Load()), maxWindowSpread)*uint64(a.cfg.MinSamples) {
		return
	}
	n, sum := unpack(a.acc.Swap(0))
	nq, sumq := unpack(a.qacc.Swap(0))
	a.seen += n + nq
	// Windows running in which no call ran alone: the sign that lone
	// calls will not come by themselves. (A light load of a few calls at
	// once has some in every window; a pin would shed calls for nothing.)
	if pn, _ := unpack(a.pacc.Load()); pn <= a.lastPn {
		a.fewLone++
	} else {
		a.fewLone = 0
	}
	a.lastPn, _ = unpack(a.pacc.Load())
	np, sump := unpack(a.pred.Swap(0))
	peak := a.peak.Swap(0)
	dt := float64(now - a.winStart.Swap(now))
	adm, shed, inF := a.counts()
	done := float64(adm-a.lastAdm) - float64(inF-a.lastInF)
	offered := float64(adm - a.lastAdm + shed - a.lastShed)
	a.lastAdm, a.lastShed, a.lastInF = adm, shed, inF
	// Time 1 call in 8 once a window has 64 × MinSamples calls, and every
	// call again below 32 × MinSamples (4 × MinSamples samples); time half
	// as many calls again while a window has samplesPlenty × MinSamples
	// samples, twice as many once it has fewer than 64 × MinSamples.
	m, k := uint64(a.cfg.MinSamples), a.sampleShift.Load()
	switch samples := n + nq; {
	case k == 0:
		if samples >= 64*m {
			k = sampleShiftBusy
		}
	case samples < 4*m:
		k = 0
	case samples < 64*m && k > sampleShiftBusy:
		k--
	case samples >= samplesPlenty*m && k < sampleShiftMax:
		k++
	}
	a.sampleShift.Store(k)
	a.peaks[a.peakAt%len(a.peaks)] = peak
	a.peakAt++
	// The overload of a window is noisy (a stall of the machine backs
	// calls up for a moment): smooth it over windows.
	if done > 0 {
		a.overload += overloadSmoothing * (offered/done - a.overload)
	}
	if a.pinned || a.baseline == 0 {
		a.allow.Store(math.MaxInt64)
		if !a.pinned {
			a.early(now, n, sum, peak, offered/dt)
			a.headroom()
			a.est = min(max(a.est, a.minLimit), a.maxLimit)
			a.publish()
		}
		return
	}
	w0 := a.baseline * 1000 // ns
	tol := a.cfg.Tolerance
	// The noise of a window's mean: 2 standard errors, from the spread of
	// the calls that measured the no-load latency. A step down needs 3: a
	// limit below the knee idles slots (goodput), one above it only adds
	// a wait that the next window corrects.
	noise := func(n uint64) float64 { return 2 * a.cv * w0 / math.Sqrt(float64(max(n, 1))) }
	wu := 0.0
	if n > 0 {
		wu = float64(sum) / float64(n) * 1000
		if n >= uint64(a.spread.Load())*uint64(a.cfg.ProbeSamples) && wu*(1+tol)+1.5*noise(n) < w0 {
			// As many calls within the limit as a no-load measurement
			// takes ran faster than the no-load latency: the service got
			// faster.
			a.baseline, a.baselineAt = wu/1000, now
			w0 = wu
			a.log.Debug("loadshed: adaptive: no-load latency lowered by a faster window", "no_load_latency", micros(a.baseline))
		}
	}
	reached := float64(peak) >= math.Round(a.est)
	// The latency a call beyond the limit is measured against: the lower of
	// W0 and the recent latency of calls within the limit. A lone call is
	// often a little slower than a busy one (it wakes an idle thread), so
	// W0 alone would read a short wait as none.
	if n > 0 {
		if a.within == 0 {
			a.within = wu
		} else {
			a.within += 0.3 * (wu - a.within)
		}
	}
	ref := w0
	if a.within > 0 {
		ref = min(w0, a.within)
	}
	// The wait beyond the predicted one, per timed call: calls within the
	// limit are predicted none, calls beyond it what the gate predicted,
	// times 1+cv² (the gate predicts from the mean time between
	// completions; the call it waits for is, on average, a longer one
	// than the mean, by that factor: the residual life of a renewal
	// process).
	excess := 0.0
	if n+nq > 0 {
		excess = (float64(sum+sumq)-float64(sump)*(1+a.cv*a.cv))*1000/float64(n+nq) - w0
	}
	old, why := a.est, "hold"
	defer func() {
		if a.log.Enabled(context.Background(), slog.LevelDebug) {
			wq, pr := 0.0, 0.0
			if nq > 0 {
				wq = float64(sumq) / float64(nq)
			}
			if np > 0 {
				pr = float64(sump) / float64(np)
			}
			a.log.Debug("loadshed: adaptive: window", "why", why, "from", round3(old), "to", round3(a.est),
				"limit", a.limit.Load(), "no_load_latency", micros(a.baseline), "latency", micros(wu/1000), "calls", n,
				"queued", nq, "queued_latency", micros(wq), "predicted_wait", micros(pr), "excess_wait", micros(excess/1000),
				"peak", peak, "completed_per_s", round3(max(done, 0)/dt*1e9), "offered_per_s", round3(offered/dt*1e9),
				"boost", round3(a.boost), "allow", time.Duration(a.allow.Load()), "wait_max", a.waitMax.Load(),
				"at", time.Duration(now))
		}
	}()
	limited := reached || nq > 0 || offered > done*1.05
	switch {
	case excess > tol*w0+1.5*noise(n+nq) && limited:
		// Calls waited longer than a service at the knee makes them: the
		// limit is above the knee. X × W0 is the concurrency that serves
		// what was served at the no-load latency.
		why = "waited beyond prediction"
		target := max(done, 0) / dt * w0
		if target < a.est {
			a.est += smoothing * (target - a.est)
		}
		if peak > 0 || nq > 0 { // calls were admitted: what queued before has drained
			if a.downs == 0 {
				a.downFrom, a.downK = excess, old
			}
			a.downs++
		}
		a.growth = tol
		if a.downs >= doubtWindows && a.est <= a.downK/2 && excess > a.downFrom*(1-tol) && excess > w0/2 {
			// The limit fell for several windows and the wait did not:
			// calls are slower, not queued. Measure the no-load latency
			// again now.
			a.nextProbe, a.doubt = now, true
			a.downs = 0
		}
	case nq > 0 && np > 0 && float64(sumq)/float64(nq)*1000-ref+noise(nq) < 0.5*float64(sump)/float64(np)*1000:
		// Calls admitted beyond the limit waited less than half their
		// predicted wait: a slot was free, the knee is higher.
		why = "queued calls did not wait"
		a.est += max(1, a.growth*a.est)
		if float64(sumq)/float64(nq)*1000-ref+noise(nq) < 0.1*float64(sump)/float64(np)*1000 {
			// Hardly any wait at all: far below the knee; step up faster
			// next time.
			a.growth = min(2*a.growth, 1)
		} else {
			a.growth = tol
		}
		a.downs = 0
	case reached && n > 0 && a.est*tol >= 1:
		// At the limit and within tolerance: try a proportional step up,
		// faster with each consecutive one.
		why = "at the limit, no queueing"
		a.est *= 1 + a.growth
		a.growth = min(2*a.growth, 1)
		a.downs = 0
	default:
		a.downs, a.growth = 0, tol
	}
	a.headroom()
	a.est = min(max(a.est, a.minLimit), a.maxLimit)
	a.publish()
	a.gate(done, offered, dt, why != "waited beyond prediction")
}

// early grows the limit before the first no-load measurement, for a
// service that takes many calls at once from its start (a gateway waiting
// on its backends): without it such a replica, started under load, sheds
// every call beyond InitialLimit until the pin to 1 has measured the
// no-load latency and the limit has grown back, about two seconds of most
// of its calls at half its capacity (the adaptive scenario's io profile,
// 250 calls at once). Nothing is known of the knee yet, but one thing
// needs no no-load latency: a service whose calls take no longer when the
// calls in flight double does not queue them. So from the first window at
// the limit (earlyRef, its mean latency; not started when the lone calls
// seen so far were faster by more than Tolerance: those calls queue),
// the limit steps up as at the knee (by a factor that doubles with each
// step) while the mean latency stays within Tolerance of earlyRef. Once
// calls have run at twice the limit of that first window for two of its
// latencies (the latency of calls ending in a window reflects the
// concurrency at which they started, one latency earlier), the latency did
// not rise with them: it is the no-load latency, and the limit carries on
// from there as if a probe had measured it. When the latency rises
// instead, growing stops for good and the pin measures the no-load
// latency, as without this. noLoad does not pin while the limit grows
// here.
func (a *adaptive) early(now int64, n, sum uint64, peak int64, offeredPerNs float64) {
	if n == 0 {
		return
	}
	wu := float64(sum) / float64(n) // µs
	tol := a.cfg.Tolerance
	reached := float64(peak) >= math.Round(a.est)
	step := func() {
		// At least the step at the knee; up to the calls offered × their
		// latency (Little's law: the concurrency that serves them all at
		// this latency), at most twice the limit.
		a.est = max(a.est+max(1, a.growth*a.est), min(2*a.est, offeredPerNs*wu*1000))
		a.growth = min(2*a.growth, 1)
	}
	switch {
	case a.earlyOff:
		return
	case a.earlyRef == 0:
		if !reached {
			return
		}
		if pn, psum := unpack(a.pacc.Load()); pn > 0 && wu > float64(psum)/float64(pn)*(1+tol) {
			return
		}
		a.earlyRef, a.earlyFrom, a.earlyAt = wu, a.est, 0
		a.log.Debug("loadshed: adaptive: growing before the no-load latency is known", "latency", micros(wu),
			"limit", int64(math.Round(a.est)), "peak", peak)
		step()
	case wu > a.earlyRef*(1+tol):
		a.log.Debug("loadshed: adaptive: latency rose with the limit before the no-load latency is known",
			"latency", micros(wu), "first_latency", micros(a.earlyRef), "limit", int64(math.Round(a.est)), "peak", peak)
		a.earlyRef, a.earlyOff, a.growth = 0, true, tol
		a.fewLone = max(a.fewLone, 3) // the pin may come at once
	default:
		if a.earlyAt == 0 && float64(peak) >= 2*a.earlyFrom {
			a.earlyAt = now
		}
		if a.earlyAt != 0 && now-a.earlyAt >= int64(2*a.earlyRef*1000) {
			a.baseline, a.baselineAt = a.earlyRef, now
			a.measured.Store(true)
			a.cv = 0
			a.nextProbe = now + jitter(int64(a.cfg.ProbeInterval))
			a.pacc.Store(0)
			a.psq.Store(0)
			a.earlyRef = 0
			a.log.Info("loadshed: adaptive: no-load latency measured", "no_load_latency", micros(a.baseline),
				"how", "calls at twice the concurrency took no longer", "limit", int64(math.Round(a.est)))
		}
		if reached {
			step()
		}
	}
}

// headroom keeps the limit within twice the most calls in flight of the
// last windows (at least headroomMin), so that a replica at light load,
// where nothing measures the knee, meets a surge with a limit near what it
// has served rather than far above it.
func (a *adaptive) headroom() {
	a.est = min(a.est, max(2*float64(slices.Max(a.peaks[:])), headroomMin))
}

// gate sets how far beyond the limit calls are admitted, from the window's
// completed and offered calls: a predicted wait of at most arrivalsAllowed
// mean times between offered calls, and at most K × X/(λ−X) calls waiting
// (at least 1, at most max(4K, 8)): many when the offered load is about
// what the service serves (at 1× a random walk of arrivals needs room, and
// no call has to be shed; the prediction is not used at all below 1.1×),
// one when it is several times more; both times boost.
// boost grows while calls are shed and the slots still stand idle though
// the limit is not above the knee (the service time varies so much that the
// prediction misses), and decays otherwise.
func (a *adaptive) gate(done, offered, dt float64, atKnee bool) {
	k := math.Round(a.est)
	if offered > done*1.02 && atKnee {
		if util := done / dt * a.baseline * 1000 / k; util < 0.97 {
			a.boost = min(a.boost*1.25, a.maxBoost())
		} else {
			a.boost = max(a.boost/1.1, 1)
		}
	}
	if a.overload > overloaded {
		a.allow.Store(int64(arrivalsAllowed * a.boost * dt / offered))
	} else {
		// Not overloaded: what is offered is served. Calls beyond the knee
		// wait for a random walk of arrivals to come back, within
		// waitMax; refusing them would shed what the service can serve.
		a.allow.Store(math.MaxInt64)
	}
	w := max(4*k, 8)
	if a.overload > 1 {
		w = min(w, a.boost*k/(a.overload-1))
	}
	a.waitMax.Store(int64(max(1, math.Round(w))))
}

// overloadSmoothing is the weight of a window's offered ÷ completed in
// adaptive.overload; above overloaded the gate predicts waits. A window of
// ten calls at 1× reads anywhere from 0.7 to 1.3: only a sustained surplus
// of offered calls is an overload.
const (
	overloadSmoothing = 0.25
	overloaded        = 1.1
)

// maxBoost bounds the gate's boost; steadyMaxBoost bounds it for a steady
// service (the last batch of no-load samples within a coefficient of
// variation of 1/2: spread 1). The boost is for a service whose time varies
// so much that the predicted wait misses; for a steady one it only admits
// calls that will wait longer. Measured on the adaptive scenario (2 CPUs,
// interleaved runs): a bound of 2 for every service put the cpu4 profile's
// p99 at 3× at 1.43–1.60 × p99 at 0.5× (4 runs; 1.59–2.38 with 4), goodput
// unchanged, but cost the mixed profile (1 ms and 50 ms calls) goodput (at
// 10×: 0.40–1.00 against 0.84–1.08), so a service that varies keeps 4. With
// this rule, two runs of every profile: p99 at 3× 1.55–1.99 for cpu1, cpu4,
// mixed and drift (with 4 for all: 1.23–2.15), goodput as before.
const (
	maxBoost       = 4
	steadyMaxBoost = 2
)

// maxBoost returns the bound of the gate's boost for this service.
func (a *adaptive) maxBoost() float64 {
	if a.spread.Load() == 1 {
		return steadyMaxBoost
	}
	return maxBoost
}

// maxSpread bounds adaptive.spread; maxWindowSpread bounds it for windows,
// which must stay short enough to follow the load.
const (
	maxSpread       = 16
	maxWindowSpread = 4
)

// spreadOf returns 4 × a squared coefficient of variation, within
// 1..maxSpread: the standard error of a mean of spread × n calls is then at
// most half the coefficient of variation of n calls of a service with a
// coefficient of variation of 1/2.
func spreadOf(cv2 float64) uint64 {
	return uint64(min(max(math.Ceil(4*cv2), 1), maxSpread))
}

// noLoad maintains the no-load latency and the probes that measure it.
func (a *adaptive) noLoad(now int64) {
	pn, psum := unpack(a.pacc.Load())
	m := float64(psum) / float64(max(pn, 1))
	cv2 := 0.0
	if m > 0 {
		cv2 = max(float64(a.psq.Load())/float64(max(pn, 1))/(m*m)-1, 0)
	}
	f := spreadOf(cv2)
	// A batch of a service whose calls vary a lot needs more calls: f
	// times ProbeSamples when they come by themselves (lone calls at light
	// load cost nothing). A pin costs the calls it sheds: the first
	// estimate takes ProbeSamples, later pins at most twice that, and the
	// smoothing of successive estimates does the rest. A pinned probe of a
	// steady service also ends with a few calls once it has taken
	// probeShort (50 ms calls would otherwise stay pinned for ProbeSamples ×
	// 50 ms); not one whose calls vary, since the calls that end within a
	// fixed time are the shorter ones and their mean would be too low.
	need := f
	switch {
	case a.baseline == 0:
		need = 1
	case a.pinned:
		need = min(f, 2)
	}
	if pn >= need*uint64(a.cfg.ProbeSamples) || (a.pinned && f == 1 && pn >= probeFew && now-a.probeStart >= int64(probeShort)) {
		a.pacc.Store(0)
		a.psq.Store(0)
		a.spread.Store(int64(f))
		a.cv = math.Sqrt(cv2)
		first := a.baseline == 0
		if first || a.pinned {
			a.baseline = m
			a.measured.Store(true)
		} else {
			a.baseline += smoothing * (m - a.baseline)
		}
		a.baselineAt = now
		a.nextProbe, a.doubt = now+jitter(int64(a.cfg.ProbeInterval)), false
		if a.pinned {
			a.pinned = false
			a.pinnedSince.Store(0)
			a.est = a.saved
			a.loneMax.Store(1)
		}
		a.downs, a.growth = 0, a.cfg.Tolerance
		if first {
			a.log.Info("loadshed: adaptive: no-load latency measured", "no_load_latency", micros(a.baseline),
				"samples", pn, "limit", int64(math.Round(a.est)))
		} else {
			a.log.Debug("loadshed: adaptive: no-load latency measured", "no_load_latency", micros(a.baseline), "samples", pn)
		}
		a.publish()
		return
	}
	if a.pinned {
		return
	}
	switch {
	case a.baseline == 0 && a.earlyRef == 0 && now-a.started >= int64(pinAfter) && a.seen >= 2*uint64(a.cfg.ProbeSamples) &&
		((a.fewLone >= 3 && a.overload > overloaded) || (a.fewLone >= 10 && slices.Max(a.peaks[:]) >= headroomMin)):
		// Overloaded from the start (more calls offered than served, no
		// call alone for three windows), or a service that always has
		// many calls in flight (none alone for ten windows). Pin to 1. (A
		// light load of a few calls at once has no hurry: lone calls
		// come, a few a second, and a pin would shed some: three windows
		// without one came by chance about once a second at half the
		// capacity of four workers, ten windows do not. Measured in the
		// simulation, from the start at 0.5×: 4 % of the calls of a 1 ms
		// and 50 ms mix shed in its first 8 s with three, 0.1 % with ten.)
		a.pin(1, "first")
	case a.baseline != 0 && now >= a.nextProbe:
		if !a.doubt && float64(slices.Max(a.peaks[:])) < math.Round(a.est) && a.within > 0 && a.within <= a.baseline*1000*(1+a.cfg.Tolerance) {
			// The limit not reached in the last windows and the calls
			// taking their no-load latency: nothing says it changed, and a
			// probe would shed calls for nothing.
			a.nextProbe = now + jitter(int64(a.cfg.ProbeInterval))
			a.log.Debug("loadshed: adaptive: probe skipped: calls take their no-load latency", "latency", micros(a.within/1000),
				"no_load_latency", micros(a.baseline))
			return
		}
		a.doubt = false
		a.pin(max(1, int64(math.Round(a.est/4))), "again")
	}
}

// pin holds the limit at p, below the knee, until ProbeSamples calls
// admitted with at most p in flight have measured the no-load latency.
func (a *adaptive) pin(p int64, which string) {
	a.pinned, a.saved = true, a.est
	a.probeStart = a.now()
	a.pinnedSince.Store(max(a.probeStart, 1))
	a.pacc.Store(0)
	a.psq.Store(0)
	a.loneMax.Store(p)
	a.limit.Store(p)
	a.gap.Store(0)
	a.log.Info("loadshed: adaptive: pinning the limit to measure the no-load latency "+which,
		"pinned_limit", p, "limit", int64(math.Round(a.est)), "no_load_latency", micros(a.baseline))
}

// publish makes the estimate the limit, and the gate's time between
// completions W0/K.
func (a *adaptive) publish() {
	k := max(math.Round(a.est), a.minLimit)
	a.limit.Store(int64(k))
	if a.baseline > 0 {
		a.gap.Store(int64(a.baseline * 1000 / k))
	}
}

// jitter returns d ± 15 %, so replicas started together do not pin their
// limits at the same moment.
func jitter(d int64) int64 {
	return d + int64((rand.Float64()*0.3-0.15)*float64(d))
}

func micros(us float64) time.Duration { return time.Duration(us * float64(time.Microsecond)) }
