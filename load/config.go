package load

import (
	"fmt"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/metric"
)

// Defaults of Config; see the field comments for the allowed ranges.
const (
	// DefaultPeriod is short enough that a lever reacts within a second of a
	// load change (a few periods of smoothing) and long enough that one
	// period of a 2-CPU allowance holds 500 ms of CPU time, far above the
	// resolution of the readings.
	DefaultPeriod = 250 * time.Millisecond
	// DefaultTimeConstant smooths away a single slow request or GC cycle
	// while still following a real load change within a few seconds.
	DefaultTimeConstant = time.Second
	// DefaultQueueingEnter: queueing is high when calls take four times
	// their no-load latency (three quarters of their time is spent
	// waiting). A single queue with random arrivals gets there at 75 %
	// (M/M/1) to 86 % (M/D/1) utilization, a replica with several workers
	// later; a replica with a standing queue is far beyond it. 0.5 (twice
	// the no-load latency) was tried first: an M/M/1 queue is there at half
	// its capacity, and in back-to-back runs of the hot scenario (replicas
	// at 60 % of their capacity on one shared core) the round_robin leg's
	// p99 was 130–155 ms against 70–81 ms without the signal. The machine
	// was shared and the runs few: a hint, not a measurement.
	DefaultQueueingEnter = 0.75
	// DefaultQueueingExit: latency twice the no-load latency.
	DefaultQueueingExit = 0.5
	// DefaultQueueingMinDelay: a queueing delay under a millisecond is not
	// worth moving load for, however large it is relative to a
	// microsecond-scale no-load latency (one GC pause would otherwise read
	// as overload on a fast service).
	DefaultQueueingMinDelay = time.Millisecond
	// DefaultNoLoadWindow is how long a no-load latency measured from lone
	// calls stays valid while the replica is never idle, and the span of the
	// sliding minimum used instead: an overload that lasts longer than this
	// is taken as the new normal (a capacity problem for the autoscaler, not
	// for steering load between replicas).
	DefaultNoLoadWindow = 5 * time.Minute

	minPeriod       = 10 * time.Millisecond
	maxPeriod       = 10 * time.Second
	maxTimeConstant = time.Minute
	maxNoLoadWindow = 24 * time.Hour
)

// Off turns off a threshold that has one (Config.QueueingEnter).
const Off = -1

// Config configures a Sampler. The zero value means every default.
type Config struct {
	// Period between samples. Default 250ms (DefaultPeriod); allowed
	// 10ms..10s.
	Period time.Duration
	// TimeConstant of the exponential smoothing (EWMA): a step change in a
	// signal shows 63 % in the smoothed value after one TimeConstant, 95 %
	// after three. Default 1s (DefaultTimeConstant), or Period if that is
	// longer; allowed Period..1m.
	TimeConstant time.Duration
	// QueueingEnter is the share of the calls' smoothed latency spent
	// queueing, 1 − NoLoadLatency/Latency (Snapshot.Queueing), at or above
	// which Snapshot.QueueingHigh turns on, provided the queueing delay is
	// also at least QueueingMinDelay. Default 0.75 (latency four times the
	// no-load latency); allowed 0.05..0.99, or Off: QueueingHigh is never
	// set and the levers decide on CPU alone.
	QueueingEnter float64
	// QueueingExit is the share below which QueueingHigh turns off again.
	// Default 0.5, or two thirds of QueueingEnter when that is set; allowed
	// above 0 and below QueueingEnter.
	QueueingExit float64
	// QueueingMinDelay is the least queueing delay (Latency −
	// NoLoadLatency) that counts as high. Default 1ms; allowed 1µs..10s.
	QueueingMinDelay time.Duration
	// NoLoadWindow bounds the age of the no-load latency estimate: one
	// measured from calls that ran alone stays valid this long while no
	// call runs alone, after which the lowest batch mean over this window
	// is used. Default 5m; allowed 8×Period..24h.
	NoLoadWindow time.Duration
	// CPU replaces the CPU reading (a custom measure, or an injected reading
	// in tests). Default: the process's CPU utilization of its allowance,
	// from cgroup v2 when the process runs under a CPU limit, else from its
	// own CPU time (see the package documentation).
	CPU Source
	// Memory replaces the memory reading. Default: cgroup v2 memory working
	// set over memory.max when a limit is set, else host memory in use.
	Memory Source
	// Sources are extra named signals (queue depth, pool usage) published in
	// Snapshot.Custom under their name. Names must be non-empty and sources
	// non-nil. Default none.
	Sources map[string]Source
	// MeterProvider receives the observable gauges of every signal. Default
	// otel.GetMeterProvider(), read when NewSampler is called.
	MeterProvider metric.MeterProvider
	// Logger logs failing and recovering sources. Default slog.Default().
	Logger *slog.Logger
}

// WithDefaults returns c with every zero field that has a scalar default
// set to it. CPU, Memory, MeterProvider and Logger are resolved by
// NewSampler.
func (c Config) WithDefaults() Config {
	if c.Period == 0 {
		c.Period = DefaultPeriod
	}
	if c.TimeConstant == 0 {
		c.TimeConstant = max(DefaultTimeConstant, c.Period)
	}
	if c.QueueingExit == 0 {
		if c.QueueingEnter == 0 || c.QueueingEnter == Off {
			c.QueueingExit = DefaultQueueingExit
		} else {
			c.QueueingExit = c.QueueingEnter * 2 / 3
		}
	}
	if c.QueueingEnter == 0 {
		c.QueueingEnter = DefaultQueueingEnter
	}
	if c.QueueingMinDelay == 0 {
		c.QueueingMinDelay = DefaultQueueingMinDelay
	}
	if c.NoLoadWindow == 0 {
		c.NoLoadWindow = max(DefaultNoLoadWindow, 8*c.Period)
	}
	return c
}

// Validate reports the first field outside its allowed range, after
// defaults are applied. The error names the field and the range.
func (c Config) Validate() error {
	c = c.WithDefaults()
	if c.Period < minPeriod || c.Period > maxPeriod {
		return fmt.Errorf("load: Period must be within %v..%v, got %v", minPeriod, maxPeriod, c.Period)
	}
	if c.TimeConstant < c.Period || c.TimeConstant > maxTimeConstant {
		return fmt.Errorf("load: TimeConstant must be within Period (%v)..%v, got %v", c.Period, maxTimeConstant, c.TimeConstant)
	}
	if c.QueueingEnter != Off && !(c.QueueingEnter >= 0.05 && c.QueueingEnter <= 0.99) {
		return fmt.Errorf("load: QueueingEnter must be within 0.05..0.99 or load.Off (0 means %v), got %v", DefaultQueueingEnter, c.QueueingEnter)
	}
	if hi := c.QueueingEnter; hi != Off && !(c.QueueingExit > 0 && c.QueueingExit < hi) {
		return fmt.Errorf("load: QueueingExit must be above 0 and below QueueingEnter (%v) (0 means two thirds of it), got %v", hi, c.QueueingExit)
	}
	if c.QueueingMinDelay < time.Microsecond || c.QueueingMinDelay > 10*time.Second {
		return fmt.Errorf("load: QueueingMinDelay must be within 1µs..10s (0 means %v), got %v", DefaultQueueingMinDelay, c.QueueingMinDelay)
	}
	if c.NoLoadWindow < 8*c.Period || c.NoLoadWindow > maxNoLoadWindow {
		return fmt.Errorf("load: NoLoadWindow must be within 8×Period (%v)..%v (0 means %v), got %v", 8*c.Period, maxNoLoadWindow, DefaultNoLoadWindow, c.NoLoadWindow)
	}
	for name, src := range c.Sources {
		if name == "" {
			return fmt.Errorf("load: Sources: name must not be empty")
		}
		if src == nil {
			return fmt.Errorf("load: Sources[%q] must not be nil", name)
		}
	}
	return nil
}
