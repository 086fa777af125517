package health_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	_ "google.golang.org/grpc/health" // client-side health checking (gRFC A17)
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/grpcmgmt/grpcmgmt"
	"github.com/grpcmgmt/grpcmgmt/clientconfig"
	"github.com/grpcmgmt/grpcmgmt/goaway"
	"github.com/grpcmgmt/grpcmgmt/health"
	"github.com/grpcmgmt/grpcmgmt/internal/replica"
	"github.com/grpcmgmt/grpcmgmt/load"
)

// A server whose health the Manager manages, and a grpc-go client that
// follows it.
func Example() {
	// Server. Health is on by default; the Manager registers the health
	// service and turns it NOT_SERVING first in Shutdown.
	m, err := grpcmgmt.New(grpcmgmt.WithInsecure(), grpcmgmt.WithHealth(health.Config{PropagationDelay: 100 * time.Millisecond}))
	if err != nil {
		log.Fatal(err)
	}
	srv := grpc.NewServer(m.ServerOptions()...)
	replica.New(replica.Config{Name: "a"}).Register(srv) // your services
	if err := m.Register(srv); err != nil {
		log.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go srv.Serve(lis)

	// Client: dns:/// resolves to every replica; round_robin with health
	// checking (clientconfig.RoundRobin, with the blank import of
	// google.golang.org/grpc/health) skips those that are NOT_SERVING, and
	// its retry policy sends a call caught by a replica that is shutting
	// down to another one.
	cc, err := grpc.NewClient("dns:///"+lis.Addr().String(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(clientconfig.RoundRobin))
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = testpb.NewTestServiceClient(cc).EmptyCall(ctx, &testpb.Empty{})
	fmt.Println("call:", err == nil)

	// What a Kubernetes probe sees: a Check on a plain connection. (On cc,
	// a Check would fail with UNAVAILABLE once the only replica is
	// NOT_SERVING: health-checking clients send nothing to it.)
	probe, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	hc := healthpb.NewHealthClient(probe)
	resp, _ := hc.Check(ctx, &healthpb.HealthCheckRequest{})
	fmt.Println("health:", resp.GetStatus())

	// The application's own status: load never turns it SERVING again.
	m.Health().SetStatus("", health.NotServing)
	resp, _ = hc.Check(ctx, &healthpb.HealthCheckRequest{})
	fmt.Println("after SetStatus:", resp.GetStatus())

	_ = cc.Close()
	_ = probe.Close()
	_ = m.Shutdown(ctx) // lame duck: NOT_SERVING, wait, GracefulStop
	// Output:
	// call: true
	// health: SERVING
	// after SetStatus: NOT_SERVING
}

// A Reporter without the Manager: on a load sampler of your own, registered
// on your server, drained by you.
func ExampleNew() {
	sampler, err := load.NewSampler(load.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer sampler.Close()
	r, err := health.New(sampler, health.Config{
		Services: []string{"", "example.Orders"}, // both follow load
		Hold:     5 * time.Second,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	srv := grpc.NewServer()
	if err := r.Register(srv); err != nil {
		log.Fatal(err)
	}
	// Registering a second health service is an error, not a crash.
	fmt.Println(r.Register(srv) == health.ErrAlreadyRegistered)

	r.SetStatus("example.Orders", health.NotServing) // e.g. its database is down
	st, _ := r.Status("example.Orders")
	fmt.Println(st)
	// No client or probe has asked this server for its health: nobody to
	// wait for (once one has, BeginDrain returns Config.PropagationDelay).
	fmt.Println("propagation delay:", r.BeginDrain())
	// Output:
	// true
	// NOT_SERVING
	// propagation delay: 0s
}

// Invalid settings are reported with the field and its allowed range.
func ExampleConfig_Validate() {
	err := health.Config{CPUEnter: 0.8, CPUExit: 0.9}.Validate()
	fmt.Println(err)
	// Output:
	// health: CPUExit must be within (0, CPUEnter=0.8) (0 means the default), got 0.9
}

// The guard: the replica set is the headless Service's DNS name (one that
// publishes not-ready addresses) and the replicas' port. With the Manager,
// the peers are reached with insecure credentials when the server is
// WithInsecure (set Peers.DialOptions with TLS otherwise), and the DNS
// lookups are shared with fair-share rebalancing of the same name. (Not
// run: it would look the name up.)
func ExamplePeers() {
	const set = "grpcmgmt-server-peers.grpcmgmt.svc.cluster.local."
	m, err := grpcmgmt.New(grpcmgmt.WithInsecure(),
		grpcmgmt.WithHealth(health.Config{Peers: health.Peers{Name: set, Port: 50051}}),
		grpcmgmt.WithRebalance(goaway.RebalanceConfig{Name: set}))
	if err != nil {
		log.Fatal(err)
	}
	srv := grpc.NewServer(m.ServerOptions()...)
	if err := m.Register(srv); err != nil {
		log.Fatal(err)
	}
	// ... srv.Serve(lis); on SIGTERM: m.Shutdown(ctx)
}

// The guard's defaults, and a replica set it could not reach.
func ExamplePeers_defaults() {
	p := health.Config{Peers: health.Peers{Name: "svc.test.", Port: 50051,
		DialOptions: []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}}}.WithDefaults().Peers
	fmt.Println("re-check delay", p.Delay, "check interval", p.CheckInterval, "DNS interval", p.Interval)
	// Without the port, the guard could not reach the addresses DNS gives.
	fmt.Println(health.Config{Peers: health.Peers{Name: "svc.test."}}.Validate())
	// Output:
	// re-check delay 1s check interval 1s DNS interval 1s
	// health: Peers.Port must be within 1..65535 with Peers.Name (the replicas' gRPC port), got 0
}

// A health signal of your own: overloaded when a work queue is deep,
// recovered when it is short, and the excess as the queue's length over
// the length the replica should have. The Reporter reads it on every
// sample of the shared sampler.
func ExampleConfig_signal() {
	const queue = "queue_length" // a load.Source registered with the sampler
	cfg := health.Config{Signal: func(s load.Snapshot) health.Load {
		q := s.Custom[queue]
		return health.Load{Over: q >= 100, Clear: q < 50, Excess: q / 50, OverAt: 100.0 / 50}
	}}
	l := cfg.Signal(load.Snapshot{Custom: map[string]float64{queue: 150}})
	fmt.Printf("over %v, clear %v, excess %v (overloaded from %v)\n", l.Over, l.Clear, l.Excess, l.OverAt)
	// Output:
	// over true, clear false, excess 3 (overloaded from 2)
}
