package orca

import (
	"fmt"
	"time"
)

// Defaults; see the package documentation for the reasoning.
const (
	// DefaultMinReportingInterval is grpc-go's own minimum for out-of-band
	// reports (orca.ServiceOptions): a client asking for reports more often
	// gets one every 30 s.
	DefaultMinReportingInterval = 30 * time.Second
	// DefaultTimeConstant matches load.Config's default smoothing, so that
	// the reported utilization moves as fast as the other signals.
	DefaultTimeConstant = time.Second
	// DefaultPerCallEvery: one unary call in 8 carries a per-call report
	// (see Config.PerCallEvery).
	DefaultPerCallEvery = 8
)

// MaxCapacity is the largest Capacity (and the largest number of unary calls
// in flight that the utilization measurement counts exactly).
const MaxCapacity = 1 << 20

// Limit reports the server's current concurrency limit: how many calls it
// can serve at once. A load shedder's limit (loadshed.Shedder.Limit,
// through LimitFunc) makes application_utilization follow the limit the
// shedder enforces; the grpcmgmt Manager wires this itself when shedding is
// on. A
// value of 0 or less means "no limit known now". Limit is called once per
// sample on the sampler's goroutine, concurrently with the calls the limit
// governs: it must be safe for concurrent use and must not block.
type Limit interface {
	Limit() int
}

// LimitFunc adapts a function to Limit.
type LimitFunc func() int

// Limit calls f.
func (f LimitFunc) Limit() int { return f() }

// Config configures the ORCA reports. The zero value means every default:
// per-call and out-of-band reports on, application_utilization equal to the
// CPU utilization or the shared sampler's queueing share
// (load.Snapshot.Queueing), whichever is higher (no limit known).
type Config struct {
	// Limit, when set and positive, is the concurrency limit that
	// application_utilization divides the calls in flight by. It is read
	// once per sample. It takes precedence over Capacity.
	Limit Limit
	// Capacity is a fixed concurrency limit: the number of calls this
	// server serves at once at full load (worker threads, database
	// connections). Used when Limit is unset or reports 0. Default 0 (none);
	// allowed 0..MaxCapacity. With neither Limit nor Capacity,
	// application_utilization is the CPU utilization or the share of the
	// calls' latency spent queueing (load.Snapshot.Queueing), whichever is
	// higher.
	Capacity int
	// MinReportingInterval is the shortest interval between out-of-band
	// reports on one stream; a client asking for a shorter one gets this.
	// Default 30s (grpc-go's); allowed 10ms..1h.
	MinReportingInterval time.Duration
	// TimeConstant smooths the measured calls in flight and calls per second
	// (exponential moving average, like the load sampler's). Default 1s;
	// allowed 10ms..1m.
	TimeConstant time.Duration
	// DisablePerCall turns off the per-call reports (the
	// endpoint-load-metrics-bin trailer). Default false: one unary call in
	// PerCallEvery, the first unary call after a sample once a second, and
	// every stream carry one.
	DisablePerCall bool
	// PerCallEvery sends the per-call report on one unary call in
	// PerCallEvery, and once a second on the first unary call to end after
	// a sample whatever its number (so that a replica that gets few calls
	// still reports; see Reporter.AddCallReport); streams always carry one.
	// Every report carries the same server-wide values, refreshed once per
	// sampler period, so at high rates most of them repeat the last one;
	// sampling them cuts the cost grpc-go's recorder and trailer add to
	// each call (measured with bench/overhead -orca-per-call-every). weighted_round_robin clients
	// keep their weights as long as a report arrives within
	// weightExpirationPeriod (3 min by default). Default 8 (at 100 calls/s a
	// client still gets a report every 80 ms, more often than the sampler
	// refreshes it); 1 reports on every call; allowed 1..1000.
	PerCallEvery int
	// HandlerMetrics installs grpc-go's per-call recorder
	// (orca.CallMetricsServerOption), so that handlers can add their own
	// per-call values through orca.CallMetricsRecorderFromContext (request
	// costs, named metrics, their own utilization); grpc-go merges them over
	// the Reporter's server-wide values. It costs each reporting call
	// grpc-go's recorder, a copy of the report and a marshal (measured: 9
	// allocations a call with PerCallEvery 1). Default false: the per-call
	// report is a trailer marshalled once per sampler period, and
	// orca.CallMetricsRecorderFromContext returns nil in handlers.
	HandlerMetrics bool
	// DisableOutOfBand turns off the out-of-band service
	// (xds.service.orca.v3.OpenRcaService). Default false: Register registers
	// it.
	DisableOutOfBand bool
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.MinReportingInterval == 0 {
		c.MinReportingInterval = DefaultMinReportingInterval
	}
	if c.TimeConstant == 0 {
		c.TimeConstant = DefaultTimeConstant
	}
	if c.PerCallEvery == 0 {
		c.PerCallEvery = DefaultPerCallEvery
	}
	return c
}

// Validate reports the first field outside its allowed range, after
// defaults are applied. The error names the field and the range.
func (c Config) Validate() error {
	c = c.WithDefaults()
	if c.PerCallEvery < 1 || c.PerCallEvery > 1000 {
		return fmt.Errorf("orca: PerCallEvery must be within 1..1000 (0 means %d), got %d", DefaultPerCallEvery, c.PerCallEvery)
	}
	if c.Capacity < 0 || c.Capacity > MaxCapacity {
		return fmt.Errorf("orca: Capacity must be within 0..%d (0 means none), got %d", MaxCapacity, c.Capacity)
	}
	checks := []struct {
		name     string
		v        time.Duration
		min, max time.Duration
	}{
		{"MinReportingInterval", c.MinReportingInterval, 10 * time.Millisecond, time.Hour},
		{"TimeConstant", c.TimeConstant, 10 * time.Millisecond, time.Minute},
	}
	for _, k := range checks {
		if k.v < k.min || k.v > k.max {
			return fmt.Errorf("orca: %s must be within %v..%v (0 means the default), got %v", k.name, k.min, k.max, k.v)
		}
	}
	return nil
}
