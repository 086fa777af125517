package orca_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"

	"github.com/grpcmgmt/grpcmgmt"
	"github.com/grpcmgmt/grpcmgmt/internal/replica"
	"github.com/grpcmgmt/grpcmgmt/load"
	"github.com/grpcmgmt/grpcmgmt/orca"
)

// The Reporter's own per-call work: the calls-in-flight integral and the
// recorder lookup (no recorder in this context, so no report is built).
func BenchmarkUnaryInterceptor(b *testing.B) {
	s, err := load.NewSampler(load.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	// With the OpenTelemetry SDK, as in production.
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	defer mp.Shutdown(context.Background())
	r, err := orca.New(s, orca.Config{Capacity: 64}, orca.WithLogger(slog.New(slog.DiscardHandler)), orca.WithMeterProvider(mp))
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	ic := r.UnaryServerInterceptor()
	info := &grpc.UnaryServerInfo{FullMethod: "/x/y"}
	h := func(context.Context, any) (any, error) { return nil, nil }
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			_, _ = ic(ctx, nil, info, h)
		}
	})

}

// What grpc-go asks of the provider once per report: a copy of the latest
// snapshot.
func BenchmarkServerMetrics(b *testing.B) {
	s, err := load.NewSampler(load.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	r, err := orca.New(s, orca.Config{}, orca.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	b.ReportAllocs()
	for b.Loop() {
		sink = r.ServerMetrics()
	}
}

// A unary call over loopback, 1 KiB response, with the Manager's defaults
// with and without ORCA: the whole cost of a per-call report (recorder,
// snapshot copy, marshal, trailer) as grpc-go and this package pay it.
func BenchmarkUnaryRoundTrip(b *testing.B) {
	for _, leg := range []struct {
		name string
		opts []grpcmgmt.Option
	}{
		{"orca=off", []grpcmgmt.Option{grpcmgmt.Without("orca")}},
		{"orca=on", []grpcmgmt.Option{grpcmgmt.WithORCA(orca.Config{Capacity: 64})}},
	} {
		b.Run(leg.name, func(b *testing.B) {
			opts := append([]grpcmgmt.Option{grpcmgmt.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))}, leg.opts...)
			m, err := grpcmgmt.New(append([]grpcmgmt.Option{grpcmgmt.WithInsecure()}, opts...)...)
			if err != nil {
				b.Fatal(err)
			}
			srv := grpc.NewServer(m.ServerOptions()...)
			replica.New(replica.Config{Name: "r"}).Register(srv)
			if err := m.Register(srv); err != nil {
				b.Fatal(err)
			}
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			go func() { _ = srv.Serve(lis) }()
			defer func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = m.Shutdown(ctx)
			}()
			cc, err := grpc.NewClient("passthrough:///"+lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				b.Fatal(err)
			}
			defer cc.Close()
			c := testgrpc.NewTestServiceClient(cc)
			req := &testgrpc.SimpleRequest{ResponseSize: 1024}
			b.ReportAllocs()
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := c.UnaryCall(context.Background(), req); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

var sink any
