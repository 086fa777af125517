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

	minPeriod       = 10 * time.Millisecond
	maxPeriod       = 10 * time.Second
	maxTimeConstant = time.Minute
)

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
