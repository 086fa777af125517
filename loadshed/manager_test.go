package loadshed_test

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/grpcmgmt/grpcmgmt"
	"github.com/grpcmgmt/grpcmgmt/internal/replica"
	"github.com/grpcmgmt/grpcmgmt/load"
	"github.com/grpcmgmt/grpcmgmt/loadshed"
)

func serveManager(t *testing.T, m *grpcmgmt.Manager, extra ...grpc.ServerOption) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(append(m.ServerOptions(), extra...)...)
	replica.New(replica.Config{Name: "m"}).Register(srv)
	if err := m.Register(srv); err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = m.Shutdown(ctx)
	})
	return lis.Addr().String()
}

// TestManagerStaticLimit: WithLoadShed plugs the Shedder into the Manager's
// interceptor chain, ahead of the user's own interceptors.
func TestManagerStaticLimit(t *testing.T) {
	m, err := grpcmgmt.New(grpcmgmt.WithInsecure(), grpcmgmt.WithLogger(slog.New(slog.DiscardHandler)),
		grpcmgmt.WithLoadShed(loadshed.Config{MaxInFlight: 1, CPUThreshold: loadshed.Off}))
	if err != nil {
		t.Fatal(err)
	}
	g := newGate()
	c := dial(t, serveManager(t, m, grpc.ChainUnaryInterceptor(g.unary)))
	done := make(chan error, 1)
	go func() {
		_, err := c.EmptyCall(withTest(t.Context(), "block"), &testpb.Empty{})
		done <- err
	}()
	waitUntil(t, 5*time.Second, "one call in the handler", func() bool { return g.cur.Load() == 1 })
	var tr metadata.MD
	_, err = c.EmptyCall(t.Context(), &testpb.Empty{}, grpc.Trailer(&tr))
	if status.Code(err) != codes.Unavailable || len(tr.Get(loadshed.PushbackHeader)) != 1 {
		t.Errorf("second call: %s, trailer %v; want UNAVAILABLE with %s", describe(err), tr, loadshed.PushbackHeader)
	}
	if g.entered.Load() != 1 {
		t.Errorf("the user's interceptor saw %d calls, want 1: the shed call must not reach it", g.entered.Load())
	}
	close(g.release)
	if err := <-done; err != nil {
		t.Fatalf("held call: %s", describe(err))
	}
}

// TestManagerCPU: the Manager hands its shared sampler to the Shedder, so a
// CPU at 100 % sheds every critical call and no health check.
func TestManagerCPU(t *testing.T) {
	m, err := grpcmgmt.New(grpcmgmt.WithInsecure(), grpcmgmt.WithLogger(slog.New(slog.DiscardHandler)),
		grpcmgmt.WithLoad(load.Config{Period: 10 * time.Millisecond, TimeConstant: 10 * time.Millisecond,
			CPU: load.SourceFunc(func() (float64, error) { return 1, nil })}),
		grpcmgmt.WithLoadShed(loadshed.Config{}))
	if err != nil {
		t.Fatal(err)
	}
	addr := serveManager(t, m)
	waitUntil(t, 5*time.Second, "CPU sample", func() bool { return m.Load().Snapshot().CPU == 1 })
	c := dial(t, addr)
	for i := 0; i < 20; i++ {
		_, err := c.EmptyCall(t.Context(), &testpb.Empty{})
		if status.Code(err) != codes.Unavailable || !strings.Contains(status.Convert(err).Message(), "CPU") {
			t.Fatalf("call at 100%% CPU: %s, want UNAVAILABLE naming the CPU limit", describe(err))
		}
	}
	// Exemption is by method name: a health call reaches the health
	// service (which the Manager registers) and is answered, not shed.
	err = dialConn(t, addr).Invoke(t.Context(), "/grpc.health.v1.Health/Check", &healthpb.HealthCheckRequest{}, &healthpb.HealthCheckResponse{})
	if err != nil {
		t.Errorf("health check at 100%% CPU: %s, want an answer (not shed)", describe(err))
	}
}

func TestManagerInvalidConfig(t *testing.T) {
	_, err := grpcmgmt.New(grpcmgmt.WithLoadShed(loadshed.Config{MaxInFlight: -3}))
	if err == nil || !strings.Contains(err.Error(), "MaxInFlight") {
		t.Fatalf("New with MaxInFlight -3: %v, want an error naming MaxInFlight", err)
	}
}
