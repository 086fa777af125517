package health

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/grpcmgmt/grpcmgmt/load"
)

// Status is a grpc.health.v1 serving status.
type Status = healthpb.HealthCheckResponse_ServingStatus

// The statuses a Reporter publishes.
const (
	Serving    = healthpb.HealthCheckResponse_SERVING
	NotServing = healthpb.HealthCheckResponse_NOT_SERVING
)

// Reasons a status changed, as logged and as the "reason" attribute of the
// grpcmgmt.health.flips metric.
const (
	ReasonLoad    = "load"     // overloaded for Hold, or recovered below the exit thresholds
	ReasonRelease = "max_time" // SERVING again after MaxNotServing
	ReasonDrain   = "drain"    // lame duck: BeginDrain
	ReasonApp     = "app"      // the application's own SetStatus
)

// Reporter publishes this server's health through a grpc-go health.Server:
// for every service, the served status is the application's own status,
// AND not overloaded (for the services in Config.Services), AND not
// draining. Create it with New, register it with Register, and Close it.
// Its methods are safe for concurrent use.
type Reporter struct {
	// Immutable after New:
	cfg     Config
	hs      *health.Server
	log     *slog.Logger
	metrics *metrics
	follows map[string]bool // services that follow load
	cancel  func()          // unsubscribes from the sampler; nil if load is off

	asked atomic.Bool // a client or probe has called the health service

	mu       sync.Mutex // guards the fields below, and orders publishing
	app      map[string]Status
	served   map[string]Status // last published
	policy   *policy           // nil if load is off
	draining bool
	closed   bool
}

// New validates cfg and returns a Reporter publishing to cfg.Server (or a
// new health.Server). If sampler is not nil and cfg.DisableLoad is false,
// the services in cfg.Services follow the sampler's load (see the package
// documentation for the rules); the Reporter subscribes with
// sampler.OnSample and starts no goroutine of its own.
func New(sampler *load.Sampler, cfg Config) (*Reporter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MeterProvider == nil {
		cfg.MeterProvider = otel.GetMeterProvider()
	}
	r := &Reporter{
		cfg:     cfg,
		hs:      cfg.Server,
		log:     cfg.Logger.With("component", "health"),
		follows: map[string]bool{},
		app:     map[string]Status{},
		served:  map[string]Status{},
	}
	if r.hs == nil {
		r.hs = health.NewServer()
	}
	loadOn := sampler != nil && !cfg.DisableLoad
	if loadOn {
		for _, s := range cfg.Services {
			r.follows[s] = true
		}
		r.policy = newPolicy(cfg)
	}
	// The statuses of cfg.Services already on a server the user brought are
	// the application's; otherwise they start SERVING. Other services on
	// that server are left alone until SetStatus names them.
	for _, name := range cfg.Services {
		r.app[name] = Serving
		if resp, err := r.hs.Check(context.Background(), &healthpb.HealthCheckRequest{Service: name}); err == nil {
			r.app[name] = resp.GetStatus()
		}
	}
	m, err := newMetrics(cfg.MeterProvider, r.observe)
	if err != nil {
		return nil, err
	}
	r.metrics = m
	r.mu.Lock()
	for name := range r.app {
		r.publishLocked(name, ReasonApp, nil)
	}
	r.mu.Unlock()
	if loadOn {
		r.cancel = sampler.OnSample(r.onSample)
	}
	return r, nil
}

// Server returns the grpc-go health server the Reporter publishes to.
func (r *Reporter) Server() *health.Server { return r.hs }

// Register registers the health service (grpc.health.v1.Health) on s. If s
// already serves grpc.health.v1.Health, Register returns
// ErrAlreadyRegistered instead of letting grpc-go fail fatally: pass your
// health.Server in Config.Server instead of registering it yourself.
func (r *Reporter) Register(s grpc.ServiceRegistrar) error {
	if s == nil {
		return ErrNilRegistrar
	}
	if si, ok := s.(interface {
		GetServiceInfo() map[string]grpc.ServiceInfo
	}); ok {
		if _, dup := si.GetServiceInfo()[healthpb.Health_ServiceDesc.ServiceName]; dup {
			return ErrAlreadyRegistered
		}
	}
	healthpb.RegisterHealthServer(s, observed{r.hs, &r.asked})
	return nil
}

// SetStatus sets the application's own status of service. The published
// status is st unless st is SERVING and load or a drain say otherwise: the
// load logic never turns an application's NOT_SERVING into SERVING. After
// BeginDrain every service stays NOT_SERVING.
func (r *Reporter) SetStatus(service string, st Status) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	r.app[service] = st
	r.publishLocked(service, ReasonApp, nil)
}

// Status returns the status the Reporter publishes for service, and false
// if the Reporter does not know the service.
func (r *Reporter) Status(service string) (Status, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st, ok := r.served[service]
	return st, ok
}

// BeginDrain starts the lame duck: every service the health server knows
// turns NOT_SERVING (health.Server.Shutdown) and stays so. It returns how
// long clients and probes need to stop sending new calls:
// Config.PropagationDelay if a client or probe has called the health
// service registered by Register since the Reporter started (or if
// Config.DelayUnobserved is set), else 0, since nobody would notice. It is
// idempotent; later calls return 0.
func (r *Reporter) BeginDrain() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.draining {
		return 0
	}
	r.draining = true
	r.hs.Shutdown()
	for name, st := range r.served {
		if st != NotServing {
			r.metrics.flip(name, ReasonDrain, NotServing)
		}
		r.served[name] = NotServing
	}
	if !r.asked.Load() && !r.cfg.DelayUnobserved {
		r.log.Info("health: lame duck: every service NOT_SERVING; no client or probe has asked for health, so no propagation delay",
			"services", len(r.served))
		return 0
	}
	r.log.Info("health: lame duck: every service NOT_SERVING; waiting for clients and probes to notice",
		"services", len(r.served), "propagation_delay", r.cfg.PropagationDelay)
	return r.cfg.PropagationDelay
}

// Close stops following load and unregisters the metrics. It does not
// change the published statuses (BeginDrain does). It is idempotent.
func (r *Reporter) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	if r.cancel != nil {
		r.cancel()
	}
	return r.metrics.close()
}

// onSample runs on the sampler goroutine after every sample.
func (r *Reporter) onSample(s load.Snapshot) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || r.draining {
		return
	}
	switch ev := r.policy.step(s.At, s); ev {
	case eventOverloaded, eventRecovered, eventReleased:
		reason, msg := ReasonLoad, "health: overloaded: services that follow load turn NOT_SERVING"
		switch ev {
		case eventRecovered:
			msg = "health: recovered: services that follow load turn SERVING"
		case eventReleased:
			reason, msg = ReasonRelease, "health: NOT_SERVING for MaxNotServing: turning SERVING, shedding protects"
		}
		attrs := []any{"reason", reason, "cpu", s.CPU, "in_flight", s.InFlight, "qps", s.QPS,
			"queueing", s.Queueing, "queueing_high", s.QueueingHigh, "latency", s.Latency, "no_load_latency", s.NoLoadLatency}
		if r.policy.down {
			attrs = append(attrs, "cpu_enter", r.cfg.CPUEnter, "in_flight_enter", r.cfg.InFlightEnter,
				"hold", r.cfg.Hold, "max_not_serving", r.cfg.MaxNotServing)
		} else {
			attrs = append(attrs, "cpu_exit", r.cfg.CPUExit, "in_flight_exit", r.cfg.InFlightExit,
				"no_load_flip_until", r.policy.coolUntil)
		}
		r.log.Info(msg, attrs...)
		r.metrics.decision(reason, !r.policy.down)
		for _, name := range r.cfg.Services {
			r.publishLocked(name, reason, &s)
		}
	case eventSuppressed:
		r.metrics.decision(reasonSuppressed, true)
		r.log.Info("health: overloaded during cooldown; staying SERVING (shedding protects)",
			"cpu", s.CPU, "in_flight", s.InFlight, "qps", s.QPS, "queueing_high", s.QueueingHigh,
			"no_load_flip_until", r.policy.coolUntil)
	}
}

// want is the status service should have now.
func (r *Reporter) wantLocked(service string) Status {
	if r.draining {
		return NotServing
	}
	app, ok := r.app[service]
	if !ok {
		app = Serving
	}
	if app != Serving {
		return app
	}
	if r.follows[service] && r.policy != nil && r.policy.down {
		return NotServing
	}
	return Serving
}

// publishLocked publishes service's status if it changed, counting and
// logging the flip with its reason.
func (r *Reporter) publishLocked(service, reason string, s *load.Snapshot) {
	if r.draining {
		return
	}
	want := r.wantLocked(service)
	old, had := r.served[service]
	if had && old == want {
		return
	}
	r.served[service] = want
	r.hs.SetServingStatus(service, want)
	if !had {
		return // the initial status is not a flip
	}
	r.metrics.flip(service, reason, want)
	attrs := []any{"service", service, "status", want.String(), "from", old.String(), "reason", reason}
	if s != nil {
		attrs = append(attrs, "cpu", s.CPU, "in_flight", s.InFlight, "qps", s.QPS, "queueing", s.Queueing)
	}
	r.log.Info("health: status changed", attrs...)
}

// observe reports the published statuses to the gauge.
func (r *Reporter) observe(fn func(service string, st Status)) {
	r.mu.Lock()
	served := maps.Clone(r.served)
	r.mu.Unlock()
	for _, k := range slices.Sorted(maps.Keys(served)) {
		fn(k, served[k])
	}
}

// observed is the health service as Register registers it: grpc-go's,
// noting that someone asked.
type observed struct {
	*health.Server
	asked *atomic.Bool
}

func (o observed) Check(ctx context.Context, in *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	o.asked.Store(true)
	return o.Server.Check(ctx, in)
}

func (o observed) List(ctx context.Context, in *healthpb.HealthListRequest) (*healthpb.HealthListResponse, error) {
	o.asked.Store(true)
	return o.Server.List(ctx, in)
}

func (o observed) Watch(in *healthpb.HealthCheckRequest, stream healthpb.Health_WatchServer) error {
	o.asked.Store(true)
	return o.Server.Watch(in, stream)
}
