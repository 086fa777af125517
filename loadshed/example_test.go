package loadshed_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"math"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"

	"github.com/grpcmgmt/grpcmgmt/clientconfig"
	"github.com/grpcmgmt/grpcmgmt/internal/replica"
	"github.com/grpcmgmt/grpcmgmt/loadshed"
)

// holdFirst holds the first call in its handler until release is closed, so
// the examples can show a replica at its limit.
func holdFirst(entered chan<- struct{}, release <-chan struct{}) grpc.UnaryServerInterceptor {
	first := make(chan struct{}, 1)
	first <- struct{}{}
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		select {
		case <-first:
			close(entered)
			<-release
		default:
		}
		return h(ctx, req)
	}
}

// exampleServer serves a replica named name behind a Shedder with limit 1
// whose first call is held until release is closed.
func exampleServer(name string, entered chan<- struct{}, release <-chan struct{}) (addr string, stop func()) {
	s, err := loadshed.New(loadshed.Config{MaxInFlight: 1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		log.Fatal(err)
	}
	srv := grpc.NewServer(
		grpc.InTapHandle(s.TapHandle()),
		grpc.ChainUnaryInterceptor(s.UnaryServerInterceptor(), holdFirst(entered, release)),
		grpc.ChainStreamInterceptor(s.StreamServerInterceptor()),
	)
	replica.New(replica.Config{Name: name}).Register(srv)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	return lis.Addr().String(), func() { srv.Stop(); _ = s.Close() }
}

// A Shedder installed with its tap handle and interceptors. With one call
// in flight at the limit of 1, the next call is shed with UNAVAILABLE and
// the retry pushback trailer.
func Example() {
	entered, release := make(chan struct{}), make(chan struct{})
	addr, stop := exampleServer("a", entered, release)
	defer stop()

	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	defer cc.Close()
	c := testpb.NewTestServiceClient(cc)
	held := make(chan error)
	go func() { _, err := c.EmptyCall(context.Background(), &testpb.Empty{}); held <- err }()
	<-entered

	var trailer metadata.MD
	_, err = c.EmptyCall(context.Background(), &testpb.Empty{}, grpc.Trailer(&trailer))
	fmt.Println(status.Code(err), trailer.Get(loadshed.PushbackHeader))
	close(release)
	fmt.Println("held call:", status.Code(<-held))
	// Output:
	// Unavailable [10]
	// held call: OK
}

// A client with clientconfig.RoundRobin, over two replicas of which one is at
// its limit: every call succeeds, on the other replica.
func Example_clientServiceConfig() {
	entered, release := make(chan struct{}), make(chan struct{})
	addrA, stopA := exampleServer("a", entered, release)
	defer stopA()
	open := make(chan struct{})
	close(open)
	addrB, stopB := exampleServer("b", make(chan struct{}), open) // holds nothing
	defer stopB()

	// Hold replica a at its limit.
	ccA, err := grpc.NewClient(addrA, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	defer ccA.Close()
	held := make(chan error)
	go func() {
		_, err := testpb.NewTestServiceClient(ccA).EmptyCall(context.Background(), &testpb.Empty{})
		held <- err
	}()
	<-entered

	// A real client would resolve a DNS name; a manual resolver stands in.
	r := manual.NewBuilderWithScheme("example")
	r.InitialState(resolver.State{Addresses: []resolver.Address{{Addr: addrA}, {Addr: addrB}}})
	cc, err := grpc.NewClient(r.Scheme()+":///replicas",
		grpc.WithResolvers(r),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(clientconfig.RoundRobin))
	if err != nil {
		log.Fatal(err)
	}
	defer cc.Close()
	c := testpb.NewTestServiceClient(cc)
	served := map[string]int{}
	for i := 0; i < 10; i++ {
		resp, err := c.UnaryCall(context.Background(), &testpb.SimpleRequest{})
		if err != nil {
			fmt.Println("failed:", err)
			continue
		}
		served[resp.GetServerId()]++
	}
	fmt.Println("served:", served)
	close(release)
	<-held
	// Output:
	// served: map[b:10]
}

// Validation errors name the field and its allowed range; NaN is refused.
func ExampleConfig_Validate() {
	fmt.Println(loadshed.Config{QueueingThreshold: math.NaN()}.Validate())
	fmt.Println(loadshed.Config{Adaptive: &loadshed.AdaptiveConfig{MinLimit: 0, MaxLimit: 0, Tolerance: 3}}.Validate())
	// Output:
	// loadshed: QueueingThreshold must be within 0.05..0.99 or loadshed.Off (0 means 0.75), got NaN
	// loadshed: Adaptive.Tolerance must be within 0.01..2 (0 means the default), got 3
}

// A server reads no priority header unless it names one: a header is the
// client's own claim. One that trusts its clients to rank their calls sets
// PriorityHeader, and its clients send, say, "grpcmgmt-criticality:
// sheddable" on batch calls.
func ExampleConfig_ReadsHeader() {
	fmt.Println(loadshed.Config{}.ReadsHeader())
	fmt.Println(loadshed.Config{PriorityHeader: loadshed.DefaultPriorityHeader}.ReadsHeader())
	// Output:
	// false
	// true
}
