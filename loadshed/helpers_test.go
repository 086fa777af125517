package loadshed_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/grpcmgmt/grpcmgmt/internal/replica"
	"github.com/grpcmgmt/grpcmgmt/loadshed"
)

// serve starts a real server on 127.0.0.1:0 with svc and the health
// service, and stops it when the test ends.
func serve(t *testing.T, svc *replica.Service, opts ...grpc.ServerOption) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(opts...)
	svc.Register(srv)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

func dial(t *testing.T, target string, opts ...grpc.DialOption) testgrpc.TestServiceClient {
	t.Helper()
	cc := dialConn(t, target, opts...)
	return testgrpc.NewTestServiceClient(cc)
}

func dialConn(t *testing.T, target string, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	opts = append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)
	cc, err := grpc.NewClient(target, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// newShedder builds a Shedder whose metrics go to a ManualReader that the
// metric helpers read (unless cfg has a MeterProvider).
func newShedder(t *testing.T, cfg loadshed.Config) *loadshed.Shedder {
	t.Helper()
	var reader *sdkmetric.ManualReader
	if cfg.MeterProvider == nil {
		reader = sdkmetric.NewManualReader()
		cfg.MeterProvider = sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
		if os.Getenv("LOADSHED_DEBUG") != "" {
			cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
		}
	}
	s, err := loadshed.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if reader != nil {
		readers.Store(s, reader)
	}
	t.Cleanup(func() {
		_ = s.Close()
		readers.Delete(s)
	})
	return s
}

var readers sync.Map // *loadshed.Shedder -> *sdkmetric.ManualReader

// metricPoints collects s's metrics and returns the int64 points of the
// named instrument.
func metricPoints(t *testing.T, s *loadshed.Shedder, name string) []metricdata.DataPoint[int64] {
	t.Helper()
	r, ok := readers.Load(s)
	if !ok {
		t.Fatal("shedder has no test reader")
	}
	var rm metricdata.ResourceMetrics
	if err := r.(*sdkmetric.ManualReader).Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != "github.com/grpcmgmt/grpcmgmt/loadshed" {
			continue
		}
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				return d.DataPoints
			case metricdata.Gauge[int64]:
				return d.DataPoints
			}
		}
	}
	return nil
}

// metricSum adds up the points of the named instrument whose attributes
// include every key=value in match.
func metricSum(t *testing.T, s *loadshed.Shedder, name string, match ...string) int64 {
	t.Helper()
	var sum int64
	for _, p := range metricPoints(t, s, name) {
		ok := true
		for i := 0; i+1 < len(match); i += 2 {
			if v, found := p.Attributes.Value(attribute.Key(match[i])); !found || v.AsString() != match[i+1] {
				ok = false
			}
		}
		if ok {
			sum += p.Value
		}
	}
	return sum
}

// shedOpts installs s the way a user would: tap handle and interceptors,
// with extra unary interceptors around (before) and inside (after) it.
func shedOpts(s *loadshed.Shedder, outer, inner []grpc.UnaryServerInterceptor) []grpc.ServerOption {
	chain := append(append(append([]grpc.UnaryServerInterceptor{}, outer...), s.UnaryServerInterceptor()), inner...)
	return []grpc.ServerOption{
		grpc.InTapHandle(s.TapHandle()),
		grpc.ChainUnaryInterceptor(chain...),
		grpc.ChainStreamInterceptor(s.StreamServerInterceptor()),
	}
}

// testKey is the request metadata key the inner test interceptor obeys:
// "block" waits for the gate (or the call's end), "panic" panics.
const testKey = "x-test"

// gate is an interceptor placed inside the Shedder that observes how many
// handlers run at once.
type gate struct {
	cur, peak atomic.Int64
	entered   atomic.Int64
	release   chan struct{}
}

func newGate() *gate { return &gate{release: make(chan struct{})} }

func (g *gate) unary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	n := g.cur.Add(1)
	defer g.cur.Add(-1)
	g.entered.Add(1)
	for {
		p := g.peak.Load()
		if n <= p || g.peak.CompareAndSwap(p, n) {
			break
		}
	}
	if v := metadata.ValueFromIncomingContext(ctx, testKey); len(v) > 0 {
		switch v[0] {
		case "panic":
			panic("handler panics on purpose")
		case "block":
			select {
			case <-g.release:
			case <-ctx.Done():
				return nil, status.FromContextError(ctx.Err()).Err()
			}
		}
	}
	return h(ctx, req)
}

// recoverUnary turns a panic into codes.Internal so the server survives.
func recoverUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (resp any, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = status.Errorf(codes.Internal, "recovered: %v", r)
		}
	}()
	return h(ctx, req)
}

// waitUntil polls cond until it holds or d passes.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func withTest(ctx context.Context, v string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, testKey, v)
}

func withPriority(ctx context.Context, p loadshed.Priority) context.Context {
	return metadata.AppendToOutgoingContext(ctx, loadshed.DefaultPriorityHeader, p.String())
}

func describe(err error) string {
	st := status.Convert(err)
	return fmt.Sprintf("%v: %s", st.Code(), st.Message())
}

// shedCount reads the Shedder's shed counter through OpenTelemetry, as an
// operator would.
func shedCount(t *testing.T, s *loadshed.Shedder) int64 {
	t.Helper()
	return metricSum(t, s, "grpcmgmt.loadshed.shed")
}
