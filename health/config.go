package health

import (
	"fmt"
	"log/slog"
	"slices"
	"time"

	"go.opentelemetry.io/otel/metric"
	"google.golang.org/grpc/health"

	"github.com/grpcmgmt/grpcmgmt/load"
)

// Defaults; the package documentation says why each is what it is.
const (
	DefaultCPUEnter         = 0.90
	DefaultCPUExit          = 0.70
	DefaultHold             = 2 * time.Second
	DefaultMinDwell         = 500 * time.Millisecond
	DefaultMaxNotServing    = 5 * time.Second
	DefaultCooldown         = 30 * time.Second
	DefaultMaxCooldown      = 5 * time.Minute
	DefaultPropagationDelay = 10 * time.Second
	DefaultMaxShare         = 0.9
	DefaultMaxDwell         = time.Minute
	DefaultShedEnter        = 0.01
	DefaultShedExit         = 0.002
)

// Config configures a Reporter. The zero value means every default: the
// whole-server status (service "") follows CPU load, and a drain waits
// DefaultPropagationDelay.
type Config struct {
	// Server is the grpc-go health server the Reporter publishes to. Bring
	// your own to share it with code that already has one; nil means the
	// Reporter creates one (health.NewServer). Set statuses through
	// Reporter.SetStatus, not on Server directly: the Reporter recomputes
	// the statuses of the services it manages on every change and would
	// overwrite them. Statuses already set on a Server you bring are taken
	// as the application's own.
	Server *health.Server

	// Services are the service names whose status follows load. Default
	// [""], the whole server, which is what a client's healthCheckConfig
	// {"serviceName": ""} and grpc_health_probe without -service watch. List
	// named services ("pkg.Service") to have them follow load too.
	Services []string

	// DisableLoad turns load-following off: status is then the
	// application's status and the drain only.
	//
	// Besides CPU and in-flight calls (below), load-following counts the
	// server as overloaded while the shared sampler's queueing signal is
	// high (load.Snapshot.QueueingHigh: calls take load.Config.QueueingEnter
	// of their time waiting; its thresholds and hysteresis are the
	// sampler's, set with grpcmgmt.WithLoad, load.Off to turn it off).
	DisableLoad bool

	// CPUEnter is the smoothed CPU utilization (load.Snapshot.CPU, 0..1 of
	// this process's allowance) at or above which the server counts as
	// overloaded. Default 0.90; allowed above 0 up to 10.
	CPUEnter float64
	// CPUExit is the smoothed CPU utilization below which an overloaded
	// server counts as recovered. Default 0.70 (or 0.8×CPUEnter when that
	// is lower); allowed above 0 and below CPUEnter.
	CPUExit float64
	// DisableCPU ignores CPU; load-following then follows queueing and, if
	// InFlightEnter is set, in-flight calls.
	DisableCPU bool

	// InFlightEnter is the number of calls in flight at or above which the
	// server counts as overloaded. Default 0: in-flight is not watched (a
	// sensible value depends on the service). Allowed 0..1<<30.
	InFlightEnter int64
	// InFlightExit is the number of calls in flight below which the server
	// counts as recovered. Default 3/4 of InFlightEnter; allowed
	// 1..InFlightEnter-1 when InFlightEnter is set.
	InFlightExit int64

	// ShedEnter is the share of arriving calls refused for load
	// (load.Snapshot.ShedRatio, smoothed: a load shedder on the same
	// sampler, such as the Manager's) at or above which the server counts
	// as overloaded: a replica that keeps shedding while the guard lets it
	// turn clients away carries more than it can serve, and moving the
	// excess to its peers beats refusing it (each refusal costs the client
	// a retry). Without a shedder nothing is refused and this never
	// applies. The calls an adaptive limit sheds while it measures its
	// no-load latency (its probes, and before its first measurement) are
	// not refusals for load and do not count. Default 0.01 (1 %); allowed
	// above 0 up to 1.
	ShedEnter float64
	// ShedExit is the share of calls refused below which an overloaded
	// server counts as recovered. Default 0.002 (or ShedEnter/5 when that
	// is lower); allowed above 0 and below ShedEnter.
	ShedExit float64
	// DisableShed ignores calls refused for load.
	DisableShed bool

	// Hold is how long the server must stay overloaded, sample after sample,
	// before it turns NOT_SERVING. Shorter bursts are the load shedder's
	// business. Default 2s; allowed 1ms..10m.
	Hold time.Duration
	// MinDwell is the first dwell: the least time the server stays out of
	// rotation for load before it returns some of the clients it turned
	// away, and the time its load must then stay below the exit thresholds
	// before each such step (see MaxDwell). Default 500ms; allowed
	// 1ms..MaxNotServing.
	MinDwell time.Duration
	// MaxNotServing is the longest time the server stays NOT_SERVING for
	// load. Then it turns SERVING whatever its load (a "max-time release"),
	// and load shedding alone protects it. Default 5s; allowed 1ms..1h.
	MaxNotServing time.Duration
	// Cooldown is the least time the server stays SERVING after it was
	// NOT_SERVING for load, before load may turn it NOT_SERVING again. It
	// doubles, up to MaxCooldown, each time the overload comes back during
	// a cooldown or is not over at MaxNotServing, and returns to Cooldown
	// after a cooldown without overload. A random ±20 % is added so that
	// replicas overloaded together drift apart. Default 30s; allowed
	// 1ms..1h.
	Cooldown time.Duration
	// MaxCooldown caps the doubling of Cooldown. Default 5m (or Cooldown
	// when that is longer); allowed Cooldown..24h.
	MaxCooldown time.Duration

	// MaxShare is the largest share of the Watch streams of a service that
	// load turns NOT_SERVING. A replica out of rotation answers
	// NOT_SERVING on a share of its Watch streams sized to its excess
	// (Load.Excess), chosen by a hash of each stream's peer; the rest stay
	// SERVING, and their load is how the replica learns that it is fine
	// again. Below 1 a replica always keeps some health-checking clients
	// (with one Watch stream, that one is turned away all the same).
	// Default 0.9; allowed above 0 up to 1.
	MaxShare float64
	// MaxDwell caps the dwell: a replica out of rotation steps its share
	// down (returns half of the clients it turned away) once its load has
	// been below the exit thresholds for the dwell, and no sooner than twice
	// the sampler's TimeConstant after the last change.
	// The dwell starts at MinDwell and doubles, up to MaxDwell, each time a
	// step down is followed by another overload. Default 1m (or MinDwell
	// when that is longer); allowed MinDwell..24h.
	MaxDwell time.Duration

	// Signal reads the policy's Load from each sample. Default: the
	// smoothed CPU utilization against CPUEnter and CPUExit and the calls
	// in flight against InFlightEnter and InFlightExit, and the sampler's
	// queueing signal (load.Snapshot.QueueingHigh; see Load.Excess). It
	// runs on the sampler's goroutine and must return quickly.
	Signal func(s load.Snapshot) Load

	// queueingEnter and queueingExit are the sampler's queueing thresholds
	// (load.Sampler.QueueingThresholds), set by New; the default Signal
	// reads the queueing excess against them.
	queueingEnter, queueingExit float64

	// Peers is the replica set this server belongs to. When it is set, a
	// replica may be out of rotation for load only while enough of the set
	// is SERVING (the guard; see the package documentation), and stays out
	// for as long as it is overloaded. The zero value means no known set:
	// a stint out of rotation is bounded by MaxNotServing and Cooldown.
	Peers Peers

	// PropagationDelay is how long a drain (lame duck, BeginDrain) asks the
	// Manager to wait after every service turned NOT_SERVING and before the
	// servers stop, so that clients and probes stop sending new calls. It
	// applies once a client or probe has called the health service (Check,
	// Watch or List) on a server the Reporter registered it on; a server
	// nobody asked stops without waiting. Default 10s; allowed 1ms..10m.
	PropagationDelay time.Duration
	// DelayUnobserved makes a drain wait PropagationDelay even if nobody
	// has asked for health: for a Kubernetes Service without a readiness
	// probe, where the wait covers the endpoint change reaching kube-proxy,
	// or a health.Server you also serve on servers of your own.
	DelayUnobserved bool

	// Logger receives one INFO line per status change and drain step.
	// Default slog.Default(); the Manager passes its own.
	Logger *slog.Logger
	// MeterProvider is where the Reporter's metrics are created. Default
	// otel.GetMeterProvider(); the Manager passes its own.
	MeterProvider metric.MeterProvider
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if len(c.Services) == 0 {
		c.Services = []string{""}
	} else {
		c.Services = slices.Compact(slices.Sorted(slices.Values(c.Services)))
	}
	if c.CPUEnter == 0 {
		c.CPUEnter = DefaultCPUEnter
	}
	if c.CPUExit == 0 {
		c.CPUExit = min(DefaultCPUExit, 0.8*c.CPUEnter)
	}
	if c.ShedEnter == 0 {
		c.ShedEnter = DefaultShedEnter
	}
	if c.ShedExit == 0 {
		c.ShedExit = min(DefaultShedExit, c.ShedEnter/5)
	}
	if c.InFlightEnter > 0 && c.InFlightExit == 0 {
		c.InFlightExit = max(1, c.InFlightEnter*3/4)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.Hold, DefaultHold)
	// MaxNotServing keeps its default whatever MinDwell says (a MinDwell
	// above it is an error about MinDwell); MinDwell's default is capped at
	// a shorter MaxNotServing.
	def(&c.MaxNotServing, DefaultMaxNotServing)
	def(&c.MinDwell, min(DefaultMinDwell, c.MaxNotServing))
	def(&c.Cooldown, DefaultCooldown)
	def(&c.MaxCooldown, max(DefaultMaxCooldown, c.Cooldown))
	def(&c.PropagationDelay, DefaultPropagationDelay)
	def(&c.MaxDwell, max(DefaultMaxDwell, c.MinDwell))
	if c.MaxShare == 0 {
		c.MaxShare = DefaultMaxShare
	}
	c.Peers = c.Peers.WithDefaults()
	return c
}

// Validate reports the first field outside its allowed range, after
// defaults are applied. The error names the field and the range.
func (c Config) Validate() error {
	c = c.WithDefaults()
	if !(c.CPUEnter > 0 && c.CPUEnter <= 10) { // NaN fails too
		return fmt.Errorf("health: CPUEnter must be within (0, 10] (0 means the default %v), got %v", DefaultCPUEnter, c.CPUEnter)
	}
	if !(c.CPUExit > 0 && c.CPUExit < c.CPUEnter) {
		return fmt.Errorf("health: CPUExit must be within (0, CPUEnter=%v) (0 means the default), got %v", c.CPUEnter, c.CPUExit)
	}
	if !(c.ShedEnter > 0 && c.ShedEnter <= 1) {
		return fmt.Errorf("health: ShedEnter must be within (0, 1] (0 means the default %v), got %v", DefaultShedEnter, c.ShedEnter)
	}
	if !(c.ShedExit > 0 && c.ShedExit < c.ShedEnter) {
		return fmt.Errorf("health: ShedExit must be within (0, ShedEnter=%v) (0 means the default), got %v", c.ShedEnter, c.ShedExit)
	}
	if c.InFlightEnter < 0 || c.InFlightEnter > 1<<30 {
		return fmt.Errorf("health: InFlightEnter must be within 0..%d (0 means off), got %d", 1<<30, c.InFlightEnter)
	}
	if c.InFlightEnter == 0 && c.InFlightExit != 0 {
		return fmt.Errorf("health: InFlightExit must be within 0..0 while InFlightEnter is 0 (off), got %d", c.InFlightExit)
	}
	if c.InFlightEnter > 0 && (c.InFlightExit < 1 || c.InFlightExit >= c.InFlightEnter) {
		return fmt.Errorf("health: InFlightExit must be within 1..InFlightEnter-1=%d (0 means 3/4 of InFlightEnter), got %d", c.InFlightEnter-1, c.InFlightExit)
	}
	checks := []struct {
		name   string
		v      time.Duration
		lo, hi time.Duration
		loName string // the field lo comes from, if any
		hiName string // the field hi comes from, if any
	}{
		{"Hold", c.Hold, time.Millisecond, 10 * time.Minute, "", ""},
		{"MaxNotServing", c.MaxNotServing, time.Millisecond, time.Hour, "", ""},
		{"MinDwell", c.MinDwell, time.Millisecond, c.MaxNotServing, "", "MaxNotServing"},
		{"Cooldown", c.Cooldown, time.Millisecond, time.Hour, "", ""},
		{"MaxCooldown", c.MaxCooldown, c.Cooldown, 24 * time.Hour, "Cooldown", ""},
		{"PropagationDelay", c.PropagationDelay, time.Millisecond, 10 * time.Minute, "", ""},
		{"MaxDwell", c.MaxDwell, c.MinDwell, 24 * time.Hour, "MinDwell", ""},
	}
	name := func(n string, d time.Duration) string {
		if n == "" {
			return d.String()
		}
		return n + "=" + d.String()
	}
	for _, k := range checks {
		if k.v < k.lo || k.v > k.hi {
			return fmt.Errorf("health: %s must be within %s..%s (0 means the default), got %v",
				k.name, name(k.loName, k.lo), name(k.hiName, k.hi), k.v)
		}
	}
	if !(c.MaxShare > 0 && c.MaxShare <= 1) {
		return fmt.Errorf("health: MaxShare must be within (0, 1] (0 means the default %v), got %v", DefaultMaxShare, c.MaxShare)
	}
	return c.Peers.validate()
}
