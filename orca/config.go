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
	// DefaultPerCallInterval: each client connection gets a per-call
	// report about once a second (see Config.PerCallInterval).
	DefaultPerCallInterval = time.Second
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
// (load.Snapshot.Queueing, at a queueing delay of the sampler's
// QueueingMinDelay or more), whichever is higher (no limit known).
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
	// calls' latency spent queueing (load.Snapshot.Queueing, counted at a
	// queueing delay of the sampler's QueueingMinDelay or more), whichever
	// is higher.
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
	// endpoint-load-metrics-bin trailer). Default false: on each client
	// connection, the first unary call to end in each PerCallInterval, and
	// every stream, carry one.
	DisablePerCall bool
	// PerCallInterval is how often each client connection gets a per-call
	// report: the first unary call of a connection carries one, and then
	// its first unary call to end after each further PerCallInterval
	// (counted in whole sampler periods, at least one); streams always
	// carry one. A weighted_round_robin client weighs each connection (one
	// per replica) by the last report it got on it, and recomputes its
	// weights once a second (weightUpdatePeriod) and forgets them after 3
	// minutes without one (weightExpirationPeriod); every report carries the
	// same server-wide values, refreshed once per sampler period. So a
	// report per connection per second keeps every client's weights as
	// fresh as it uses them, whatever its share of the calls: a client
	// that sends few calls gets one on its first call of each second (it
	// would wait long for its turn in a count of the server's calls, and
	// @grpc/grpc-js sends almost no calls to a replica it has no weight
	// for), and one that sends thousands is not sent thousands (grpc-js
	// spends about 10 ms of its CPU parsing each; grpc-go's trailer
	// bookkeeping and the allocations it brings cost every reporting call
	// on the server). Default 1s; allowed 10ms..1m (below the sampler's
	// period: once per period).
	PerCallInterval time.Duration
	// HandlerMetrics installs grpc-go's per-call recorder
	// (orca.CallMetricsServerOption), so that handlers can add their own
	// per-call values through orca.CallMetricsRecorderFromContext (request
	// costs, named metrics, their own utilization); grpc-go merges them over
	// the Reporter's server-wide values. It costs each reporting call
	// grpc-go's recorder, a copy of the report and a marshal (measured: 9
	// allocations a reporting call). Default false: the per-call
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
	if c.PerCallInterval == 0 {
		c.PerCallInterval = DefaultPerCallInterval
	}
	return c
}

// Validate reports the first field outside its allowed range, after
// defaults are applied. The error names the field and the range.
func (c Config) Validate() error {
	c = c.WithDefaults()
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
		{"PerCallInterval", c.PerCallInterval, 10 * time.Millisecond, time.Minute},
	}
	for _, k := range checks {
		if k.v < k.min || k.v > k.max {
			return fmt.Errorf("orca: %s must be within %v..%v (0 means the default), got %v", k.name, k.min, k.max, k.v)
		}
	}
	return nil
}
