package goaway_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"

	"github.com/grpcmgmt/grpcmgmt/goaway"
	"github.com/grpcmgmt/grpcmgmt/internal/replica"
)

// A server whose credentials are wrapped by a Tracker can send a GOAWAY to
// any one of its connections. The client finishes what it started, opens a
// new connection for its next call, and never sees an error.
func Example() {
	tracker, err := goaway.NewTracker(goaway.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		log.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	// Wrap the credentials you would pass to grpc.Creds anyway (TLS, mTLS
	// or insecure).
	srv := grpc.NewServer(grpc.Creds(tracker.WrapCredentials(insecure.NewCredentials())))
	replica.New(replica.Config{Name: "r1"}).Register(srv)
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()

	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	defer cc.Close()
	client := testgrpc.NewTestServiceClient(cc)
	if _, err := client.EmptyCall(context.Background(), &testgrpc.Empty{}); err != nil {
		log.Fatal(err)
	}

	conns := tracker.Conns()
	fmt.Printf("connections: %d, calls on the first: %d\n", len(conns), conns[0].Calls)
	fmt.Println("GOAWAY sent:", tracker.GoAway(conns[0].ID, goaway.ReasonManual))
	fmt.Println("again:", tracker.GoAway(conns[0].ID, goaway.ReasonManual))
	// Output:
	// connections: 1, calls on the first: 1
	// GOAWAY sent: true
	// again: false
}

// The load policy's defaults: what a zero PolicyConfig means.
func ExamplePolicyConfig_WithDefaults() {
	c := goaway.PolicyConfig{}.WithDefaults()
	fmt.Printf("enter at CPU %.2f, exit at %.2f, %.0f%% of connections every %v, %v, older than %v, cooldown %v\n",
		c.CPUEnter, c.CPUExit, c.Fraction*100, c.Interval, c.Selector, c.MinAge, c.Cooldown)
	// Output:
	// enter at CPU 0.90, exit at 0.75, 10% of connections every 1s, busiest_first, older than 5s, cooldown 10s
}

// Sending a GOAWAY to a bounded number of connections, the oldest first,
// for example to rebalance after a scale-out.
func ExampleTracker_GoAwayN() {
	tracker, err := goaway.NewTracker(goaway.Config{})
	if err != nil {
		log.Fatal(err)
	}
	// With no connection yet, nothing is sent.
	fmt.Println(tracker.GoAwayN(2, goaway.OldestFirst, goaway.ReasonRebalance))
	// Output: 0
}

// A handler of a long-lived stream ends it cleanly when its connection is
// sent a GOAWAY, so the client resumes on a new connection instead of
// having the stream cut at the end of the grace. Here the replica's
// StreamingOutputCall does that; the client sees the stream end with OK
// long before the 1000 responses it asked for.
func ExampleDraining() {
	tracker, err := goaway.NewTracker(goaway.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		log.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(tracker.WrapCredentials(insecure.NewCredentials())),
		grpc.StreamInterceptor(tracker.StreamServerInterceptor()))
	replica.New(replica.Config{Name: "r1"}).Register(srv) // its feed selects on goaway.Draining
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()

	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	defer cc.Close()
	req := &testgrpc.StreamingOutputCallRequest{}
	for range 1000 {
		req.ResponseParameters = append(req.ResponseParameters, &testgrpc.ResponseParameters{IntervalUs: 1000})
	}
	stream, err := testgrpc.NewTestServiceClient(cc).StreamingOutputCall(context.Background(), req)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		log.Fatal(err)
	}
	tracker.GoAwayAll(goaway.ReasonRebalance) // or max age, load, shutdown...
	got := 1
	for {
		if _, err := stream.Recv(); err != nil {
			fmt.Println("stream ended:", err, "- before all 1000:", got < 1000)
			break
		}
		got++
	}
	// Output: stream ended: EOF - before all 1000: true
}
