package goaway_test

import (
	"context"
	"net"
	"runtime"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"

	"github.com/grpcmgmt/grpcmgmt/goaway"
	"github.com/grpcmgmt/grpcmgmt/internal/replica"
)

// TestIdleConnectionMemory: grpc-go (1.81+) reads a plain TCP connection
// only when it is readable, into a pooled buffer, so an idle connection
// pins no 32 KiB read buffer. The wrapper must keep that: idle connections
// through it cost about what they cost on a bare server, not 32 KiB more
// each.
func TestIdleConnectionMemory(t *testing.T) {
	const conns = 200
	bare := idleHeap(t, conns, nil)
	tr, err := goaway.NewTracker(goaway.Config{})
	if err != nil {
		t.Fatal(err)
	}
	wrapped := idleHeap(t, conns, tr.WrapCredentials(insecure.NewCredentials()))
	perConn := (float64(wrapped) - float64(bare)) / conns
	t.Logf("heap with %d idle connections: bare %d KiB, wrapped %d KiB (%+.1f KiB per connection)",
		conns, bare>>10, wrapped>>10, perConn/1024)
	if perConn > 8<<10 {
		t.Fatalf("each idle connection through the wrapper costs %.1f KiB more than on a bare server, want < 8 KiB (a pinned read buffer is 32 KiB)", perConn/1024)
	}
}

// idleHeap starts a server (bare when creds is nil), opens n connections
// that each make one call and then stay idle, and returns the live heap.
func idleHeap(t *testing.T, n int, creds credentials.TransportCredentials) uint64 {
	t.Helper()
	var opts []grpc.ServerOption
	if creds != nil {
		opts = append(opts, grpc.Creds(creds))
	}
	srv := grpc.NewServer(opts...)
	replica.New(replica.Config{Name: "idle"}).Register(srv)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.Serve(lis) }()
	defer func() { srv.Stop(); <-served }()
	ccs := make([]*grpc.ClientConn, n)
	for i := range ccs {
		cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err = testgrpc.NewTestServiceClient(cc).EmptyCall(ctx, &testgrpc.Empty{})
		cancel()
		if err != nil {
			t.Fatalf("call on connection %d: %v", i, err)
		}
		ccs[i] = cc
	}
	var ms runtime.MemStats
	for range 3 { // pooled buffers are freed over two cycles
		runtime.GC()
	}
	runtime.ReadMemStats(&ms)
	runtime.KeepAlive(ccs)
	return ms.HeapAlloc
}
