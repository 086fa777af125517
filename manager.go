package grpcmgmt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
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
	names      []string              // feature names, build order
	orders     []int                 // feature orders, parallel to names
	components []component.Component // build order, parallel to names
	counter    component.Component   // counts calls for the load sampler

	mu       sync.Mutex     // guards the fields below
	servers  []*grpc.Server // registered servers, stopped by Shutdown
	shutdown bool

	shutdownOnce sync.Once
	shutdownErr  error
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
	if s.creds == nil {
		s.creds = insecure.NewCredentials()
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
			MaxAgeGrace:   s.maxAgeGrace(),
		},
		creds:   s.creds,
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
	return m, nil
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

// ServerOptions is the one-line form:
//
//	srv := grpc.NewServer(grpcmgmt.ServerOptions()...)
//
// It builds a Manager with opts and returns its server options. The Manager
// lives as long as the process (its sampler goroutine is never stopped) and
// registers no services; use New for health and ORCA services, lame-duck
// shutdown, or tests.
//
// Invalid options are not ignored: ServerOptions logs the error at ERROR
// level (to WithLogger's logger, else slog.Default()) and returns options
// that make the server fail every call with codes.Internal and a message
// naming the invalid option, so the mistake shows on the first call instead
// of running without the protection the options asked for. Use New to get
// the error instead.
func ServerOptions(opts ...Option) []grpc.ServerOption {
	m, err := New(opts...)
	if err == nil {
		return m.ServerOptions()
	}
	s := &settings{features: map[string]*component.Factory{}}
	for _, o := range opts {
		if o != nil {
			o(s)
		}
	}
	log := s.logger
	if log == nil {
		log = slog.Default()
	}
	log.Error("grpcmgmt: invalid options; every call will fail until they are fixed", "err", err)
	st := status.New(codes.Internal, "grpcmgmt: server misconfigured: "+err.Error())
	return []grpc.ServerOption{grpc.InTapHandle(func(ctx context.Context, _ *tap.Info) (context.Context, error) {
		return ctx, st.Err()
	})}
}
