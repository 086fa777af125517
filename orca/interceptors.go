package orca

import (
	"context"

	"google.golang.org/grpc"
	grpcorca "google.golang.org/grpc/orca"
)

// ServerOptions returns everything a server needs for the per-call reports
// and the utilization measurement, in the order that works: grpc-go's
// CallMetricsServerOption (which sends the trailer) first, then the
// Reporter's interceptors inside it. Use it when you install the Reporter
// yourself; grpcmgmt.Manager installs the parts instead, so that shed calls
// are not counted. Do not also add orca.CallMetricsServerOption yourself: the
// client would receive two reports and discard both.
func (r *Reporter) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		r.CallMetricsServerOption(),
		grpc.ChainUnaryInterceptor(r.UnaryServerInterceptor()),
		grpc.ChainStreamInterceptor(r.StreamServerInterceptor()),
	}
}

// CallMetricsServerOption returns grpc-go's orca.CallMetricsServerOption fed
// by r, or an empty option when Config.DisablePerCall is set. It must come
// before the Reporter's interceptors in the server's options: its
// interceptor puts the per-call recorder in the context that theirs reads.
func (r *Reporter) CallMetricsServerOption() grpc.ServerOption {
	if r.cfg.DisablePerCall {
		return grpc.EmptyServerOption{}
	}
	return grpcorca.CallMetricsServerOption(r)
}

// UnaryServerInterceptor measures the unary calls in flight (the input of
// application_utilization and qps) and makes sure one unary call in
// Config.PerCallEvery (default 8) carries a per-call report: grpc-go sends
// the trailer only for calls whose handler asked for the recorder, so the
// interceptor asks on the handler's behalf.
// What the handler records itself (request costs, named metrics, or its own
// utilization) is merged over the Reporter's values by grpc-go.
func (r *Reporter) UnaryServerInterceptor() grpc.UnaryServerInterceptor { return r.unary }

// StreamServerInterceptor makes sure every stream ends with a per-call
// report. Streams are not counted as calls in flight: a long-lived stream's
// lifetime says nothing about how busy the server is.
func (r *Reporter) StreamServerInterceptor() grpc.StreamServerInterceptor { return r.stream }

func (r *Reporter) unary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	start := r.calls.begin()
	defer r.calls.end(start)
	if every := uint64(r.cfg.PerCallEvery); every <= 1 || (r.perCallN.Add(1)-1)%every == 0 {
		r.ensureReport(ctx)
	}
	return h(ctx, req)
}

func (r *Reporter) stream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	r.ensureReport(ss.Context())
	return h(srv, ss)
}

// ensureReport creates the call's recorder, which is what makes grpc-go's
// interceptor send the trailer when the call ends. It adds no values: the
// report's base values come from ServerMetrics.
func (r *Reporter) ensureReport(ctx context.Context) {
	if r.cfg.DisablePerCall {
		return
	}
	if grpcorca.CallMetricsRecorderFromContext(ctx) != nil {
		r.callReports.Add(ctx, 1)
	}
}
