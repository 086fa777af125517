package orca

import (
	"context"

	"google.golang.org/grpc"
	grpcorca "google.golang.org/grpc/orca"
)

// ServerOptions returns everything a server needs for the per-call reports
// and the utilization measurement: the Reporter's interceptors, and, with
// Config.HandlerMetrics, grpc-go's CallMetricsServerOption before them. Use
// it when you install the Reporter yourself; grpcmgmt.Manager installs the
// parts instead (one interceptor for every lever, so that shed calls are
// not counted). Do not also add orca.CallMetricsServerOption yourself: the
// client would receive two reports and discard both.
func (r *Reporter) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		r.CallMetricsServerOption(),
		grpc.ChainUnaryInterceptor(r.UnaryServerInterceptor()),
		grpc.ChainStreamInterceptor(r.StreamServerInterceptor()),
	}
}

// CallMetricsServerOption returns grpc-go's orca.CallMetricsServerOption fed
// by r when Config.HandlerMetrics is set (and per-call reports are on), else
// an empty option. It must come before the Reporter's interceptors in the
// server's options: its interceptor puts the per-call recorder in the
// context that theirs reads.
func (r *Reporter) CallMetricsServerOption() grpc.ServerOption {
	if r.cfg.DisablePerCall || !r.cfg.HandlerMetrics {
		return grpc.EmptyServerOption{}
	}
	return grpcorca.CallMetricsServerOption(r)
}

// UnaryServerInterceptor counts the unary calls in flight on the shared
// sampler's load.Calls (the input of application_utilization and qps; the
// grpcmgmt Manager counts them itself) and adds the per-call report to the
// trailer of one unary call in Config.PerCallEvery (default 8) and of the
// first after a sample once a second, when the handler returns (see
// AddCallReport).
func (r *Reporter) UnaryServerInterceptor() grpc.UnaryServerInterceptor { return r.unary }

// StreamServerInterceptor adds the per-call report to the trailer of every
// stream, when its handler returns. Streams are not counted as calls in
// flight here: a long-lived stream's lifetime says nothing about how busy
// the server is.
func (r *Reporter) StreamServerInterceptor() grpc.StreamServerInterceptor { return r.stream }

func (r *Reporter) unary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	call := r.calls.BeginUnary()
	defer call.End(false)
	resp, err := h(ctx, req)
	r.AddCallReport(ctx)
	return resp, err
}

func (r *Reporter) stream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	err := h(srv, ss)
	r.AddStreamReport(ss)
	return err
}

// AddCallReport adds the per-call report to the trailer of the unary call
// whose context is ctx, if the call is one of the one in
// Config.PerCallEvery that carry one, or the first to end after a sample,
// once a second (and per-call reports are on). Call it from a
// unary server interceptor when the handler has returned, once per call:
// the Reporter's own interceptor and the grpcmgmt Manager's do.
//
// The second rule is for replicas that get few calls: a weighted_round_robin
// client weighs a replica only once it has had a valid report from it
// (@grpc/grpc-js 1.14 gives a replica without one a weight of 1 against
// its peers' hundreds), so a replica that got fewer than PerCallEvery calls
// while the others got their weights could wait for its next report for
// as long as it got almost no calls: for ever (seen in TestWRRNodePerCall:
// a grpc-js client, per-call reports, 15 calls/s over two replicas, one of
// them with no call after its first seven). It costs at most one report
// a second (not one a sample: @grpc/grpc-js 1.14.7 spends about 10 ms of
// its CPU on each), and on the other calls a read of a flag that changes
// once a second.
//
// The report is the server-wide one of the latest sample (ServerMetrics),
// marshalled once per sample period: adding it costs grpc-go's trailer
// bookkeeping, not a marshal. With Config.HandlerMetrics, it asks grpc-go's
// per-call recorder for the call instead (which makes grpc-go send the
// report, with the handler's own values merged over the Reporter's).
func (r *Reporter) AddCallReport(ctx context.Context) {
	if r.cfg.DisablePerCall {
		return
	}
	if n := r.perCallN.Add(1) - 1; n%uint64(r.cfg.PerCallEvery) != 0 {
		if !r.fresh.Load() || !r.fresh.CompareAndSwap(true, false) {
			return
		}
		r.freshReports.Add(1)
	} else if r.fresh.Load() {
		r.fresh.Store(false)
	}
	if r.cfg.HandlerMetrics {
		_ = grpcorca.CallMetricsRecorderFromContext(ctx) // makes grpc-go send the report
		return
	}
	_ = grpc.SetTrailer(ctx, *r.trailer.Load())
}

// AddStreamReport adds the per-call report to the trailer of ss, as
// AddCallReport does for a unary call (every stream carries one). Call it
// from a stream server interceptor when the handler has returned.
func (r *Reporter) AddStreamReport(ss grpc.ServerStream) {
	if r.cfg.DisablePerCall {
		return
	}
	r.streamReports.Add(1)
	if r.cfg.HandlerMetrics {
		_ = grpcorca.CallMetricsRecorderFromContext(ss.Context())
		return
	}
	ss.SetTrailer(*r.trailer.Load())
}
