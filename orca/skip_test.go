package orca_test

import (
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	testgrpc "google.golang.org/grpc/interop/grpc_testing"

	"github.com/grpcmgmt/grpcmgmt"
	"github.com/grpcmgmt/grpcmgmt/internal/replica"
	"github.com/grpcmgmt/grpcmgmt/load"
	"github.com/grpcmgmt/grpcmgmt/orca"
)

// skipPeriod is the sampler period and the per-call interval of the tests
// below: every sample starts an interval.
const skipPeriod = 150 * time.Millisecond

// startSkipping starts a Manager-built server whose intervals are one
// sample long, and returns it with a function that waits for the next
// sample (and so the start of the next interval).
func startSkipping(t *testing.T) (*server, func()) {
	t.Helper()
	rs := replica.New(replica.Config{Name: "r"})
	s := startServer(t, "127.0.0.1", rs.Register, []grpcmgmt.Option{
		grpcmgmt.WithLoad(load.Config{Period: skipPeriod}),
		grpcmgmt.WithORCA(orca.Config{PerCallInterval: skipPeriod}),
	})
	var n atomic.Int64
	samples := make(chan struct{}, 1)
	t.Cleanup(s.m.Load().OnSample(func(load.Snapshot) { // after the Reporter's
		n.Add(1)
		select {
		case samples <- struct{}{}:
		default:
		}
	}))
	next := func() {
		t.Helper()
		for k := n.Load(); n.Load() <= k; {
			select {
			case <-samples:
			case <-time.After(10 * time.Second):
				t.Fatal("no sample within 10s")
			}
		}
	}
	return s, next
}

// Once every connection has had its report in an interval, the Manager's
// Reporter skips the connection lookup (orca.WithConnections with its
// goaway.Tracker). A connection that opens then still has its first call
// report, and every connection reports in every interval. Without the
// Tracker's generation in the rule, the new connection's call would
// skip: the connections counted at the interval's start have all
// reported.
func TestPerCallNewConnectionWhileSkipping(t *testing.T) {
	s, next := startSkipping(t)
	var clients []testgrpc.TestServiceClient
	for i := range 6 {
		next()
		for j, c := range clients {
			if callReport(t, c) == nil {
				t.Fatalf("interval %d: connection %d's first call carried no report", i+1, j)
			}
		}
		c := dial(t, s.addr)
		if callReport(t, c) == nil {
			t.Fatalf("interval %d: a connection opened after the %d others reported: its first call carried no report", i+1, len(clients))
		}
		clients = append(clients, c)
	}
}

// A server that also serves calls through grpc.Server.ServeHTTP (each with
// a peer of its own, on no connection the Tracker wraps) sends a report on
// every such call, and its tracked connections still get theirs in every
// interval, before the Tracker's Audit has seen the untracked calls and
// after.
func TestPerCallServeHTTPAlongside(t *testing.T) {
	s, next := startSkipping(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: s.srv, Protocols: new(http.Protocols)}
	hs.Protocols.SetUnencryptedHTTP2(true)
	go func() { _ = hs.Serve(lis) }()
	t.Cleanup(func() { _ = hs.Close() })

	tracked, viaHTTP := dial(t, s.addr), dial(t, lis.Addr().String())
	if callReport(t, tracked) == nil {
		t.Fatal("the tracked connection's first call carried no report")
	}
	for i := range 6 {
		// The ServeHTTP call first: its report must not stand in for
		// the tracked connection's (one report, one connection counted).
		next()
		for k := range 2 {
			if callReport(t, viaHTTP) == nil {
				t.Fatalf("interval %d: ServeHTTP call %d carried no report, want one on each", i+1, k+1)
			}
		}
		if callReport(t, tracked) == nil {
			t.Fatalf("interval %d: the tracked connection's first call carried no report", i+1)
		}
	}
}
