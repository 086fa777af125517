package load

import (
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"

	"github.com/grpcmgmt/grpcmgmt/internal/subscribers"
)

// States of Sampler.state: whether the sampler goroutine is running user
// code (a Source or an OnSample callback), and whether Close was called.
const (
	stateIdle   int32 = iota // sampling, or waiting for the next tick
	stateUser                // inside Source.Read or an OnSample callback
	stateClosed              // Close was called; no user code starts again
)

// Sampler samples every signal on one goroutine, every Config.Period, and
// publishes an immutable Snapshot. Create it with NewSampler and stop it
// with Close.
type Sampler struct {
	// Immutable after NewSampler:
	period time.Duration
	tau    time.Duration
	log    *slog.Logger
	met    *metrics
	stop   chan struct{} // closed by Close
	done   chan struct{} // closed when the sampler goroutine exits
	ownMem io.Closer     // the default memory reading, closed by Close; nil if none to close

	// Owned by the sampler goroutine (custom is also read, never written,
	// by the metrics callback):
	cpu, mem                reading
	custom                  []*reading // sorted by name
	all                     []*reading // cpu, mem, then custom
	lastAt                  time.Time
	lastStarted, lastFailed uint64
	lastStreamsStarted      uint64
	lastRefused             uint64
	q                       queueing
	noLoadKnown             bool // NoLoadLatency was logged once
	// The time integral of the unary calls in flight (call·µs): the
	// completed calls' latencies summed (doneMicros), and the reading at
	// the last sample (intAt µs, integral).
	doneMicros, integral uint64
	intAt                int64

	// Written on the call path; padded onto a cache line of its own.
	calls Calls

	snap atomic.Pointer[Snapshot]
	subs subscribers.List[func(Snapshot)] // OnSample's

	state     atomic.Int32 // stateIdle, stateUser or stateClosed
	closeOnce sync.Once
}

// NewSampler validates cfg and starts the sampling goroutine. The first
// Snapshot is published one Period later; until then Snapshot returns a
// zero Snapshot (zero At). The returned error names the invalid field and
// its allowed range.
func NewSampler(cfg Config) (*Sampler, error) {
	s, err := newSampler(cfg, os.DirFS("/"))
	if err != nil {
		return nil, err
	}
	go s.loop()
	return s, nil
}

// newSampler builds a Sampler reading the system's files under root,
// without starting its goroutine.
func newSampler(cfg Config, root fs.FS) (*Sampler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	s := &Sampler{
		period: cfg.Period,
		tau:    cfg.TimeConstant,
		log:    cfg.Logger,
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
		q:      newQueueing(cfg),
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if cfg.CPU == nil {
		src, err := defaultCPU(root, time.Now, s.log)
		if err != nil {
			return nil, fmt.Errorf("load: no CPU reading on this system (set Config.CPU): %w", err)
		}
		cfg.CPU = src
	}
	if cfg.Memory == nil {
		cfg.Memory = defaultMemory(root, s.log)
		s.ownMem, _ = cfg.Memory.(io.Closer)
	}
	s.cpu = reading{name: "cpu", src: cfg.CPU}
	s.mem = reading{name: "memory", src: cfg.Memory}
	for name, src := range cfg.Sources {
		s.custom = append(s.custom, &reading{name: name, src: src})
	}
	slices.SortFunc(s.custom, func(a, b *reading) int { return strings.Compare(a.name, b.name) })
	s.all = append([]*reading{&s.cpu, &s.mem}, s.custom...)

	mp := cfg.MeterProvider
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	met, err := newMetrics(mp, s)
	if err != nil {
		return nil, fmt.Errorf("load: MeterProvider: %w", err)
	}
	s.met = met
	s.snap.Store(&Snapshot{})
	s.lastAt = time.Now()
	s.intAt, _ = s.calls.unaryIntegral()
	s.log.Info("load: sampler started", "period", s.period, "time_constant", s.tau,
		"queueing_enter", cfg.QueueingEnter, "queueing_exit", cfg.QueueingExit,
		"queueing_min_delay", cfg.QueueingMinDelay, "no_load_window", cfg.NoLoadWindow,
		"cpu", describe(cfg.CPU), "memory", describe(cfg.Memory), "sources", len(s.custom))
	return s, nil
}

// describe names a Source in the start-up log line.
func describe(src Source) string {
	if d, ok := src.(fmt.Stringer); ok {
		return d.String()
	}
	return fmt.Sprintf("%T", src)
}

// Calls returns the call counter that feeds InFlight, QPS and EPS. The call
// path calls Begin and End on it.
func (s *Sampler) Calls() *Calls { return &s.calls }

// Snapshot returns the latest sample. It never blocks and never allocates:
// it is one atomic load, safe on the call path.
func (s *Sampler) Snapshot() *Snapshot { return s.snap.Load() }

// Period returns the time between samples.
func (s *Sampler) Period() time.Duration { return s.period }

// TimeConstant returns the smoothing time constant of the averaged signals:
// a step change of load shows in them at about 63 % after one time
// constant and 86 % after two.
func (s *Sampler) TimeConstant() time.Duration { return s.tau }

// QueueingThresholds returns the queueing share at which
// Snapshot.QueueingHigh turns on and the one below which it turns off
// (Config.QueueingEnter and QueueingExit, defaults applied; enter < 0 when
// the signal is off). The levers that size their action to the excess
// (health's proportional removal) read the excess against exit.
func (s *Sampler) QueueingThresholds() (enter, exit float64) { return s.q.enter, s.q.exit }

// QueueingMinDelay returns the least queueing delay (Snapshot.Latency −
// Snapshot.NoLoadLatency) that counts as queueing (Config.QueueingMinDelay,
// default applied). Each Snapshot says whether its delay is past it
// (Snapshot.QueueingPastMinDelay): a microsecond-scale service whose calls
// stall for a few hundred microseconds (a GC pause, a descheduled thread)
// reads as queueing 0.9 with no queue worth acting on.
func (s *Sampler) QueueingMinDelay() time.Duration {
	return time.Duration(s.q.minDelayMicro * float64(time.Microsecond))
}

// OnSample registers fn to be called after every sample with the new
// Snapshot, until the returned cancel is called or the Sampler is closed.
//
// Callbacks run on the sampler goroutine, one after the other, in
// registration order: fn must return quickly (the next sample waits for
// it) and must not block on anything that waits for a sample. It may call
// cancel, OnSample and Close. cancel is idempotent and never waits for fn:
// a call of fn already under way when cancel is called may still finish (or
// begin, if the sampler had just passed the check) after cancel returns.
//
// Registering and cancelling copy the subscriber list; delivering a sample
// does not allocate.
func (s *Sampler) OnSample(fn func(Snapshot)) (cancel func()) {
	if fn == nil {
		return func() {}
	}
	return s.subs.Add(fn)
}

// Close stops sampling, unregisters the gauges, and waits for the sampler
// goroutine to exit. No Source.Read or OnSample callback starts after Close
// returns. Close does not wait for one already running (so a callback may
// call Close, and a stuck callback cannot hang a shutdown): the goroutine
// then exits as soon as that call returns. Close is idempotent and always
// returns nil; the latest Snapshot stays readable.
func (s *Sampler) Close() error {
	s.closeOnce.Do(func() {
		prev := s.state.Swap(stateClosed)
		close(s.stop)
		if err := s.met.close(); err != nil {
			s.log.Warn("load: unregistering gauges", "err", err)
		}
		if prev != stateUser {
			<-s.done
		}
		if s.ownMem != nil {
			// Waits for a Read in progress (the file is read under a lock).
			_ = s.ownMem.Close()
		}
		s.log.Info("load: sampler stopped")
	})
	return nil
}

func (s *Sampler) loop() {
	defer close(s.done)
	t := time.NewTicker(s.period)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			// time.Now, not the tick's time: after a slow callback the
			// buffered tick is stale, and rates need the true interval.
			if !s.sample(time.Now()) {
				return
			}
		}
	}
}

// enterUser and leaveUser bracket user code (a Source.Read, a callback).
// Both return false if the Sampler was closed: enterUser before the user
// code may start, leaveUser while it ran.
func (s *Sampler) enterUser() bool { return s.state.CompareAndSwap(stateIdle, stateUser) }
func (s *Sampler) leaveUser() bool { return s.state.CompareAndSwap(stateUser, stateIdle) }

// sample takes one sample at now, publishes it and delivers it to the
// subscribers. It returns false when the Sampler was closed meanwhile.
func (s *Sampler) sample(now time.Time) bool {
	dt := now.Sub(s.lastAt)
	if dt <= 0 {
		return true
	}
	s.lastAt = now
	prev := s.snap.Load()
	e := newEWMA(dt, s.tau, prev.At.IsZero())

	for _, r := range s.all {
		if !s.enterUser() {
			return false
		}
		err := r.read()
		if !s.leaveUser() {
			return false
		}
		s.noteReading(r, err)
		r.smooth(e)
	}

	started, failed := s.calls.started.Load(), s.calls.failed.Load()
	inFlight := s.calls.InFlight()
	n := &Snapshot{
		At:        now,
		CPU:       s.cpu.avg,
		CPURaw:    s.cpu.last,
		Memory:    s.mem.avg,
		MemoryRaw: s.mem.last,
		InFlight:  inFlight,
		QPSRaw:    float64(started-s.lastStarted) / dt.Seconds(),
		EPSRaw:    float64(failed-s.lastFailed) / dt.Seconds(),
	}
	streamsStarted := s.calls.streamsStarted.Load()
	n.UnaryQPSRaw = float64((started-s.lastStarted)-(streamsStarted-s.lastStreamsStarted)) / dt.Seconds()
	refused := s.calls.refused.Load()
	n.ShedRaw = float64(refused-s.lastRefused) / dt.Seconds()
	n.Shed = e.next(prev.Shed, n.ShedRaw)
	ratio := 0.0
	if arrived := float64(started-s.lastStarted) + float64(refused-s.lastRefused); arrived > 0 {
		ratio = float64(refused-s.lastRefused) / arrived
	}
	n.ShedRatio = e.next(prev.ShedRatio, ratio)
	s.lastStarted, s.lastFailed, s.lastStreamsStarted, s.lastRefused = started, failed, streamsStarted, refused
	n.InFlightAvg = e.next(prev.InFlightAvg, float64(inFlight))
	n.QPS = e.next(prev.QPS, n.QPSRaw)
	n.EPS = e.next(prev.EPS, n.EPSRaw)
	at, open := s.calls.unaryIntegral() // before sampleQueueing takes the ended calls' latencies
	s.doneMicros += s.sampleQueueing(now, e, prev, n)
	if integral := s.doneMicros + open; at > s.intAt {
		// A call ending between the two reads is counted twice in this
		// period and once less in the next: an error of one call's
		// duration in one sample, never cumulative.
		n.UnaryInFlightMean = max(float64(int64(integral-s.integral))/float64(at-s.intAt), 0)
		s.integral, s.intAt = integral, at
	}
	if len(s.custom) > 0 {
		n.Custom = make(map[string]float64, len(s.custom))
		for _, r := range s.custom {
			if r.ok {
				n.Custom[r.name] = r.last
			}
		}
	}
	s.snap.Store(n)

	for fn := range s.subs.All() {
		if !s.enterUser() {
			return false
		}
		fn(*n)
		if !s.leaveUser() {
			return false
		}
	}
	return true
}

// sampleQueueing fills in the latency and queueing fields of n. It returns
// the sum of the latencies (µs) of the unary calls that ended since the last
// sample.
func (s *Sampler) sampleQueueing(now time.Time, e ewma, prev, n *Snapshot) uint64 {
	nLat, sumLat := unpack(s.calls.lat.Swap(0))
	nAlone, sumAlone := unpack(s.calls.alone.Swap(0))
	s.q.add(now, nLat, sumLat, nAlone, sumAlone)
	noLoad := s.q.noLoad(now)
	prevLat := float64(prev.Latency) / float64(time.Microsecond)
	in := prevLat // no call ended, some in flight: no new evidence
	switch {
	case nLat > 0:
		raw := float64(sumLat) / float64(nLat)
		n.LatencyRaw = micros(raw)
		in = raw
	case s.calls.timedInFlight() == 0 && noLoad > 0:
		in = noLoad // idle: no queue
	}
	lat := in
	if prevLat > 0 {
		lat = e.next(prevLat, in)
	}
	share, changed := s.q.decide(lat, noLoad)
	n.Latency, n.NoLoadLatency = micros(lat), micros(noLoad)
	n.Queueing, n.QueueingHigh = share, s.q.high
	n.QueueingPastMinDelay = lat-noLoad >= s.q.minDelayMicro
	if noLoad > 0 && !s.noLoadKnown {
		s.noLoadKnown = true
		s.log.Info("load: no-load latency measured", "no_load_latency", n.NoLoadLatency)
	}
	if changed {
		s.met.queueingTransition(s.q.high)
		attrs := []any{"queueing", round3(share), "latency", n.Latency, "no_load_latency", n.NoLoadLatency}
		if s.q.high {
			s.log.Info("load: queueing high: calls wait for one another", append(attrs,
				"queueing_enter", s.q.enter, "queueing_min_delay", micros(s.q.minDelayMicro))...)
		} else {
			s.log.Info("load: queueing back to normal", append(attrs, "queueing_exit", s.q.exit)...)
		}
	}
	return sumLat
}

func micros(v float64) time.Duration { return time.Duration(v * float64(time.Microsecond)) }

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

// noteReading counts and logs a failed reading, and logs a recovery.
func (s *Sampler) noteReading(r *reading, err error) {
	switch {
	case err != nil:
		s.met.sourceError(r)
		if !r.failing {
			r.failing = true
			s.log.Warn("load: source failing; keeping its last value", "source", r.name, "last", r.last, "err", err)
		} else {
			s.log.Debug("load: source still failing", "source", r.name, "err", err)
		}
	case r.failing:
		r.failing = false
		s.log.Info("load: source recovered", "source", r.name, "value", r.last)
	}
}
