package grpcmgmt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/tap"

	"github.com/grpcmgmt/grpcmgmt/goaway"
	"github.com/grpcmgmt/grpcmgmt/health"
	"github.com/grpcmgmt/grpcmgmt/load"
	"github.com/grpcmgmt/grpcmgmt/loadshed"
	"github.com/grpcmgmt/grpcmgmt/orca"
)

// Manager owns the state every lever shares (the load sampler, the logger,
// the meter) and the levers themselves. Create it with New, add
// m.ServerOptions() to grpc.NewServer, call m.Register on the server, and
// call m.Shutdown when the process stops.
//
// The levers are wired explicitly, in one place each: New builds them in a
// fixed order (buildLevers), ServerOptions installs them in the order of
// the call path, Register registers their services and Shutdown drains and
// closes them. A nil lever field means the lever is off.
type Manager struct {
	// Immutable after New:
	log     *slog.Logger
	sampler *load.Sampler
	calls   *load.Calls // the sampler's call counter; the interceptors count every call there
	creds   credentials.TransportCredentials
	tap     tap.ServerInHandle // the user's own (WithTapHandle), run last

	// The levers, in build order; nil when off.
	keepalive     *keepalive.ServerParameters  // maxage
	enforcement   *keepalive.EnforcementPolicy // maxage
	tracker       *goaway.Tracker              // goaway: the credentials wrapper
	policy        *goaway.Policy               // goaway: GOAWAY under load
	stopAudit     func()                       // goaway: cancels the per-sample Tracker.Audit
	rebalancer    *goaway.Rebalancer           // rebalance
	replicaSet    *goaway.SharedWatcher        // rebalance: its DNS lookups, shared with health's guard; nil with a Watcher of the user's
	replicaSetDNS goaway.DNSWatcherConfig      // rebalance: what replicaSet looks up
	shedder       *loadshed.Shedder            // loadshed
	shedInTap     bool                         // loadshed rejects in the tap (Pushback Off)
	shedHeader    bool                         // loadshed reads a priority header (in the tap)
	shedCounts    bool                         // loadshed counts the unary calls in the sampler's counter (SharedCount)
	health        *health.Reporter             // health
	orca          *orca.Reporter               // orca
	path          *callPath                    // the levers' work on the call path: ServerOptions' interceptors, Registrar's handlers

	mu       sync.Mutex     // guards the fields below
	servers  []*grpc.Server // registered servers, stopped by Shutdown
	shutdown bool

	shutdownOnce sync.Once
	shutdownErr  error

	audited atomic.Bool // auditRegistration has looked once calls came
}

// New validates the options, starts the shared load sampler and builds every
// enabled lever. An invalid option makes New return an error that names the
// option and its allowed range; nothing is left running in that case.
func New(opts ...Option) (*Manager, error) {
	s := newSettings()
	for _, o := range opts {
		if o == nil {
			return nil, errors.New("grpcmgmt: New: nil Option")
		}
		o(s)
	}
	if len(s.errs) > 0 {
		return nil, errors.Join(s.errs...)
	}
	if s.logger == nil {
		s.logger = slog.Default()
	}
	if s.meterProvider == nil {
		s.meterProvider = otel.GetMeterProvider()
	}
	sampler, err := load.NewSampler(s.samplerConfig())
	if err != nil {
		return nil, err
	}
	m := &Manager{
		log:     s.logger.With("lib", "grpcmgmt"),
		sampler: sampler,
		calls:   sampler.Calls(),
		creds:   s.creds,
		tap:     s.tap,
	}
	if err := m.buildLevers(s); err != nil {
		m.closeLevers()
		_ = sampler.Close()
		return nil, err
	}
	if s.creds == nil {
		// Checked last, so that an invalid lever option is reported first.
		m.closeLevers()
		_ = sampler.Close()
		return nil, errNoCredentials
	}
	m.path = newCallPath(m)
	sampler.OnSample(m.auditRegistration) // ends with the sampler
	return m, nil
}

// buildLevers builds the enabled levers in a fixed order, because each may
// use the ones before it. Each build function (feature_*.go) does nothing
// when its lever is off and returns its configuration's validation error.
func (m *Manager) buildLevers(s *settings) error {
	for _, build := range []func(*settings) error{
		m.buildMaxAge,    // keepalive parameters
		m.buildGoAway,    // Tracker and Policy; the grace defaults to maxage's
		m.buildRebalance, // sends its GOAWAYs through goaway's Tracker
		m.buildLoadShed,
		m.buildHealth,
		m.buildORCA, // application_utilization follows loadshed's limit
	} {
		if err := build(s); err != nil {
			return err
		}
	}
	return nil
}

// shared sets a lever's logger and meter provider to the Manager's where
// its configuration leaves them nil.
func (m *Manager) shared(s *settings, l **slog.Logger, mp *metric.MeterProvider) {
	if *l == nil {
		*l = m.log
	}
	if *mp == nil {
		*mp = s.meterProvider
	}
}

// servedLevers names the enabled levers that serve gRPC services of their
// own (registered by Register).
func (m *Manager) servedLevers() []Feature {
	var out []Feature
	if m.health != nil {
		out = append(out, Health)
	}
	if m.orca != nil {
		out = append(out, ORCA)
	}
	return out
}

// auditRegistration runs on the sampler: once calls are being served, a
// Manager whose levers serve services (health, ORCA out-of-band) but that
// was never given a server by Register logs one warning, so that a missing
// Register (the one-line ServerOptions form needs Default().Register)
// does not go unseen. It then stops looking.
func (m *Manager) auditRegistration(load.Snapshot) {
	if m.audited.Load() || m.sampler.Calls().Started() == 0 {
		return
	}
	m.audited.Store(true)
	m.mu.Lock()
	registered := len(m.servers) > 0 || m.shutdown
	m.mu.Unlock()
	if services := m.servedLevers(); !registered && len(services) > 0 {
		m.log.Warn("calls are being served but no server was given to Register: "+
			"the services of these levers are not served (call Manager.Register(srv), or "+
			"grpcmgmt.Default().Register(srv) with the one-line ServerOptions form)", "features", services)
	}
}

// ServerOptions returns the grpc.ServerOptions that install every enabled
// lever: credentials (wrapped by goaway), keepalive parameters and
// enforcement policy (maxage), one composed tap handle (only where a lever
// or WithTapHandle needs one), and one unary and one stream interceptor
// that do the work of every lever on the call path
// (grpc-go's per-call ORCA option too, with orca.Config.HandlerMetrics).
// Add them to grpc.NewServer; see the package documentation for how they
// combine with options of your own.
//
// A call passes, in this order:
//
//  1. the tap handle: loadshed's when it rejects there (Pushback Off) or
//     reads a priority header (loadshed.Config.PriorityHeader; neither by
//     default, and then there is no tap unless you pass one), then the one
//     from WithTapHandle;
//  2. with orca.Config.HandlerMetrics, grpc-go's per-call ORCA interceptor,
//     which wraps everything below so that its trailer sees the whole call;
//  3. the Manager's interceptor, which in one function call:
//     a. sheds or admits the call (loadshed): shed calls go no further, so
//     they count neither as load nor in ORCA's figures;
//     b. counts it for the sampler's in-flight calls, QPS and EPS, and
//     times unary calls for its queueing signal (the library's own
//     long-lived streams are not counted); ORCA's application_utilization
//     and qps are read from the same count;
//     c. (streams) counts the stream on its connection so that drained
//     streams are measured (goaway.Tracker.StreamServerInterceptor);
//     d. runs the rest of the chain, then adds the per-call ORCA report to
//     the trailer (orca.Reporter.AddCallReport, AddStreamReport);
//  4. your interceptors, in the order you chained them, then the handler.
//
// One interceptor instead of a chain of four saves grpc-go's chaining
// closures (3 allocations a call) and a function call per lever. Methods
// registered through Registrar do step 3 in their own handlers instead,
// in the same order, and skip the interceptor's allocations.
func (m *Manager) ServerOptions() []grpc.ServerOption {
	creds := m.creds
	if m.tracker != nil {
		creds = m.tracker.WrapCredentials(creds)
	}
	opts := []grpc.ServerOption{grpc.Creds(creds)}
	if m.keepalive != nil {
		opts = append(opts, grpc.KeepaliveParams(*m.keepalive), grpc.KeepaliveEnforcementPolicy(*m.enforcement))
	}
	var taps []tap.ServerInHandle
	if m.shedder != nil && (m.shedInTap || m.shedHeader) {
		// Rejects in the tap (Pushback Off), and reads the priority header
		// where the headers are a plain map.
		taps = append(taps, m.shedder.TapHandle())
	}
	if m.tap != nil {
		taps = append(taps, m.tap)
	}
	if h := composeTaps(taps); h != nil {
		opts = append(opts, grpc.InTapHandle(h))
	}
	if m.orca != nil {
		// Before the interceptors below: grpc-go chains interceptors in
		// option order. Empty unless orca.Config.HandlerMetrics.
		opts = append(opts, m.orca.CallMetricsServerOption())
	}
	return append(opts, grpc.ChainUnaryInterceptor(m.path.unaryFn), grpc.ChainStreamInterceptor(m.path.stream))
}

func composeTaps(taps []tap.ServerInHandle) tap.ServerInHandle {
	switch len(taps) {
	case 0:
		return nil
	case 1:
		return taps[0]
	}
	return func(ctx context.Context, info *tap.Info) (context.Context, error) {
		for _, t := range taps {
			var err error
			if ctx, err = t(ctx, info); err != nil {
				return ctx, err
			}
		}
		return ctx, nil
	}
}

// Register registers the services of every lever that serves one (health,
// ORCA) on s, and remembers s so that Shutdown stops it. Call it once per
// server, before s.Serve.
func (m *Manager) Register(s *grpc.Server) error {
	if s == nil {
		return errNil("Register")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.shutdown {
		return ErrShutdown
	}
	if m.health != nil {
		if err := m.health.Register(s); err != nil {
			return fmt.Errorf("grpcmgmt: health: register: %w", err)
		}
	}
	if m.orca != nil {
		if err := m.orca.Register(s); err != nil {
			return fmt.Errorf("grpcmgmt: orca: register: %w", err)
		}
	}
	m.servers = append(m.servers, s)
	return nil
}

// Load returns the shared load sampler, for reading what the levers decide
// on (and for tests and dashboards).
func (m *Manager) Load() *load.Sampler { return m.sampler }

// Shutdown stops serving in lame-duck fashion and releases everything the
// Manager started:
//
//  1. every lever that takes part in draining begins to drain (health turns
//     NOT_SERVING, ...), and Shutdown waits the longest propagation delay
//     they ask for, so clients and probes stop sending new calls;
//  2. every connection is sent a GOAWAY (so a client that ignores it is
//     closed at the end of the grace rather than holding the shutdown), and
//     every registered server is stopped gracefully (in-flight calls
//     finish);
//  3. if ctx ends first, the servers are stopped hard (grpc.Server.Stop);
//  4. the levers and the load sampler are closed.
//
// Shutdown is idempotent; later calls return the first call's result. It
// returns ctx.Err() if the servers had to be stopped hard.
func (m *Manager) Shutdown(ctx context.Context) error {
	m.shutdownOnce.Do(func() { m.shutdownErr = m.doShutdown(ctx) })
	return m.shutdownErr
}

func (m *Manager) doShutdown(ctx context.Context) error {
	m.mu.Lock()
	m.shutdown = true
	servers := slices.Clone(m.servers)
	m.mu.Unlock()
	log := m.log

	var wait time.Duration
	if m.health != nil {
		wait = m.health.BeginDrain()
		log.Info("shutdown: draining", "feature", Health, "propagation_delay", wait)
	}
	var err error
	if wait > 0 && len(servers) > 0 {
		log.Info("shutdown: waiting for clients and probes to notice", "propagation_delay", wait)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			log.Warn("shutdown: context ended during the propagation delay", "err", ctx.Err())
		}
	}
	if len(servers) > 0 {
		if m.tracker != nil {
			// The tracker closes connections whose clients ignore the
			// GOAWAY at the end of the grace.
			n := m.tracker.GoAwayAll(goaway.ReasonDrain)
			log.Info("shutdown: GOAWAY sent to every connection", "feature", GoAway, "connections", n)
		}
		log.Info("shutdown: stopping servers gracefully", "servers", len(servers))
		done := make(chan struct{})
		go func() {
			for _, s := range servers {
				s.GracefulStop()
			}
			close(done)
		}()
		select {
		case <-done:
		case <-ctx.Done():
			log.Warn("shutdown: deadline reached, stopping servers hard", "err", ctx.Err())
			for _, s := range servers {
				s.Stop()
			}
			<-done
			err = ctx.Err()
		}
	}
	m.closeLevers()
	if cerr := m.sampler.Close(); cerr != nil && err == nil {
		err = cerr
	}
	log.Info("shutdown: done")
	return err
}

// closeLevers closes the levers that were built, in reverse build order.
func (m *Manager) closeLevers() {
	closeLever := func(f Feature, c interface{ Close() error }) {
		if err := c.Close(); err != nil {
			m.log.Warn("shutdown: close failed", "feature", f, "err", err)
		}
	}
	if m.orca != nil {
		closeLever(ORCA, m.orca)
	}
	if m.health != nil {
		closeLever(Health, m.health)
	}
	if m.shedder != nil {
		closeLever(LoadShed, m.shedder)
	}
	if m.rebalancer != nil {
		closeLever(Rebalance, m.rebalancer)
	}
	if m.stopAudit != nil {
		m.stopAudit()
	}
	if m.policy != nil {
		closeLever(GoAway, m.policy)
	}
}

// process is the process-wide Manager of the one-line form.
var process struct {
	mu sync.Mutex
	m  *Manager
}

// ServerOptions is the one-line form, for a process that serves its
// grpc.Server(s) for its whole life:
//
//	srv := grpc.NewServer(grpcmgmt.ServerOptions(grpcmgmt.WithCredentials(tlsCreds))...)
//	grpcmgmt.Default().Register(srv) // serves health and ORCA out-of-band
//
// The first call builds the process-wide Manager from opts (returned by
// Default) and returns its server options; later calls, for more servers in
// the same process, must pass no options and get the same Manager's. So
// however often it is called, one sampler goroutine runs; it stops with
// Default().Shutdown, after which the next call builds a new Manager.
//
// Like New, the first call needs WithCredentials or WithInsecure. An
// invalid option panics here, at start-up, with New's error (as
// regexp.MustCompile does), rather than letting the server run without
// the protection the options asked for; use New to get the error instead.
//
// The health and ORCA out-of-band services are served only on servers
// given to Register: call Default().Register(srv) before srv.Serve. Without
// it, the health status and the out-of-band reports are computed but not
// served (per-call ORCA reports, GOAWAY, max age and shedding work
// regardless), and the Manager logs a warning once calls arrive.
func ServerOptions(opts ...Option) []grpc.ServerOption {
	process.mu.Lock()
	defer process.mu.Unlock()
	if m := process.m; m != nil && !m.isShutdown() {
		if len(opts) > 0 {
			panic("grpcmgmt.ServerOptions: the process-wide Manager is already built; " +
				"pass options on the first call only, or use New for a Manager of your own")
		}
		return m.ServerOptions()
	}
	m, err := New(opts...)
	if err != nil {
		panic("grpcmgmt.ServerOptions: " + err.Error())
	}
	process.m = m
	return m.ServerOptions()
}

// Default returns the process-wide Manager built by ServerOptions, or nil
// before the first call (and after its Shutdown). Use it to Register the
// server and to Shutdown in lame-duck fashion.
func Default() *Manager {
	process.mu.Lock()
	defer process.mu.Unlock()
	if m := process.m; m != nil && !m.isShutdown() {
		return m
	}
	return nil
}

func (m *Manager) isShutdown() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.shutdown
}
