package loadshed

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/grpcmgmt/grpcmgmt/load"
)

// PushbackHeader is the trailer of gRFC A6 that tells a client with a retry
// policy when to retry a call.
const PushbackHeader = "grpc-retry-pushback-ms"

// reason is why a call was shed; 0 means admitted.
type reason uint8

const (
	admitted reason = iota
	reasonStatic
	reasonCPU
	reasonAdaptive
	reasonQueueing

	numReasons = 5
)

var reasonNames = [numReasons]string{"", "static", "cpu", "adaptive", "queueing"}

var reasonMessages = [numReasons]string{
	"",
	"over the static in-flight limit (MaxInFlight)",
	"CPU over its threshold (CPUThreshold)",
	"over the adaptive concurrency limit",
	"calls queueing over the threshold (QueueingThreshold)",
}

// Bit layout of Shedder.state. 2^24-1 calls in flight is more than a
// process holds (each is a goroutine: 128 GiB of stacks); the done count
// wraps after 2^40 calls (12 days at a million calls a second), and the
// call whose release wraps it counts the wrap in doneWraps.
const (
	flightBits = 24
	doneBits   = 64 - flightBits
	flightMask = 1<<flightBits - 1
	oneDone    = 1 << flightBits
)

// quiet is how long a limit must shed nothing before it is logged as clear.
const quiet = time.Second

// maxExemptList is the most exempt methods and services (the two of the
// library's own services included) checked by comparing strings on every
// call; more are looked up in a map.
const maxExemptList = 8

// Shedder admits or sheds calls. Install it with TapHandle,
// UnaryServerInterceptor and StreamServerInterceptor, or through the
// grpcmgmt Manager (grpcmgmt.WithLoadShed). Create it with New; Close it
// when done.
type Shedder struct {
	// Read by every call: the first 56 bytes, one cache line. Between two
	// calls the server's own work has usually pushed the Shedder out of
	// the CPU's caches, and each line a call reads then costs a miss
	// (bench/NOTES.md, "Ninth session", "Seventeenth session"). A Shedder
	// is larger than 512 bytes, so Go's allocator puts it 8 bytes into a
	// 64-byte aligned slot (its malloc header first): its first line is
	// bytes 0 to 55 (TestShedderHotFieldsFirst). Immutable after New, but
	// for flags and nShedding.

	// loadLimits: the CPU or the queueing limit is on (load is not nil).
	loadLimits  bool
	defPrio     Priority
	hasAdaptive bool // adaptive is not nil
	hasMethods  bool // methods is not empty
	// flagTapRollsCPU, flagTapReadsHeader and flagSawHeader, each set once.
	flags     atomic.Uint32
	nShedding atomic.Int32 // limits in the shedding state
	// exemptMask has bit len(e)%32 set for every exempt method or service
	// e (every bit when they are in the exempt map): a call whose method's
	// and service's lengths have no bit set is not exempt, and reads
	// nothing else (isExempt).
	exemptMask uint32
	header     string // "" when metadata is ignored
	// calls is the sampler's call counter with Config.SharedCount: the
	// unary calls admitted are counted there (its one in-flight word), and
	// state counts only the streams. Nil: state counts every call.
	calls  *load.Calls
	static [numPriorities]int32 // MaxInFlight's share for each priority; 0: none

	// Read by the calls that need them:
	adaptive *adaptive // nil: off
	// The exempt methods and services: in exemptList when there are at most
	// maxExemptList of them (exempt is then nil), else in exempt.
	exempt     map[string]bool
	methods    map[string]Priority
	exemptList []string

	// Read by every call while the CPU or the queueing limit is on:
	load    *load.Sampler // nil: no CPU limit
	cpuTh   [numPriorities]float64
	queueTh [numPriorities]float64 // 0: no queueing limit

	// Immutable after New:
	cfg      Config
	log      *slog.Logger
	base     time.Time
	clock    func() int64 // ns since base
	pushback string       // grpc-retry-pushback-ms value; "" when none (tap mode)
	tapMode  bool         // rejections happen in the tap (no pushback)
	metrics  *instruments

	// Set once each, by the first call shed that needs it (most servers
	// never shed): the status errors a shed call returns, and the pushback
	// trailer it carries (see shedError and pushbackTrailer).
	errs    [numReasons][numPriorities]atomic.Pointer[error]
	trailer atomic.Pointer[metadata.MD]

	// Updated on every call, on a cache line of its own: the calls in
	// flight (low flightBits) and the calls done (high doneBits, modulo
	// 2^doneBits). Admitting is one add, releasing one add (done +1 and in
	// flight −1 together), and the calls admitted are derived (done + in
	// flight): a second counter written on every call, even on a line of
	// its own, made cores stall on each other's lines (issue 15). With
	// SharedCount it counts the streams only; the unary calls are in the
	// sampler's word (calls), and the calls in flight are the sum of both.
	_     [64]byte
	state atomic.Uint64
	_     [56]byte

	// Updated on calls of a priority other than the default only (a header
	// or a Config.Methods entry): their admitted counts. The default
	// priority's are the rest of the admitted calls.
	other [numPriorities]atomic.Uint64

	// doneWraps counts the wraps of state's done count (once per 2^40
	// calls), by the call whose release wrapped it.
	doneWraps atomic.Uint64

	// Guarded by countsMu: the admitted counts last reported (kept
	// monotonic: other[p] and state are read one after the other).
	countsMu sync.Mutex
	reported [numPriorities]uint64

	// Updated on the shed path:
	shed [numReasons][numPriorities]atomic.Uint64

	// Logging state, updated on the shed path:
	lastLog    atomic.Int64 // ns of the last debug log of a shed
	unlogged   atomic.Int64 // sheds since then
	shedding   [numReasons]atomic.Bool
	lastShed   [numReasons]atomic.Int64
	cpuOver    atomic.Bool // owned by the sampler callback
	queueOver  atomic.Bool // owned by the sampler callback
	stopSample func()
	closeOnce  sync.Once
}

// New validates cfg and returns a Shedder. It returns an error naming the
// first invalid field, or saying that cfg enables no limit at all.
func New(cfg Config) (*Shedder, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	s := &Shedder{cfg: cfg, base: time.Now(), load: cfg.Load, defPrio: *cfg.DefaultPriority}
	s.clock = s.sinceBase
	s.lastLog.Store(-int64(time.Second)) // the first shed is logged
	s.log = cfg.Logger
	if s.log == nil {
		s.log = slog.Default()
	}
	s.log = s.log.With("component", "loadshed")
	cpuOn := cfg.CPUThreshold != Off && cfg.Load != nil
	if cfg.MaxInFlight == 0 && !cpuOn && cfg.Adaptive == nil && (cfg.Load == nil || cfg.QueueingThreshold == Off) {
		return nil, fmt.Errorf("loadshed: Config enables no limit: set MaxInFlight or Adaptive, or Load for the CPU and queueing limits")
	}
	if cfg.Load == nil {
		s.load = nil
	}
	for p := Priority(0); p < numPriorities; p++ {
		if cfg.MaxInFlight > 0 {
			s.static[p] = max(1, int32(float64(cfg.MaxInFlight)*p.Share()))
		}
		s.cpuTh[p] = min(cfg.CPUThreshold*p.Share(), 1)
		if !cpuOn {
			s.cpuTh[p] = 2 // never: CPU utilization is at most about 1
		}
		if cfg.QueueingThreshold != Off {
			s.queueTh[p] = min(cfg.QueueingThreshold*p.Share(), 0.99)
		}
	}
	if cfg.Adaptive != nil {
		s.adaptive = newAdaptive(*cfg.Adaptive, s.log, s.now, s.counts)
		s.hasAdaptive = true
	}
	s.methods, s.hasMethods = cfg.Methods, len(cfg.Methods) > 0
	s.exemptList = append([]string{healthService, orcaService}, cfg.Exempt...)
	for _, e := range s.exemptList {
		s.exemptMask |= lengthBit(e)
	}
	if len(s.exemptList) > maxExemptList {
		s.exempt = map[string]bool{}
		for _, m := range s.exemptList {
			s.exempt[m] = true
		}
		s.exemptList, s.exemptMask = nil, ^uint32(0)
	}
	s.loadLimits = s.load != nil && (cpuOn || cfg.QueueingThreshold != Off)
	if cfg.SharedCount {
		s.calls = cfg.Load.Calls()
	}
	if cfg.ReadsHeader() {
		s.header = cfg.PriorityHeader
	}
	if cfg.Pushback == Off {
		s.tapMode = true
	} else {
		s.pushback = strconv.FormatInt(cfg.Pushback.Milliseconds(), 10)
	}
	mp := cfg.MeterProvider
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	m, err := newInstruments(mp, s)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	if cfg.Load != nil {
		s.stopSample = cfg.Load.OnSample(s.onSample)
	}
	s.log.Debug("loadshed: ready", "max_in_flight", cfg.MaxInFlight, "cpu_threshold", cpuThresholdAttr(s, cpuOn),
		"queueing_threshold", queueingThresholdAttr(s),
		"adaptive", cfg.Adaptive != nil, "code", cfg.Code, "pushback", cfg.Pushback, "reject_in_tap", s.tapMode)
	return s, nil
}

func cpuThresholdAttr(s *Shedder, on bool) any {
	if !on {
		return "off"
	}
	return s.cfg.CPUThreshold
}

func queueingThresholdAttr(s *Shedder) any {
	if s.load == nil || s.cfg.QueueingThreshold == Off {
		return "off"
	}
	return s.cfg.QueueingThreshold
}

// Close stops the Shedder's subscription to the load sampler and its
// metrics. Calls keep being admitted and shed; Close is idempotent.
func (s *Shedder) Close() error {
	s.closeOnce.Do(func() {
		if s.stopSample != nil {
			s.stopSample()
		}
		s.metrics.close()
	})
	return nil
}

// InFlight returns the calls admitted and not yet finished (exempt methods
// are not counted).
func (s *Shedder) InFlight() int64 {
	n := int64(s.state.Load() & flightMask)
	if s.calls != nil {
		n += s.calls.UnaryInFlight()
	}
	return n
}

// Limit returns the concurrency limit a Critical call sees now: the lower
// of MaxInFlight and the adaptive limit, or 0 if neither is configured.
func (s *Shedder) Limit() int64 {
	l := int64(s.static[Critical])
	if s.hasAdaptive {
		if a := s.adaptive.limit.Load(); l == 0 || a < l {
			l = a
		}
	}
	return l
}

func (s *Shedder) now() int64 { return s.clock() }

func (s *Shedder) sinceBase() int64 { return int64(time.Since(s.base)) }

// counts returns the calls admitted and shed since New (all priorities and
// reasons) and the calls in flight, for the adaptive limit's rates.
func (s *Shedder) counts() (adm, shed uint64, inFlight int64) {
	adm, inFlight = s.admittedAll()
	for p := range numPriorities {
		for r := range s.shed {
			shed += s.shed[r][p].Load()
		}
	}
	return adm, shed, inFlight
}

// admittedAll returns the calls admitted since New (done + in flight) and
// the calls in flight now.
func (s *Shedder) admittedAll() (adm uint64, inFlight int64) {
	w := s.state.Load()
	adm, inFlight = s.doneWraps.Load()<<doneBits+w>>flightBits+w&flightMask, int64(w&flightMask)
	if s.calls != nil {
		adm += s.calls.UnaryStarted()
		inFlight += s.calls.UnaryInFlight()
	}
	return adm, inFlight
}

// admittedBy returns the calls admitted since New by priority: counted for
// the priorities other than the default, the rest for the default. Each
// count is at least the one returned before, so that a metric reader sees
// monotonic counters.
func (s *Shedder) admittedBy() [numPriorities]uint64 {
	s.countsMu.Lock()
	defer s.countsMu.Unlock()
	var others [numPriorities]uint64
	var sum uint64
	for p := range numPriorities {
		if Priority(p) != s.defPrio {
			others[p] = s.other[p].Load()
			sum += others[p]
		}
	}
	total, _ := s.admittedAll()
	others[s.defPrio] = total - min(sum, total)
	for p := range numPriorities {
		s.reported[p] = max(s.reported[p], others[p])
	}
	return s.reported
}

// token is an admitted call's release: done is called exactly once, deferred
// by the interceptor that admitted it. A value, so admitting allocates
// nothing.
type token struct {
	start    int64     // ns; 0 when the call is not a latency sample
	pred     int64     // ns: the wait predicted for a call admitted beyond the adaptive limit
	call     load.Call // SharedCount: the unary call, whose slot is its count in the sampler's word; zero: the slot is in state
	baseline bool      // a no-load sample
	queued   bool      // admitted beyond the adaptive limit, to wait for a slot
}

// admit decides on one call of priority p. rollCPU says whether the CPU
// limit is decided here (false when the tap has decided it already).
func (s *Shedder) admit(p Priority, sample, rollCPU bool) (token, reason) {
	var t token
	r := s.admitInto(&t, p, sample, rollCPU)
	return t, r
}

// admitInto is admit writing the admitted call's token into *t (zero on
// entry), where the caller keeps it: a token returned through two calls
// is copied with wide loads right after its fields were stored one by one,
// which stalls the loads (measured: 5-10 % of BenchmarkCallPath).
func (s *Shedder) admitInto(t *token, p Priority, sample, rollCPU bool) reason {
	if s.loadLimits {
		if r := s.loadShed(p, rollCPU); r != admitted {
			return r
		}
	}
	lim, r := int64(s.static[p]), reasonStatic
	if s.hasAdaptive {
		if a := s.adaptive.limitFor(p); lim == 0 || a < lim {
			lim, r = a, reasonAdaptive
		}
	}
	n, seq, ok := s.take(t, lim, r == reasonAdaptive, sample)
	if !ok {
		return r
	}
	if p != s.defPrio {
		s.other[p].Add(1)
	}
	if s.hasAdaptive {
		s.adaptive.admitted(n)
		switch {
		case t.queued:
			// Always timed: the gate's evidence.
			t.start = max(s.now(), 1)
		default:
			// Lone calls (no-load samples) are timed like the others: one
			// in eight or fewer when the traffic is heavy. (A server with
			// many lone calls is not busy; one with few is, and pins to
			// measure.)
			if (sample && s.adaptive.sample(seq)) || n == lim {
				t.start = max(s.now(), 1)
				t.baseline = s.adaptive.lone(n)
			}
			if n == lim {
				// The last free slot: the next call waits for a slot, and
				// its predicted wait starts from here. (Below the limit
				// nothing is predicted: no shared store on the fast path.)
				s.adaptive.startedAt(t.start)
			}
		}
		if !sample { // a stream: holds a slot, is no latency sample
			t.start, t.baseline = 0, false
		}
	}
	return admitted
}

// take takes a slot for one call against the limit lim (0: none), and
// returns the calls in flight with it, itself included, and seq, a number
// no other admission's take returns (the calls admitted so far). adaptive
// says lim is the adaptive limit, whose gate may let a unary call (sample)
// through beyond it to wait for a slot.
//
// Fast path: one add, kept if it stays within the limit. Every call
// admitted saw the count, its own slot included, at most lim (or was let
// through the gate), so never more than that hold a slot. A count over lim
// may include other callers' increments that they are about to undo, so a
// call that sees one (and is not let through the gate) undoes its own and
// checks again with a compare-and-swap: a free slot is not refused because
// of callers that were refused themselves.
//
// With SharedCount, unary calls and streams count in two words (the
// sampler's and state): each call writes its own word and then reads the
// other, so of any two calls taking slots at once at least one sees the
// other's (every access is sequentially consistent), and the last to
// check sees every slot held.
func (s *Shedder) take(t *token, lim int64, adaptive, sample bool) (n int64, seq uint64, ok bool) {
	if s.calls != nil && sample {
		return s.takeUnary(t, lim, adaptive)
	}
	w := s.state.Add(1)
	n = int64(w&flightMask) + s.unaryInFlight()
	if lim != 0 && n > lim {
		if adaptive && sample { // a stream holds its slot for good: no wait to predict
			t.pred, t.queued = s.adaptive.mayQueue(n-lim, lim)
		}
		if !t.queued {
			s.state.Add(^uint64(0)) // −1 in flight
			for {
				w = s.state.Load()
				if n = int64(w&flightMask) + s.unaryInFlight(); n >= lim {
					return 0, 0, false
				}
				if s.state.CompareAndSwap(w, w+1) {
					w++
					break
				}
			}
			if n = int64(w&flightMask) + s.unaryInFlight(); n > lim {
				s.state.Add(^uint64(0)) // a unary call took the slot (SharedCount)
				return 0, 0, false
			}
		}
	}
	return n, w>>flightBits + w&flightMask, true
}

// takeUnary is take for a unary call with SharedCount: its slot is the
// sampler's count of it, taken with load.Calls.Enter.
func (s *Shedder) takeUnary(t *token, lim int64, adaptive bool) (n int64, seq uint64, ok bool) {
	k, n := s.calls.Enter()
	if lim == 0 { // the CPU and queueing limits only (the Manager's default): no count to compare
		t.call = k
		return n, k.Admit(), true
	}
	if n += int64(s.state.Load() & flightMask); n > lim {
		if adaptive {
			t.pred, t.queued = s.adaptive.mayQueue(n-lim, lim)
		}
		if !t.queued {
			k.Cancel()
			streams := int64(s.state.Load() & flightMask)
			if k, n, ok = s.calls.EnterBelow(lim - streams); !ok {
				return 0, 0, false
			}
			if n += int64(s.state.Load() & flightMask); n > lim {
				k.Cancel() // a stream took the slot
				return 0, 0, false
			}
		}
	}
	t.call = k
	return n, k.Admit(), true
}

// unaryInFlight returns the unary calls holding a slot in the sampler's
// word (SharedCount), else 0: they are in state.
func (s *Shedder) unaryInFlight() int64 {
	if s.calls == nil {
		return 0
	}
	return s.calls.UnaryInFlight()
}

// loadShed rolls the dice of the limits that follow the shared sampler:
// CPU (if rollCPU) and queueing.
func (s *Shedder) loadShed(p Priority, rollCPU bool) reason {
	snap := s.load.Snapshot()
	if rollCPU && ramp(snap.CPU, s.cpuTh[p]) {
		return reasonCPU
	}
	if th := s.queueTh[p]; th > 0 && snap.QueueingPastMinDelay && ramp(snap.Queueing, th) {
		return reasonQueueing
	}
	return admitted
}

// wouldShed is the tap's read-only pre-check of the concurrency limits.
func (s *Shedder) wouldShed(p Priority) reason {
	lim, r := int64(s.static[p]), reasonStatic
	if s.hasAdaptive {
		if a := s.adaptive.limitFor(p); lim == 0 || a < lim {
			lim, r = a, reasonAdaptive
		}
	}
	if n := s.InFlight(); lim != 0 && n >= lim {
		if r == reasonAdaptive {
			if _, ok := s.adaptive.mayQueue(n+1-lim, lim); ok {
				return admitted // the interceptor decides again, atomically
			}
		}
		return r
	}
	return admitted
}

// cpuShed rolls the CPU limit's dice.
func (s *Shedder) cpuShed(p Priority) bool { return ramp(s.load.Snapshot().CPU, s.cpuTh[p]) }

// ramp rolls a ramp limit's dice: the shed probability rises linearly from
// 0 at the threshold th to 1 at a value v of 1 (full utilization; all of
// the latency spent queueing).
func ramp(v, th float64) bool {
	if v <= th {
		return false
	}
	if th >= 1 {
		return true
	}
	prob := (v - th) / (1 - th)
	return prob >= 1 || rand.Float64() < prob
}

// done releases an admitted call's slot; failed is the call's outcome for
// the sampler's error rate (SharedCount).
func (s *Shedder) done(t token, failed bool) {
	var w uint64
	if !t.call.IsZero() {
		t.call.End(failed)
	} else {
		w = s.state.Add(oneDone - 1) // done +1, in flight −1
		if w < oneDone {
			s.doneWraps.Add(1) // the done count wrapped to 0
		}
	}
	var now int64
	if s.hasAdaptive {
		a := s.adaptive
		n := int64(w&flightMask) + s.unaryInFlight()
		if !t.call.IsZero() {
			n = s.InFlight()
		}
		if n >= a.limit.Load() {
			// A call waiting for a slot takes this one: the gate predicts
			// the next slot from now.
			now = s.now()
			a.startedAt(now)
		}
		if t.start != 0 {
			if now == 0 {
				now = s.now()
			}
			a.done(now, now-t.start, t)
		}
	}
	if s.nShedding.Load() > 0 {
		if now == 0 {
			now = s.now()
		}
		s.checkClear(now)
	}
}

// rejected counts and logs one shed call and returns its status error.
func (s *Shedder) rejected(r reason, p Priority, method string) error {
	s.shed[r][p].Add(1)
	if s.load != nil && (r != reasonAdaptive || !s.adaptive.measuring()) {
		s.load.Calls().Refuse()
	}
	now := s.now()
	s.lastShed[r].Store(now)
	if !s.shedding[r].Load() && s.shedding[r].CompareAndSwap(false, true) {
		s.nShedding.Add(1)
		s.log.Info("loadshed: shedding started", "reason", reasonNames[r], "priority", p.String(),
			"in_flight", s.InFlight(), "limit", s.Limit())
	}
	s.unlogged.Add(1)
	if last := s.lastLog.Load(); now-last >= int64(time.Second) && s.lastLog.CompareAndSwap(last, now) {
		if s.log.Enabled(context.Background(), slog.LevelDebug) {
			s.log.Debug("loadshed: call shed", "method", method, "reason", reasonNames[r], "priority", p.String(),
				"in_flight", s.InFlight(), "limit", s.Limit(), "shed_since_last_log", s.unlogged.Swap(0))
		}
	}
	return s.shedError(r, p)
}

// shedError returns the status error of a call shed by limit r at priority
// p, made on first use and kept: most servers never shed, and what a server
// keeps the garbage collector marks on every cycle. Made up front, these
// errors, the pushback trailer and the metrics' attribute sets were a fifth
// of the heap a full grpcmgmt stack keeps (bench/NOTES.md, "Sixteenth
// session").
func (s *Shedder) shedError(r reason, p Priority) error {
	return madeOnce(&s.errs[r][p], func() error {
		return status.Error(s.cfg.Code, "loadshed: call shed: "+reasonMessages[r]+"; priority "+p.String())
	})
}

// pushbackTrailer returns the trailer that tells a client when to retry a
// shed call (PushbackHeader), made on first use; nil without a pushback.
func (s *Shedder) pushbackTrailer() metadata.MD {
	if s.pushback == "" {
		return nil
	}
	return madeOnce(&s.trailer, func() metadata.MD { return metadata.Pairs(PushbackHeader, s.pushback) })
}

// madeOnce returns the value kept in p, made by build and kept there by the
// first caller: callers that race each make one, and all return the one
// kept.
func madeOnce[T any](p *atomic.Pointer[T], build func() T) T {
	if v := p.Load(); v != nil {
		return *v
	}
	v := build()
	p.CompareAndSwap(nil, &v)
	return *p.Load()
}

// checkClear logs the limits that have shed nothing for a while as clear.
func (s *Shedder) checkClear(now int64) {
	for r := reasonStatic; r < numReasons; r++ {
		if s.shedding[r].Load() && now-s.lastShed[r].Load() >= int64(quiet) && s.shedding[r].CompareAndSwap(true, false) {
			s.nShedding.Add(-1)
			var total uint64
			for p := range s.shed[r] {
				total += s.shed[r][p].Load()
			}
			s.log.Info("loadshed: shedding stopped", "reason", reasonNames[r], "shed_total", total, "limit", s.Limit())
		}
	}
}

// onSample runs on the sampler goroutine.
func (s *Shedder) onSample(snap load.Snapshot) {
	if th := s.queueTh[Critical]; s.load != nil && th > 0 {
		over := snap.Queueing > th && snap.QueueingPastMinDelay
		if over != s.queueOver.Load() {
			s.queueOver.Store(over)
			if over {
				s.log.Info("loadshed: queueing over threshold; critical calls shed with rising probability",
					"queueing", round3(snap.Queueing), "threshold", th, "latency", snap.Latency, "no_load_latency", snap.NoLoadLatency)
			} else {
				s.log.Info("loadshed: queueing back under threshold", "queueing", round3(snap.Queueing), "threshold", th)
			}
		}
	}
	if s.load != nil && s.cpuTh[Critical] <= 1 {
		over := snap.CPU > s.cfg.CPUThreshold
		if over != s.cpuOver.Load() {
			s.cpuOver.Store(over)
			if over {
				s.log.Info("loadshed: CPU over threshold; critical calls shed with rising probability",
					"cpu", round3(snap.CPU), "threshold", s.cfg.CPUThreshold)
			} else {
				s.log.Info("loadshed: CPU back under threshold", "cpu", round3(snap.CPU), "threshold", s.cfg.CPUThreshold)
			}
		}
	}
	if s.nShedding.Load() > 0 {
		s.checkClear(s.now())
	}
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }
