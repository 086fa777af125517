package grpcmgmt

import (
	"context"

	orcagrpc "github.com/cncf/xds/go/xds/service/orca/v3"
	"google.golang.org/grpc"
	healthgrpc "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/grpcmgmt/grpcmgmt/internal/outcome"
	"github.com/grpcmgmt/grpcmgmt/load"
	"github.com/grpcmgmt/grpcmgmt/loadshed"
	"github.com/grpcmgmt/grpcmgmt/orca"
)

// WithLoad configures the shared load sampler (period, smoothing, custom
// sources, and injected readings). New returns its validation error.
// cfg.MeterProvider and cfg.Logger default to the Manager's
// (WithMeterProvider, WithLogger).
func WithLoad(cfg load.Config) Option {
	return func(s *settings) { s.loadConfig = cfg }
}

// samplerConfig is the load.Config New starts the shared sampler with: the
// user's, with the Manager's meter provider and logger where it sets none.
// Call it after New has resolved s.logger and s.meterProvider.
func (s *settings) samplerConfig() load.Config {
	cfg := s.loadConfig
	if cfg.MeterProvider == nil {
		cfg.MeterProvider = s.meterProvider
	}
	if cfg.Logger == nil {
		cfg.Logger = s.logger.With("lib", "grpcmgmt", "component", "load")
	}
	return cfg
}

// callPath is the Manager's interceptor pair: every lever's work on the
// call path in one function call per call (see Manager.ServerOptions for
// the order). Nil levers are off.
type callPath struct {
	shedder *loadshed.Shedder
	// shedCounts: the shedder counts the unary calls in calls itself
	// (loadshed.Config.SharedCount), with the add that takes their slot.
	shedCounts  bool
	calls       *load.Calls // always on: the sampler's in-flight, QPS, EPS and queueing signal
	orca        *orca.Reporter
	trackStream grpc.StreamServerInterceptor // goaway's stream accounting
	// unaryFn is unary as a func value, made once: the interceptor every
	// ServerOptions installs, and what a Registrar's handlers recognise
	// (sameInterceptor) to do its work themselves.
	unaryFn grpc.UnaryServerInterceptor
	// To 64 bytes: Go's allocator then places a callPath on a cache line
	// of its own (size class 64), where at 48 bytes (class 48) one in four
	// would straddle two, and each call would read both.
	_ [16]byte
}

// newCallPath returns the Manager's call path, made once in New and shared
// by every server its ServerOptions and Registrar serve.
func newCallPath(m *Manager) *callPath {
	c := &callPath{shedder: m.shedder, shedCounts: m.shedCounts, calls: m.calls, orca: m.orca}
	if m.tracker != nil {
		c.trackStream = m.tracker.StreamServerInterceptor()
	}
	c.unaryFn = c.unary
	return c
}

// unary sheds or admits the call, counts and times it for the sampler (the
// one place a call's latency is measured for the levers), and adds the
// per-call ORCA report to its trailer. With the shedder on, admitting the
// call is what counts it: one add takes its slot and counts it in flight
// for the sampler (loadshed.Config.SharedCount).
func (c *callPath) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	return runUnary(c, ctx, info.FullMethod, intercepted{req: req, h: h}, intercepted.run)
}

// intercepted is an intercepted unary call's handler and its decoded
// request.
type intercepted struct {
	req any
	h   grpc.UnaryHandler
}

func (k intercepted) run(ctx context.Context) (any, error) { return k.h(ctx, k.req) }

// runUnary is the levers' work on a unary call, for the interceptor
// (callPath.unary) and a Registrar's handlers (callPath.method) alike:
// shed or admit the call, count and time it, run it (run(ctx, k)), and add
// the per-call ORCA report. One generic body, so the two forms cannot
// drift; k is a small value, so nothing is allocated.
func runUnary[K any](c *callPath, ctx context.Context, method string, k K, run func(K, context.Context) (any, error)) (resp any, err error) {
	if c.shedCounts {
		var t loadshed.Ticket
		if t, err = c.shedder.AdmitUnary(ctx, method); err != nil {
			return nil, err
		}
		defer func() { t.Finish(outcome.ServerError(err)) }() // also when the handler panics
		resp, err = run(k, ctx)
		c.report(ctx)
		return resp, err
	}
	var t loadshed.Ticket // the zero Ticket's Done does nothing
	if c.shedder != nil {
		if t, err = c.shedder.AdmitUnary(ctx, method); err != nil {
			return nil, err
		}
	}
	call := c.calls.BeginUnary()
	// One deferred call for both (also when the handler panics): the call
	// ends, then its slot is released, as two defers would do it.
	defer func() {
		call.End(outcome.ServerError(err))
		t.Done()
	}()
	resp, err = run(k, ctx)
	c.report(ctx)
	return resp, err
}

// report adds the per-call ORCA report to a unary call's trailer, when ORCA
// is on.
func (c *callPath) report(ctx context.Context) {
	if c.orca != nil {
		c.orca.AddCallReport(ctx)
	}
}

// stream sheds or admits the stream, counts it from its start to its end
// (except the library's own long-lived streams, see isLibraryStream),
// counts it on its connection for goaway's drain figures, and adds the
// per-call ORCA report to its trailer.
func (c *callPath) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) (err error) {
	if c.shedder != nil {
		t, err := c.shedder.AdmitStream(ss.Context(), info.FullMethod)
		if err != nil {
			return err
		}
		defer t.Done()
	}
	if !isLibraryStream(info.FullMethod) {
		c.calls.Begin()
		defer func() { c.calls.End(outcome.ServerError(err)) }()
	}
	if c.trackStream != nil {
		err = c.trackStream(srv, ss, info, h)
	} else {
		err = h(srv, ss)
	}
	if c.orca != nil {
		c.orca.AddStreamReport(ss)
	}
	return err
}

// isLibraryStream reports whether method is one of the long-lived streams
// the library's own levers serve: a health-checking client keeps one
// grpc.health.v1 Watch open per connection, and a weighted_round_robin
// client with out-of-band reports one ORCA StreamCoreMetrics. They carry no
// work, and counted as calls in flight they would make every in-flight
// threshold (goaway.PolicyConfig.InFlightEnter, health.Config.InFlightEnter)
// count connections instead of load, and inflate QPS. Two string
// comparisons per stream, none per unary call.
func isLibraryStream(method string) bool {
	return method == healthgrpc.Health_Watch_FullMethodName ||
		method == orcagrpc.OpenRcaService_StreamCoreMetrics_FullMethodName
}
