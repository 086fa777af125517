package grpcmgmt

import (
	"context"

	orcagrpc "github.com/cncf/xds/go/xds/service/orca/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthgrpc "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/grpcmgmt/grpcmgmt/load"
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

// callCounter counts every admitted call for the sampler's in-flight, QPS and
// EPS, and times unary calls for its queueing signal (load.Snapshot.Queueing):
// the one place a call's latency is measured for the levers. It is always
// installed.
type callCounter struct{ calls *load.Calls }

func (c callCounter) unary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (resp any, err error) {
	call := c.calls.BeginUnary()
	defer func() { call.End(isServerError(err)) }()
	return h(ctx, req)
}

// stream counts a stream from its start to its end, except the library's
// own long-lived streams (see isLibraryStream).
func (c callCounter) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) (err error) {
	if isLibraryStream(info.FullMethod) {
		return h(srv, ss)
	}
	c.calls.Begin()
	defer func() { c.calls.End(isServerError(err)) }()
	return h(srv, ss)
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

// isServerError reports whether err counts towards EPS: failures that point
// at the server (or at its load), not at the caller's request.
func isServerError(err error) bool {
	if err == nil {
		return false
	}
	switch status.Code(err) {
	case codes.Unknown, codes.DeadlineExceeded, codes.ResourceExhausted,
		codes.Internal, codes.Unavailable, codes.DataLoss:
		return true
	}
	return false
}
