package grpcmgmt_test

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	orcagrpc "github.com/cncf/xds/go/xds/service/orca/v3"
	"google.golang.org/grpc"
	_ "google.golang.org/grpc/balancer/weightedroundrobin" // weighted_round_robin with out-of-band reports
	_ "google.golang.org/grpc/health"                      // client-side health checking
	healthgrpc "google.golang.org/grpc/health/grpc_health_v1"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"

	"github.com/grpcmgmt/grpcmgmt"
	"github.com/grpcmgmt/grpcmgmt/internal/replica"
	"github.com/grpcmgmt/grpcmgmt/load"
	"github.com/grpcmgmt/grpcmgmt/orca"
)

// TestLibraryStreamsAreNotLoad: standard grpc-go clients with client-side
// health checking and weighted_round_robin out-of-band reports each keep a
// health Watch and an ORCA StreamCoreMetrics stream open on their
// connection for as long as it lives. Those streams are the library's own
// and carry no work: the calls in flight that the in-flight thresholds
// read (load.Calls, the sampler's InFlight and QPS) must not count them,
// while the application's calls still count.
func TestLibraryStreamsAreNotLoad(t *testing.T) {
	const clients = 4
	var watches, oobStreams atomic.Int64
	// Runs after the library's interceptors: a stream it sees is one the
	// call counter has already seen (and must have let through uncounted).
	seen := grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		switch info.FullMethod {
		case healthgrpc.Health_Watch_FullMethodName:
			watches.Add(1)
			defer watches.Add(-1)
		case orcagrpc.OpenRcaService_StreamCoreMetrics_FullMethodName:
			oobStreams.Add(1)
			defer oobStreams.Add(-1)
		}
		return h(srv, ss)
	})
	m, err := grpcmgmt.New(testOptions(
		grpcmgmt.WithLoad(load.Config{Period: 10 * time.Millisecond, TimeConstant: 10 * time.Millisecond}),
		grpcmgmt.WithORCA(orca.Config{MinReportingInterval: 100 * time.Millisecond}))...)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(append(m.ServerOptions(), seen)...)
	replica.New(replica.Config{Name: "r1", Work: 200 * time.Millisecond}).Register(srv)
	if err := m.Register(srv); err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.Serve(lis) }()
	t.Cleanup(func() { _ = m.Shutdown(context.Background()); <-served })
	addr := lis.Addr().String()

	const serviceConfig = `{
	  "loadBalancingConfig": [{"weighted_round_robin": {
	    "enableOobLoadReport": true, "oobReportingPeriod": "0.1s"}}],
	  "healthCheckConfig": {"serviceName": ""}
	}`
	var stubs []testgrpc.TestServiceClient
	for range clients {
		cc := dial(t, addr, grpc.WithDefaultServiceConfig(serviceConfig))
		cc.Connect()
		stubs = append(stubs, testgrpc.NewTestServiceClient(cc))
	}
	waitUntil(t, "a health Watch and an ORCA stream per client", func() bool {
		return watches.Load() == clients && oobStreams.Load() == clients
	})
	open := time.Now()
	calls := m.Load().Calls()
	if got := calls.InFlight(); got != 0 {
		t.Errorf("calls in flight with only the library's streams open = %d, want 0 (%d Watch, %d ORCA streams)",
			got, watches.Load(), oobStreams.Load())
	}
	if got := calls.Started(); got != 0 {
		t.Errorf("calls started = %d, want 0: the library's streams count towards QPS", got)
	}
	waitUntil(t, "a sample with the streams open", func() bool { return m.Load().Snapshot().At.After(open) })
	if got := m.Load().Snapshot().InFlight; got != 0 {
		t.Errorf("sampled InFlight = %d, want 0", got)
	}

	// The application's calls count, next to the library's streams.
	done := make(chan error, 1)
	go func() {
		_, err := stubs[0].UnaryCall(context.Background(), &testgrpc.SimpleRequest{})
		done <- err
	}()
	waitUntil(t, "the application's call in flight", func() bool { return calls.InFlight() == 1 })
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := calls.Started(); got != 1 {
		t.Errorf("calls started = %d, want 1 (the application's call)", got)
	}
}
