package health

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

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
	ReasonLoad    = "load"     // out of rotation for load, or back once recovered
	ReasonRelease = "max_time" // SERVING again after MaxNotServing (no replica set)
	ReasonFleet   = "fleet"    // SERVING again because the replica set needs this replica (the guard)
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
	cfg        Config
	hs         *health.Server
	log        *slog.Logger
	metrics    *metrics
	follows    map[string]bool // services that follow load
	cancel     func()          // unsubscribes from the sampler; nil if load is off
	guard      *guard          // nil without a replica set, or with load off
	instance   string          // random id, answered in InstanceHeader
	instanceMD metadata.MD
	now        func() time.Time

	asked atomic.Bool // a client or probe has called the health service
	// ownLatency is the mean call latency (ns) this replica gives its
	// peers in LatencyHeader; 0 while it serves too few calls to tell.
	ownLatency atomic.Int64

	mu        sync.Mutex // guards the fields below, and orders publishing
	app       map[string]Status
	served    map[string]Status     // last published
	streams   map[string]*streamSet // Watch streams of the services that follow load
	seq       uint64                // arrival order of Watch streams
	policy    *policy               // nil if load is off
	announced time.Time             // when the current want was published
	refusals  int                   // rounds that refused the current want
	recalls   int                   // consecutive rounds that found the set needs this replica back
	tally     tally                 // the guard's last round
	tallied   bool                  // tally is set
	peerLat   time.Duration         // median of the peers' latencies in the guard's last round; 0 if none
	peerLatAt time.Time             // when peerLat was seen
	latRatio  float64               // own latency ÷ peerLat at the last sample; 0 if not compared
	draining  bool
	closed    bool
}

// New validates cfg and returns a Reporter publishing to cfg.Server (or a
// new health.Server). If sampler is not nil and cfg.DisableLoad is false,
// the services in cfg.Services follow the sampler's load (see the package
// documentation for the rules); the Reporter subscribes with
// sampler.OnSample. With a replica set (cfg.Peers) it also starts watching
// the set; its Checks of the peers run on a timer, every CheckInterval
// while the latency comparison is on, otherwise only while it wants out of
// rotation or is out.
func New(sampler *load.Sampler, cfg Config) (*Reporter, error) {
	r, err := newReporter(cfg, sampler != nil)
	if err != nil {
		return nil, err
	}
	if r.policy != nil {
		// Before anything runs that reads r.cfg.
		r.cfg.queueingEnter, r.cfg.queueingExit = sampler.QueueingThresholds()
	}
	if r.guard != nil {
		if err := r.guard.start(); err != nil {
			_ = r.Close()
			return nil, err
		}
	}
	if r.policy != nil {
		r.policy.settle = 2 * sampler.TimeConstant()
		r.cancel = sampler.OnSample(r.onSample)
	}
	if r.guard != nil && r.cfg.Peers.latencyOn() {
		r.guard.schedule(r.guard.nextRound(r.now()))
	}
	return r, nil
}

// newReporter builds a Reporter that follows load if withLoad (and the
// Config does not turn it off), without subscribing to a sampler or
// starting the guard's watcher.
func newReporter(cfg Config, withLoad bool) (*Reporter, error) {
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
		cfg:      cfg,
		hs:       cfg.Server,
		log:      cfg.Logger.With("component", "health"),
		follows:  map[string]bool{},
		app:      map[string]Status{},
		served:   map[string]Status{},
		streams:  map[string]*streamSet{},
		instance: fmt.Sprintf("%016x", rand.Uint64()),
		now:      time.Now,
	}
	r.instanceMD = instanceMD(r.instance)
	if r.hs == nil {
		r.hs = health.NewServer()
	}
	loadOn := withLoad && !cfg.DisableLoad
	if loadOn {
		for _, s := range cfg.Services {
			r.follows[s] = true
			r.streams[s] = &streamSet{}
		}
		r.policy = newPolicy(cfg)
		r.policy.removed = r.removedLocked
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
	if loadOn && cfg.Peers.configured() {
		if r.guard, err = newGuard(r, cfg.Peers, r.log); err != nil {
			_ = m.close()
			return nil, err
		}
	}
	r.mu.Lock()
	for name := range r.app {
		r.publishLocked(name, ReasonApp, nil)
	}
	r.mu.Unlock()
	return r, nil
}

// Server returns the grpc-go health server the Reporter publishes to.
// Serving it yourself gives its own Watch, which sends every stream the
// binary status (no share of the streams, see Register).
func (r *Reporter) Server() *health.Server { return r.hs }

// Register registers the health service (grpc.health.v1.Health) on s: the
// health.Server's Check and List, and a Watch that, for the services that
// follow load, answers NOT_SERVING on only a share of the streams while
// this replica is out of rotation (see the package documentation). If s
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
	healthpb.RegisterHealthServer(s, service{r: r})
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

// Status returns the status the Reporter publishes for service (what a
// Check answers), and false if the Reporter does not know the service.
func (r *Reporter) Status(service string) (Status, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st, ok := r.served[service]
	return st, ok
}

// RemovedShare returns the share of the Watch streams of the services that
// follow load that this replica answers NOT_SERVING for load: 0 in
// rotation, up to Config.MaxShare out of it.
func (r *Reporter) RemovedShare() float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.policy == nil {
		return 0
	}
	return r.policy.share
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
	for _, ss := range r.streams {
		ss.wakeAll()
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

// Close stops following load and watching the replica set, and
// unregisters the metrics. It does not change the published statuses
// (BeginDrain does). It is idempotent.
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
	if r.guard != nil {
		r.guard.close()
	}
	return r.metrics.close()
}

// minLatencyQPS is the fewest calls a second (load.Snapshot.QPS) over which
// a replica's mean latency is compared with its peers' (and given to them).
const minLatencyQPS = 2

// onSample runs on the sampler goroutine after every sample.
func (r *Reporter) onSample(s load.Snapshot) {
	if r.guard != nil {
		lat := int64(0)
		if s.QPS >= minLatencyQPS {
			lat = int64(s.Latency)
		}
		r.ownLatency.Store(lat)
	}
	r.step(s.At, r.cfg.signal(&s), &s)
}

// slowerLocked adds to l the comparison of this replica's latency (in s)
// with the median of its peers' (Peers.LatencyEnter), when both are known
// and the peers' is recent (three CheckIntervals), and records the ratio.
func (r *Reporter) slowerLocked(now time.Time, l Load, s *load.Snapshot) Load {
	r.latRatio = 0
	p := r.cfg.Peers
	if r.guard == nil || !p.latencyOn() || r.peerLat <= 0 || now.Sub(r.peerLatAt) > 3*p.CheckInterval ||
		s.QPS < minLatencyQPS || s.Latency <= 0 {
		return l
	}
	r.latRatio = float64(s.Latency) / float64(r.peerLat)
	if s.Latency-r.peerLat < latencyMinGap {
		return l // a difference no client would notice, whatever the ratio
	}
	if r.latRatio >= p.LatencyEnter {
		l.Over = true
	}
	if r.latRatio >= p.LatencyExit {
		l.Clear = false
	}
	return l
}

// latencyMinGap is the least difference between this replica's latency and
// its peers' that the comparison acts on: calls of a few microseconds
// differ by large ratios that no client notices.
const latencyMinGap = time.Millisecond

// step feeds the load l of sample s, taken at now, to the policy, and
// publishes, counts and logs what it decided.
func (r *Reporter) step(now time.Time, l Load, s *load.Snapshot) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || r.draining {
		return
	}
	p := r.policy
	from := p.share
	l = r.slowerLocked(now, l, s)
	ev := p.step(now, l)
	attrs := func(extra ...any) []any {
		a := []any{"cpu", s.CPU, "in_flight", s.InFlight, "qps", s.QPS, "queueing", s.Queueing, "queueing_high", s.QueueingHigh,
			"latency", s.Latency, "no_load_latency", s.NoLoadLatency, "excess", l.Excess}
		if r.latRatio > 0 {
			a = append(a, "peer_latency", r.peerLat, "latency_ratio", r.latRatio)
		}
		return append(a, extra...)
	}
	switch ev {
	case eventOverloaded, eventRecovered, eventReleased:
		reason, msg := ReasonLoad, "health: overloaded: out of rotation (services that follow load turn NOT_SERVING to Check and to a share of the Watch streams)"
		switch ev {
		case eventRecovered:
			msg = "health: recovered: back in rotation (services that follow load turn SERVING)"
		case eventReleased:
			reason, msg = ReasonRelease, "health: out of rotation for MaxNotServing: back in rotation, shedding protects"
		}
		if p.st == stateOut {
			r.log.Info(msg, attrs("share", p.share, "cpu_enter", r.cfg.CPUEnter, "in_flight_enter", r.cfg.InFlightEnter,
				"hold", r.cfg.Hold, "max_not_serving", r.cfg.MaxNotServing)...)
		} else {
			r.log.Info(msg, attrs("cpu_exit", r.cfg.CPUExit, "in_flight_exit", r.cfg.InFlightExit,
				"no_load_flip_until", p.coolUntil, "dwell", p.dwell)...)
		}
		r.metrics.decision(reason, p.st != stateOut)
		r.changedLocked(reason, s)
	case eventShareUp, eventShareDown:
		reason := reasonShareUp
		if ev == eventShareDown {
			reason = reasonShareDown
		}
		r.metrics.decision(reason, ev == eventShareDown)
		r.log.Info("health: share of Watch streams turned away changed", attrs("from", from, "to", p.share, "dwell", p.dwell)...)
		r.applySharesLocked()
	case eventWant:
		r.announced = r.now()
		r.refusals = 0
		r.metrics.decision(reasonWant, false)
		r.log.Info("health: overloaded: asking the replica set for a slot out of rotation", attrs("hold", r.cfg.Hold, "delay", r.cfg.Peers.Delay)...)
		r.guard.warm()
		r.guard.schedule(r.guard.firstRound(r.announced))
	case eventWithdrawn:
		r.metrics.decision(reasonWithdrawn, true)
		r.log.Info("health: load below the exit thresholds: no longer asking for a slot", attrs("refused_rounds", r.refusals)...)
	case eventSuppressed:
		r.metrics.decision(reasonSuppressed, true)
		r.log.Info("health: overloaded during cooldown; staying SERVING (shedding protects)",
			attrs("no_load_flip_until", p.coolUntil)...)
	}
}

// changedLocked publishes the services that follow load after the policy
// went in or out of rotation, and sets their shares.
func (r *Reporter) changedLocked(reason string, s *load.Snapshot) {
	for _, name := range r.cfg.Services {
		r.publishLocked(name, reason, s)
	}
	r.applySharesLocked()
}

// applySharesLocked turns the policy's share of every service's Watch
// streams NOT_SERVING (and the rest SERVING).
func (r *Reporter) applySharesLocked() {
	for _, ss := range r.streams {
		ss.apply(target(r.policy.share, r.cfg.MaxShare, len(ss.list)))
	}
}

// removedLocked is the share of the health-checking clients a share turns
// away in fact: of the service with the most Watch streams (the share
// itself while there are none).
func (r *Reporter) removedLocked(share float64) float64 {
	n := 0
	for _, ss := range r.streams {
		n = max(n, len(ss.list))
	}
	if n == 0 {
		return share
	}
	return float64(target(share, r.cfg.MaxShare, n)) / float64(n)
}

// guardState returns what a round of the guard needs: the policy's epoch
// and state, when the current want was announced, and false if the
// Reporter is closed or draining.
func (r *Reporter) guardState() (uint64, state, time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || r.draining || r.policy == nil {
		return 0, stateIn, time.Time{}, false
	}
	return r.policy.epoch, r.policy.st, r.announced, true
}

// decide applies the guard's rules to a round that started at start and
// saw v, for the policy's epoch, and schedules the next round.
func (r *Reporter) decide(v view, start time.Time, epoch uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || r.draining {
		return
	}
	p, g := r.policy, r.guard
	now := r.now()
	t := v.count(g.cfg)
	if !v.partial {
		r.tally, r.tallied = t, true
	}
	if lat, ok := v.peerLatency(); ok {
		r.peerLat, r.peerLatAt = lat, now
	}
	switch {
	case p.epoch != epoch:
		// The state changed during the round: decide on a new one.
	case now.Sub(start) >= g.cfg.Delay/2:
		// Too slow (a stalled process): two replicas deciding at once
		// might not have seen each other's announcement (doc.go). Try
		// again.
		r.log.Debug("health: guard: round took longer than Delay/2; discarded", "took", now.Sub(start), "delay", g.cfg.Delay)
	case p.st == stateWant && v.self == "":
		r.metrics.guard(guardNotInSet)
		if r.refusals++; r.refusals == 1 {
			r.log.Warn("health: guard: this replica is not among the members of its replica set (or did not answer itself): it cannot take a slot out of rotation; staying SERVING",
				append(t.attrs(), "name", g.cfg.Name, "members_seen", v.members)...)
		}
	case p.st == stateWant && t.mayGoOut():
		p.grant(now)
		r.recalls = 0
		r.metrics.guard(guardGranted)
		r.metrics.decision(ReasonLoad, false)
		r.log.Info("health: overloaded, and the replica set can spare this replica: out of rotation (NOT_SERVING to Check and to a share of the Watch streams)",
			append(t.attrs(), "share", p.share, "refused_rounds", r.refusals)...)
		r.changedLocked(ReasonLoad, nil)
	case p.st == stateWant:
		r.metrics.guard(guardFleetNeeded)
		level := slog.LevelDebug
		if r.refusals++; r.refusals == 1 {
			level = slog.LevelInfo
		}
		r.log.Log(context.Background(), level, "health: wanted out of rotation, but the replica set needs this replica: staying SERVING",
			append(t.attrs(), "refused_rounds", r.refusals)...)
	case p.st == stateOut && !t.mustReturn() && v.self != "":
		r.recalls = 0
	case p.st == stateOut && r.recalls == 0:
		// The set needs this replica back, or it is no longer in the set:
		// decided on the next round if that one agrees, so that one slow
		// answer (counted as out) does not bring it back.
		r.recalls++
		r.log.Debug("health: guard: the replica set may need this replica back; checking again", t.attrs()...)
	case p.st == stateOut:
		r.recalls = 0
		p.recall()
		r.metrics.guard(guardRecalled)
		r.metrics.decision(ReasonFleet, true)
		r.log.Info("health: the replica set needs this replica back: in rotation again although overloaded (shedding protects)",
			append(t.attrs(), "in_set", v.self != "")...)
		r.changedLocked(ReasonFleet, nil)
	}
	switch p.st {
	case stateIn:
		if g.cfg.latencyOn() {
			g.schedule(g.nextRound(now))
		}
	case stateOut:
		if r.recalls > 0 {
			g.schedule(now.Add(g.cfg.Delay)) // the confirming round
			return
		}
		g.schedule(g.nextRound(now))
	case stateWant:
		if now.Before(r.announced.Add(g.cfg.Delay)) {
			g.schedule(g.firstRound(r.announced))
		} else {
			g.schedule(g.nextRound(now))
		}
	}
}

// guardStatus is this replica's GuardService status.
func (r *Reporter) guardStatus() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	if app, ok := r.app[""]; r.draining || ok && app != Serving {
		return NotServing
	}
	if r.policy == nil {
		return Serving
	}
	switch r.policy.st {
	case stateOut:
		return NotServing
	case stateWant:
		return healthpb.HealthCheckResponse_UNKNOWN
	}
	return Serving
}

// addStream registers a Watch stream of service from the peer at addr.
func (r *Reporter) addStream(service, addr string) *watchStream {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seq++
	ws := &watchStream{key: peerKey(addr), seq: r.seq, notify: make(chan struct{}, 1)}
	ss := r.streams[service]
	ss.add(ws)
	ss.apply(target(r.policy.share, r.cfg.MaxShare, len(ss.list)))
	return ws
}

// removeStream unregisters a Watch stream; a removed one is replaced.
func (r *Reporter) removeStream(service string, ws *watchStream) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ss := r.streams[service]
	ss.remove(ws)
	ss.apply(target(r.policy.share, r.cfg.MaxShare, len(ss.list)))
}

// streamStatus is the status Watch stream ws of service should see now.
func (r *Reporter) streamStatus(service string, ws *watchStream) Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.draining {
		return NotServing
	}
	if app, ok := r.app[service]; ok && app != Serving {
		return app
	}
	if ws.removed {
		return NotServing
	}
	return Serving
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
	if r.follows[service] && r.policy != nil && r.policy.st == stateOut {
		return NotServing
	}
	return Serving
}

// publishLocked publishes service's status if it changed, counting and
// logging the flip with its reason, and wakes the service's Watch streams.
func (r *Reporter) publishLocked(service, reason string, s *load.Snapshot) {
	if r.draining {
		return
	}
	if ss := r.streams[service]; ss != nil {
		ss.wakeAll()
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

// observe is what the gauges read.
func (r *Reporter) observe() observation {
	r.mu.Lock()
	defer r.mu.Unlock()
	ob := observation{statuses: maps.Clone(r.served), streams: map[string][2]int64{}, tally: r.tally, tallied: r.tallied, latRatio: r.latRatio}
	if r.policy != nil {
		ob.share = r.policy.share
	}
	for name, ss := range r.streams {
		out := int64(ss.removedCount())
		ob.streams[name] = [2]int64{int64(len(ss.list)) - out, out}
	}
	return ob
}
