package loadshed

import (
	"fmt"
	"log/slog"
	"math"
	"strings"
	"time"

	"go.opentelemetry.io/otel/metric"
	"google.golang.org/grpc/codes"

	"github.com/grpcmgmt/grpcmgmt/load"
)

// Off disables a limit given as a number (CPUThreshold, QueueingThreshold)
// or the pushback trailer (Pushback).
const Off = -1

// Defaults; the package documentation gives the reasoning.
const (
	DefaultCPUThreshold      = 0.9
	DefaultQueueingThreshold = 0.75
	DefaultPushback          = 10 * time.Millisecond
)

// Config configures a Shedder. The zero value means every default: the CPU
// and queueing limits at DefaultCPUThreshold and DefaultQueueingThreshold
// (only if Load is set), no static limit, no adaptive limit, UNAVAILABLE
// with a 10 ms pushback.
type Config struct {
	// MaxInFlight is the static limit: calls in flight at once, counted over
	// unary calls and streams. Default 0: no static limit. Allowed 0..1<<30.
	MaxInFlight int

	// CPUThreshold is the smoothed CPU utilization (load.Snapshot.CPU, of
	// this process's allowance) above which calls are shed with a
	// probability rising linearly to 100 % at full utilization. It needs
	// Load. Default DefaultCPUThreshold (0.9); Off disables it. Allowed
	// 0.05..1 or Off.
	CPUThreshold float64

	// QueueingThreshold is the share of the calls' latency spent queueing
	// (load.Snapshot.Queueing, 1 − no-load latency ÷ latency, smoothed)
	// above which calls are shed with a probability rising linearly to
	// 100 % when all of it is: the limit for a replica slow on a lock, a
	// small pool or a slow dependency, whose CPU stays low. Only while the
	// queueing delay is at least Load's QueueingMinDelay. It needs Load.
	// Default DefaultQueueingThreshold (0.75: calls take four times their
	// no-load latency, load.DefaultQueueingEnter); Off disables it. Allowed 0.05..0.99 or Off. The adaptive
	// limit, when on, keeps queueing well under it.
	QueueingThreshold float64

	// Adaptive turns on the adaptive concurrency limit when not nil; its
	// zero value means its defaults. Default nil (off).
	Adaptive *AdaptiveConfig

	// DefaultPriority is the priority of a call that has neither a valid
	// header nor a Methods entry. Default Critical (the zero value,
	// Sheddable, is not usable as "unset", so this field is a pointer).
	DefaultPriority *Priority
	// PriorityHeader is the request metadata key carrying a call's priority,
	// for servers that trust their clients to rank their own calls: set it
	// to DefaultPriorityHeader (or a key of your own) to read it. Default
	// empty: request metadata is ignored and priorities come from Methods
	// and DefaultPriority only, so a client cannot raise its own calls to
	// critical_plus, and no call pays for the header's lookup (a tap handle
	// and grpc-go's tap.Info a call). NoHeader means the same. Allowed: a
	// key a client can send as text (HTTP/2 field-name characters, compared
	// lower-cased; not a ":" pseudo-header, a reserved "grpc-" or HTTP/2
	// connection header, or a "-bin" key).
	PriorityHeader string
	// Methods gives priorities per full method ("/pkg.Service/Method") or
	// per service ("/pkg.Service/"). A valid header wins over this map.
	Methods map[string]Priority
	// Exempt lists further full methods or services ("/pkg.Service/") that
	// are never shed and not counted. grpc.health.v1.Health and
	// xds.service.orca.v3.OpenRcaService are always exempt.
	Exempt []string

	// Code is the status code of a shed call. Default codes.Unavailable,
	// which grpc-go, grpc-java and grpc-js clients retry when their retry
	// policy lists it; codes.ResourceExhausted is the other allowed value.
	Code codes.Code
	// Pushback is sent in the grpc-retry-pushback-ms trailer of a shed call
	// (gRFC A6): a client with a retry policy retries after exactly this
	// delay, through its picker, so usually on another backend. Default
	// DefaultPushback (10 ms); allowed 1ms..1m, or Off for no trailer. With Off
	// the tap handle rejects calls before their request is read (grpc-go
	// cannot attach a trailer there; see the package documentation).
	Pushback time.Duration

	// Load is the shared load sampler, needed by the CPU and queueing
	// limits. May be nil: then they are off.
	Load *load.Sampler
	// SharedCount makes the Shedder count the unary calls it admits in
	// Load's call counter (load.Sampler.Calls) instead of a counter of its
	// own: one add per call then counts it for the concurrency limits, the
	// sampler's in-flight and QPS figures, its queueing signal and ORCA's
	// utilization alike. Those calls must then not be counted there again,
	// and each must end with Ticket.Finish, whose outcome counts in the
	// sampler's error rate; a call to an exempt method is counted there as
	// untimed (load.Calls.Begin). Streams hold their slots in the Shedder's
	// own counter. The grpcmgmt Manager sets it for its one interceptor;
	// leave it off when anything else counts the calls in Load's counter
	// (orca.Reporter's interceptor does). Needs Load. Default false.
	SharedCount bool
	// Logger receives shed (debug, rate-limited) and state-change (info)
	// logs. Default slog.Default().
	Logger *slog.Logger
	// MeterProvider is where the Shedder's instruments are created. Default
	// otel.GetMeterProvider().
	MeterProvider metric.MeterProvider
}

// AdaptiveConfig configures the adaptive concurrency limit. The zero value
// means every default. See the package documentation for the algorithm.
type AdaptiveConfig struct {
	// InitialLimit is the limit before the first update. A replica
	// started under load grows it while its calls take no longer with
	// more of them in flight (see the package documentation). Default 20;
	// allowed MinLimit..MaxLimit.
	InitialLimit int
	// MinLimit is the lowest limit. Default 1: a service with one worker
	// has a knee of one call (the gate admits a second call only when it
	// will wait little; see the package documentation). Allowed
	// 1..MaxLimit.
	MinLimit int
	// MaxLimit is the highest limit. Default 1000; allowed MinLimit..1<<30.
	MaxLimit int
	// Window is how often the limit is recomputed, from the mean latency of
	// the unary calls that ended in it. Default 100ms; allowed 10ms..10s.
	Window time.Duration
	// MinSamples is how many calls a window needs before the limit is
	// recomputed (a quieter window is extended). Default 10; allowed 1..10000.
	MinSamples int
	// Tolerance is how much the mean latency of calls admitted within the
	// limit may exceed the no-load latency before the limit shrinks, and
	// the size of a step up (Tolerance × the limit, at least one call).
	// Default 0.1; allowed 0.01..2.
	Tolerance float64
	// ProbeInterval is how long the no-load latency may go without a new
	// measurement (±15 % jitter) before the limit is pinned to a quarter of
	// itself to take one. The measurement is the mean latency of
	// ProbeSamples calls that ran alone, taken whenever they come (a
	// replica that is ever idle never needs a pin); the first one, if no
	// call runs alone within a second of New, pins the limit to 1. Default
	// 30s; allowed 1s..1h.
	ProbeInterval time.Duration
	// ProbeSamples is how many calls a measurement of the no-load latency
	// takes. Default 20; allowed 1..10000.
	ProbeSamples int
}

func (c AdaptiveConfig) withDefaults() AdaptiveConfig {
	defInt := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defInt(&c.MinLimit, 1)
	defInt(&c.MaxLimit, 1000)
	defInt(&c.InitialLimit, min(max(20, c.MinLimit), c.MaxLimit))
	defInt(&c.MinSamples, 10)
	defInt(&c.ProbeSamples, 20)
	if c.Window == 0 {
		c.Window = 100 * time.Millisecond
	}
	if c.Tolerance == 0 {
		c.Tolerance = 0.1
	}
	if c.ProbeInterval == 0 {
		c.ProbeInterval = 30 * time.Second
	}
	return c
}

func (c AdaptiveConfig) validate() error {
	set := c // what the caller set: a relation error names a field set there
	c = c.withDefaults()
	// Each field's own range first, so that an error names the field that
	// is out of it, then the relations between the limits.
	ints := []struct {
		name   string
		v      int
		lo, hi int
	}{
		{"MinLimit", c.MinLimit, 1, 1 << 30},
		{"MaxLimit", c.MaxLimit, 1, 1 << 30},
		{"InitialLimit", c.InitialLimit, 1, 1 << 30},
		{"MinSamples", c.MinSamples, 1, 10000},
		{"ProbeSamples", c.ProbeSamples, 1, 10000},
	}
	for _, k := range ints {
		if k.v < k.lo || k.v > k.hi {
			return fmt.Errorf("loadshed: Adaptive.%s must be within %d..%d (0 means the default), got %d", k.name, k.lo, k.hi, k.v)
		}
	}
	if c.MinLimit > c.MaxLimit {
		if set.MinLimit != 0 {
			return fmt.Errorf("loadshed: Adaptive.MinLimit must be within 1..MaxLimit=%d (0 means the default), got %d", c.MaxLimit, c.MinLimit)
		}
		return fmt.Errorf("loadshed: Adaptive.MaxLimit must be within MinLimit=%d..%d (0 means the default), got %d", c.MinLimit, 1<<30, c.MaxLimit)
	}
	if c.InitialLimit < c.MinLimit || c.InitialLimit > c.MaxLimit {
		return fmt.Errorf("loadshed: Adaptive.InitialLimit must be within MinLimit=%d..MaxLimit=%d (0 means the default), got %d",
			c.MinLimit, c.MaxLimit, c.InitialLimit)
	}
	if c.Window < 10*time.Millisecond || c.Window > 10*time.Second {
		return fmt.Errorf("loadshed: Adaptive.Window must be within 10ms..10s (0 means the default), got %v", c.Window)
	}
	if c.ProbeInterval < time.Second || c.ProbeInterval > time.Hour {
		return fmt.Errorf("loadshed: Adaptive.ProbeInterval must be within 1s..1h (0 means the default), got %v", c.ProbeInterval)
	}
	if !(c.Tolerance >= 0.01 && c.Tolerance <= 2) {
		return fmt.Errorf("loadshed: Adaptive.Tolerance must be within 0.01..2 (0 means the default), got %v", c.Tolerance)
	}
	return nil
}

// ReadsHeader reports whether a Shedder made from c reads a call's priority
// from request metadata: whether PriorityHeader names a key (it is neither
// empty nor NoHeader). The grpcmgmt Manager installs the Shedder's tap
// handle only then.
func (c Config) ReadsHeader() bool { return c.PriorityHeader != "" && c.PriorityHeader != NoHeader }

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.CPUThreshold == 0 {
		c.CPUThreshold = DefaultCPUThreshold
	}
	if c.QueueingThreshold == 0 {
		c.QueueingThreshold = DefaultQueueingThreshold
	}
	if c.DefaultPriority == nil {
		p := Critical
		c.DefaultPriority = &p
	}
	if c.PriorityHeader != NoHeader {
		c.PriorityHeader = strings.ToLower(c.PriorityHeader) // grpc-go lower-cases keys
	}
	if c.Code == codes.OK {
		c.Code = codes.Unavailable
	}
	if c.Pushback == 0 {
		c.Pushback = DefaultPushback
	}
	if c.Adaptive != nil {
		a := c.Adaptive.withDefaults()
		c.Adaptive = &a
	}
	return c
}

// Validate reports the first field outside its allowed range, after
// defaults are applied. The error names the field and the range.
func (c Config) Validate() error {
	if c.MaxInFlight < 0 || c.MaxInFlight > 1<<30 {
		return fmt.Errorf("loadshed: MaxInFlight must be within 0..%d (0: no static limit), got %d", 1<<30, c.MaxInFlight)
	}
	if c.CPUThreshold != Off && c.CPUThreshold != 0 && !(c.CPUThreshold >= 0.05 && c.CPUThreshold <= 1) || math.IsNaN(c.CPUThreshold) {
		return fmt.Errorf("loadshed: CPUThreshold must be within 0.05..1 or loadshed.Off (0 means %v), got %v", DefaultCPUThreshold, c.CPUThreshold)
	}
	if c.QueueingThreshold != Off && c.QueueingThreshold != 0 && !(c.QueueingThreshold >= 0.05 && c.QueueingThreshold <= 0.99) || math.IsNaN(c.QueueingThreshold) {
		return fmt.Errorf("loadshed: QueueingThreshold must be within 0.05..0.99 or loadshed.Off (0 means %v), got %v", DefaultQueueingThreshold, c.QueueingThreshold)
	}
	if c.Adaptive != nil {
		if err := c.Adaptive.validate(); err != nil {
			return err
		}
	}
	if err := checkPriorityHeader(c.PriorityHeader); err != nil {
		return err
	}
	if c.DefaultPriority != nil && *c.DefaultPriority >= numPriorities {
		return fmt.Errorf("loadshed: DefaultPriority must be one of Sheddable..CriticalPlus, got %v", *c.DefaultPriority)
	}
	for m, p := range c.Methods {
		if !validMethodKey(m) {
			return fmt.Errorf("loadshed: Methods key %q must be a full method \"/pkg.Service/Method\" or a service \"/pkg.Service/\"", m)
		}
		if p >= numPriorities {
			return fmt.Errorf("loadshed: Methods[%q] must be one of Sheddable..CriticalPlus, got %v", m, p)
		}
	}
	for _, m := range c.Exempt {
		if !validMethodKey(m) {
			return fmt.Errorf("loadshed: Exempt entry %q must be a full method \"/pkg.Service/Method\" or a service \"/pkg.Service/\"", m)
		}
	}
	if c.Code != codes.OK && c.Code != codes.Unavailable && c.Code != codes.ResourceExhausted {
		return fmt.Errorf("loadshed: Code must be codes.Unavailable or codes.ResourceExhausted (0 means Unavailable), got %v", c.Code)
	}
	if c.SharedCount && c.Load == nil {
		return fmt.Errorf("loadshed: SharedCount needs Load (the sampler whose call counter it shares)")
	}
	if c.Pushback != 0 && c.Pushback != Off && (c.Pushback < time.Millisecond || c.Pushback > time.Minute) {
		return fmt.Errorf("loadshed: Pushback must be within 1ms..1m or loadshed.Off (0 means %v), got %v", DefaultPushback, c.Pushback)
	}
	return nil
}

// checkPriorityHeader reports an error unless h is empty (the default),
// NoHeader, or a metadata key a client can send and grpc-go passes to the
// server as text: an HTTP/2 field name (lower-cased here, as grpc-go does),
// not a pseudo-header (":authority"), not reserved for gRPC ("grpc-…",
// content-type, te, user-agent), not an HTTP/2 connection header and not a
// binary ("-bin") key.
func checkPriorityHeader(h string) error {
	if h == "" || h == NoHeader {
		return nil
	}
	k := strings.ToLower(h)
	ok := !strings.HasPrefix(k, "grpc-") && !strings.HasSuffix(k, "-bin")
	switch k {
	case "content-type", "te", "user-agent", "connection", "keep-alive", "proxy-connection",
		"transfer-encoding", "upgrade", "host":
		ok = false
	}
	for i := 0; ok && i < len(k); i++ {
		b := k[i]
		ok = b >= 'a' && b <= 'z' || b >= '0' && b <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", b) >= 0
	}
	if !ok {
		return fmt.Errorf("loadshed: PriorityHeader must be a metadata key (letters, digits and !#$%%&'*+-.^_`|~; "+
			"not a pseudo-header, a reserved grpc-* or HTTP/2 connection header, nor a -bin key), "+
			"or empty (no header, the default; loadshed.NoHeader %q means the same); got %q", NoHeader, h)
	}
	return nil
}

func validMethodKey(m string) bool {
	if len(m) < 3 || m[0] != '/' {
		return false
	}
	i := strings.IndexByte(m[1:], '/')
	return i > 0 && strings.IndexByte(m[i+2:], '/') < 0
}
