package orca_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"google.golang.org/grpc"
	_ "google.golang.org/grpc/balancer/weightedroundrobin" // the client's balancer
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"

	"github.com/grpcmgmt/grpcmgmt"
	"github.com/grpcmgmt/grpcmgmt/clientconfig"
	"github.com/grpcmgmt/grpcmgmt/goaway"
	"github.com/grpcmgmt/grpcmgmt/internal/replica"
	"github.com/grpcmgmt/grpcmgmt/load"
	"github.com/grpcmgmt/grpcmgmt/orca"
)

// A server whose handlers know nothing of ORCA reports its load on every
// call and out of band; a grpc-go client balances with
// weighted_round_robin.
func Example() {
	// Server: ORCA is on by default; Capacity says how many calls this
	// replica serves at once, so application_utilization = calls in flight
	// ÷ 8. MinReportingInterval lets clients ask for reports every second.
	m, err := grpcmgmt.New(grpcmgmt.WithInsecure(),
		grpcmgmt.WithLogger(slog.New(slog.DiscardHandler)),
		grpcmgmt.WithORCA(orca.Config{Capacity: 8, MinReportingInterval: time.Second}),
	)
	if err != nil {
		panic(err)
	}
	srv := grpc.NewServer(m.ServerOptions()...)
	replica.New(replica.Config{Name: "a"}).Register(srv)
	if err := m.Register(srv); err != nil { // the out-of-band service
		panic(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go func() { _ = srv.Serve(lis) }()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = m.Shutdown(ctx)
	}()

	// Client: weighted_round_robin fed by per-call reports
	// (clientconfig.WeightedRoundRobin; grpc-go needs the blank import of
	// google.golang.org/grpc/balancer/weightedroundrobin).
	cc, err := grpc.NewClient("dns:///"+lis.Addr().String(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(clientconfig.WeightedRoundRobin))
	if err != nil {
		panic(err)
	}
	defer cc.Close()

	var trailer metadata.MD
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := testgrpc.NewTestServiceClient(cc).UnaryCall(ctx, &testgrpc.SimpleRequest{}, grpc.Trailer(&trailer)); err != nil {
		panic(err)
	}
	fmt.Println("per-call load report:", len(trailer.Get("endpoint-load-metrics-bin")) == 1)
	// Output: per-call load report: true
}

// Without the grpcmgmt Manager: a Reporter told the open connections by
// the goaway.Tracker that wraps the server's credentials skips the
// per-call report's connection lookup once every connection has had its
// report in the interval. The sampler's hook runs the Tracker's Audit, as
// the Manager does, so that calls on connections the Tracker cannot see
// turn the skip off.
func ExampleWithConnections() {
	s, err := load.NewSampler(load.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	defer s.Close()
	tracker, err := goaway.NewTracker(goaway.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	stopAudit := s.OnSample(func(load.Snapshot) { tracker.Audit(s.Calls().Started()) })
	defer stopAudit()
	r, err := orca.New(s, orca.Config{}, orca.WithConnections(tracker), orca.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		panic(err)
	}
	defer r.Close()

	srv := grpc.NewServer(append(r.ServerOptions(), grpc.Creds(tracker.WrapCredentials(insecure.NewCredentials())))...)
	replica.New(replica.Config{Name: "a"}).Register(srv)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()

	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		panic(err)
	}
	defer cc.Close()
	var trailer metadata.MD
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := testgrpc.NewTestServiceClient(cc).UnaryCall(ctx, &testgrpc.SimpleRequest{}, grpc.Trailer(&trailer)); err != nil {
		panic(err)
	}
	fmt.Println("the connection's first call carries a report:", len(trailer.Get(orca.TrailerKey)) == 1)
	// Output: the connection's first call carries a report: true
}
