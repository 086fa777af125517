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
// trailer of each client connection's first unary call in each
// Config.PerCallInterval (default 1s), when the handler returns (see
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
// whose context is ctx if it is the first call of its client connection to
// end in this Config.PerCallInterval (and per-call reports are on). Call it
// from a unary server interceptor when the handler has returned, once per
// call: the Reporter's own interceptor and the grpcmgmt Manager's do.
//
// Per connection, because a weighted_round_robin client weighs each of its
// connections (one per replica) by the last report it got on it: so every
// client gets a fresh report about once per interval whatever its share of
// the server's calls. A client that sends few calls is not left without
// one (@grpc/grpc-js 1.14 gives a replica without a valid report a weight
// of 1 against its peers' hundreds, and so almost no calls: seen in
// TestWRRNodePerCall when reports rode on one call in eight of the
// server's), and one that sends many is not sent a report it will parse
// and discard on every few calls. The other calls cost a context lookup,
// a look in a cache of recent connections (a lock-free map load when the
// connection is not there) and an atomic load (see conns); with
// WithConnections, once every open connection has had its report in the
// interval, four atomic loads instead, three of them on the Reporter's
// first cache line (see skip.go).
//
// The report is the server-wide one of the latest sample (ServerMetrics),
// marshalled once per sample period: adding it costs grpc-go's trailer
// bookkeeping, not a marshal. With Config.HandlerMetrics, it asks grpc-go's
// per-call recorder for the call instead (which makes grpc-go send the
// report, with the handler's own values merged over the Reporter's).
func (r *Reporter) AddCallReport(ctx context.Context) {
	if r.noPerCall || !r.conns.due(ctx) {
		return
	}
	r.callReports.Add(1)
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
