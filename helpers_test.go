package grpcmgmt_test

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/stats"

	"github.com/grpcmgmt/grpcmgmt"
	"github.com/grpcmgmt/grpcmgmt/goaway"
	"github.com/grpcmgmt/grpcmgmt/health"
	"github.com/grpcmgmt/grpcmgmt/internal/replica"
)

// connCounter is a stats.Handler that counts connections the server saw
// begin and end.
type connCounter struct {
	began, ended atomic.Int64
}

func (c *connCounter) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (c *connCounter) HandleRPC(context.Context, stats.RPCStats)                       {}
func (c *connCounter) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}
func (c *connCounter) HandleConn(_ context.Context, s stats.ConnStats) {
	switch s.(type) {
	case *stats.ConnBegin:
		c.began.Add(1)
	case *stats.ConnEnd:
		c.ended.Add(1)
	}
}

// testOptions come first in every test's Manager: plaintext (loopback
// tests; the TLS tests build their own), logs discarded, a short
// lame-duck propagation delay so Shutdown does not wait the production
// default, and the load-triggered levers off: the test process itself can
// run its CPU over their thresholds (-race, parallel packages), and a
// GOAWAY or health flip for load would be a different test's subject.
func testOptions(opts ...grpcmgmt.Option) []grpcmgmt.Option {
	return append([]grpcmgmt.Option{
		grpcmgmt.WithInsecure(),
		grpcmgmt.WithLogger(slog.New(slog.DiscardHandler)),
		grpcmgmt.WithHealth(health.Config{PropagationDelay: 50 * time.Millisecond, DisableLoad: true}),
		grpcmgmt.WithGoAway(goaway.Config{}, goaway.PolicyConfig{Off: true}),
	}, opts...)
}

// server is a replica served with a Manager on 127.0.0.1:0.
type server struct {
	m     *grpcmgmt.Manager
	srv   *grpc.Server
	addr  string
	conns *connCounter
	wg    sync.WaitGroup
}

// startServer starts a replica with the Manager built from opts. It fails
// the test if New fails. Cleanup shuts the Manager down.
func startServer(t *testing.T, opts ...grpcmgmt.Option) *server {
	t.Helper()
	m, err := grpcmgmt.New(testOptions(opts...)...)
	if err != nil {
		t.Fatalf("grpcmgmt.New: %v", err)
	}
	s := &server{m: m, conns: &connCounter{}}
	s.srv = grpc.NewServer(append(m.ServerOptions(), grpc.StatsHandler(s.conns))...)
	replica.New(replica.Config{Name: "r1"}).Register(s.srv)
	if err := m.Register(s.srv); err != nil {
		t.Fatalf("Register: %v", err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = lis.Addr().String()
	s.wg.Add(1)
	go func() { defer s.wg.Done(); _ = s.srv.Serve(lis) }()
	t.Cleanup(func() {
		_ = m.Shutdown(context.Background())
		s.wg.Wait()
	})
	return s
}

func dial(t *testing.T, addr string, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(addr, append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// serve serves srv on 127.0.0.1:0 until the test ends and returns its address.
func serve(t *testing.T, srv *grpc.Server) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	replica.New(replica.Config{Name: "r"}).Register(srv)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(lis) }()
	t.Cleanup(func() { srv.Stop(); <-done })
	return lis.Addr().String()
}
