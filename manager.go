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
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/tap"

	"github.com/grpcmgmt/grpcmgmt/internal/component"
	"github.com/grpcmgmt/grpcmgmt/load"
)

// Manager owns the state every lever shares (the load sampler, the logger,
// the meter) and the levers themselves. Create it with New, add
// m.ServerOptions() to grpc.NewServer, call m.Register on the server, and
// call m.Shutdown when the process stops.
type Manager struct {
	// Immutable after New:
	host       *component.Host
	creds      credentials.TransportCredentials
	tap        tap.ServerInHandle    // the user's own (WithTapHandle), run last
	names      []string              // feature names, build order
	orders     []int                 // feature orders, parallel to names
	components []component.Component // build order, parallel to names
	counter    component.Component   // counts calls for the load sampler

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
	s := &settings{features: map[string]*component.Factory{}}
	for _, f := range defaultFeatures {
		s.features[f.Name] = f
	}
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
		host: &component.Host{
			Logger:        s.logger.With("lib", "grpcmgmt"),
			MeterProvider: s.meterProvider,
			Load:          sampler,
			Insecure:      s.credsBy == "WithInsecure",
			MaxAgeGrace:   s.maxAgeGrace(),
		},
		creds:   s.creds,
		tap:     s.tap,
		counter: callCounter{calls: sampler.Calls()},
	}
	m.host.Find = func(name string) (component.Component, bool) {
		for i, n := range m.names {
			if n == name {
				return m.components[i], true
			}
		}
		return nil, false
	}
	factories := make([]*component.Factory, 0, len(s.features))
	for _, f := range s.features {
		if f != nil {
			factories = append(factories, f)
		}
	}
	slices.SortFunc(factories, func(a, b *component.Factory) int { return a.Order - b.Order })
	for _, f := range factories {
		c, err := f.New(m.host)
		if err != nil {
			m.closeComponents()
			_ = sampler.Close()
			return nil, err
		}
		m.names = append(m.names, f.Name)
		m.orders = append(m.orders, f.Order)
		m.components = append(m.components, c)
	}
	if s.creds == nil {
		// Checked last, so that an invalid lever option is reported first.
		m.closeComponents()
		_ = sampler.Close()
		return nil, errNoCredentials
	}
	sampler.OnSample(m.auditRegistration) // ends with the sampler
	return m, nil
}

// auditRegistration runs on the sampler: once calls are being served, a
// Manager whose levers serve services (health, ORCA out-of-band) but that
// was never given a server by Register logs one warning, so that a missing
// Register (the one-line ServerOptions form needs Default().Register)
// does not go unseen. It then stops looking.
func (m *Manager) auditRegistration(load.Snapshot) {
	if m.audited.Load() || m.host.Load.Calls().Started() == 0 {
		return
	}
	m.audited.Store(true)
	m.mu.Lock()
	registered := len(m.servers) > 0 || m.shutdown
	m.mu.Unlock()
	if !registered {
		var services []string
		for i, c := range m.components {
			if _, ok := c.(component.Registrar); ok {
				services = append(services, m.names[i])
			}
		}
		if len(services) > 0 {
			m.host.Logger.Warn("calls are being served but no server was given to Register: "+
				"the services of these levers are not served (call Manager.Register(srv), or "+
				"grpcmgmt.Default().Register(srv) with the one-line ServerOptions form)", "features", services)
		}
	}
}

// ServerOptions returns the grpc.ServerOptions that install every enabled
// lever: credentials (wrapped where a lever needs to), keepalive parameters
// and enforcement policy, one composed tap handle, chained interceptors and
// stats handlers. Add them to grpc.NewServer; see the package documentation
// for how they combine with options of your own.
func (m *Manager) ServerOptions() []grpc.ServerOption {
	creds := m.creds
	var (
		opts   []grpc.ServerOption
		taps   []tap.ServerInHandle
		unary  []grpc.UnaryServerInterceptor
		stream []grpc.StreamServerInterceptor
	)
	for _, c := range m.all() {
		p := c.Parts()
		if p.WrapCredentials != nil {
			creds = p.WrapCredentials(creds)
		}
		if p.Keepalive != nil {
			opts = append(opts, grpc.KeepaliveParams(*p.Keepalive))
		}
		if p.Enforcement != nil {
			opts = append(opts, grpc.KeepaliveEnforcementPolicy(*p.Enforcement))
		}
		if p.Tap != nil {
			taps = append(taps, p.Tap)
		}
		if p.Unary != nil {
			unary = append(unary, p.Unary)
		}
		if p.Stream != nil {
			stream = append(stream, p.Stream)
		}
		if p.StatsHandler != nil {
			opts = append(opts, grpc.StatsHandler(p.StatsHandler))
		}
		opts = append(opts, p.ServerOptions...)
	}
	opts = append(opts, grpc.Creds(creds))
	if m.tap != nil {
		taps = append(taps, m.tap)
	}
	if h := composeTaps(taps); h != nil {
		opts = append(opts, grpc.InTapHandle(h))
	}
	if len(unary) > 0 {
		opts = append(opts, grpc.ChainUnaryInterceptor(unary...))
	}
	if len(stream) > 0 {
		opts = append(opts, grpc.ChainStreamInterceptor(stream...))
	}
	return opts
}

// all returns the components in interceptor order, the call counter placed
// among them by its order.
func (m *Manager) all() []component.Component {
	out := make([]component.Component, 0, len(m.components)+1)
	placed := false
	for i, c := range m.components {
		if !placed && m.orders[i] > counterOrder {
			out = append(out, m.counter)
			placed = true
		}
		out = append(out, c)
	}
	if !placed {
		out = append(out, m.counter)
	}
	return out
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
	for i, c := range m.components {
		if r, ok := c.(component.Registrar); ok {
			if err := r.Register(s); err != nil {
				return fmt.Errorf("grpcmgmt: %s: register: %w", m.names[i], err)
			}
		}
	}
	m.servers = append(m.servers, s)
	return nil
}

// Load returns the shared load sampler, for reading what the levers decide
// on (and for tests and dashboards).
func (m *Manager) Load() *load.Sampler { return m.host.Load }

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
	log := m.host.Logger

	var wait time.Duration
	for i, c := range m.components {
		if d, ok := c.(component.Drainer); ok {
			w := d.BeginDrain(ctx)
			log.Info("shutdown: draining", "feature", m.names[i], "propagation_delay", w)
			wait = max(wait, w)
		}
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
		for i, c := range m.components {
			if d, ok := c.(component.ConnDrainer); ok {
				n := d.DrainConnections()
				log.Info("shutdown: GOAWAY sent to every connection", "feature", m.names[i], "connections", n)
			}
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
	m.closeComponents()
	if cerr := m.host.Load.Close(); cerr != nil && err == nil {
		err = cerr
	}
	log.Info("shutdown: done")
	return err
}

func (m *Manager) closeComponents() {
	for i := len(m.components) - 1; i >= 0; i-- {
		if c, ok := m.components[i].(component.Closer); ok {
			if err := c.Close(); err != nil {
				m.host.Logger.Warn("shutdown: close failed", "feature", m.names[i], "err", err)
			}
		}
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
