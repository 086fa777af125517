package grpcmgmt_test

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/grpcmgmt/grpcmgmt"
	"github.com/grpcmgmt/grpcmgmt/internal/replica"
	"github.com/grpcmgmt/grpcmgmt/load"
	"github.com/grpcmgmt/grpcmgmt/loadshed"
)

// serveReplica starts a Manager and a real server with the replica service
// on loopback, and a real client to it. Everything stops at the end of the
// test.
func serveReplica(t *testing.T, cfg replica.Config, opts ...grpcmgmt.Option) (*grpcmgmt.Manager, testgrpc.TestServiceClient) {
	t.Helper()
	m, conn := serveReplicaConn(t, cfg, opts...)
	return m, testgrpc.NewTestServiceClient(conn)
}

// serveReplicaConn is serveReplica returning the client's connection.
func serveReplicaConn(t *testing.T, cfg replica.Config, opts ...grpcmgmt.Option) (*grpcmgmt.Manager, *grpc.ClientConn) {
	t.Helper()
	opts = testOptions(opts...)
	m, err := grpcmgmt.New(append([]grpcmgmt.Option{grpcmgmt.WithInsecure()}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(m.ServerOptions()...)
	replica.New(cfg).Register(srv)
	if err := m.Register(srv); err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.Serve(lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := m.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		<-served
	})
	return m, conn
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestCallCounter drives unary and streaming calls through a real server
// and checks what the shared sampler sees: calls in flight while they run
// and none after, every call counted in QPS, and exactly the failures that
// point at the server counted in EPS (not the caller's own mistakes or
// cancellations). With the shedder on, the shedder counts the unary calls
// in the sampler's counter itself (loadshed.Config.SharedCount): the
// sampler sees the same, and the shedder's in-flight figure is that count.
func TestCallCounter(t *testing.T) {
	t.Run("without shedder", func(t *testing.T) { testCallCounter(t, false) })
	t.Run("with shedder", func(t *testing.T) { testCallCounter(t, true) })
}

func testCallCounter(t *testing.T, shed bool) {
	reader := metric.NewManualReader()
	mp := metric.NewMeterProvider(metric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	opts := []grpcmgmt.Option{grpcmgmt.WithMeterProvider(mp), grpcmgmt.WithLoad(load.Config{Period: 20 * time.Millisecond})}
	if shed {
		opts = append(opts, grpcmgmt.WithLoadShed(loadshed.Config{MaxInFlight: 100, CPUThreshold: loadshed.Off, QueueingThreshold: loadshed.Off}))
	}
	m, client := serveReplica(t, replica.Config{Name: "r1", Work: 300 * time.Millisecond}, opts...)
	calls := m.Load().Calls()
	ctx := context.Background()

	// A unary call is in flight while its handler burns CPU.
	done := make(chan error, 1)
	go func() {
		_, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{})
		done <- err
	}()
	waitUntil(t, "the unary call in flight", func() bool { return calls.InFlight() == 1 })
	if shed {
		if got := upDownSum(t, reader, "github.com/grpcmgmt/grpcmgmt/loadshed", "grpcmgmt.loadshed.in_flight"); got != 1 {
			t.Errorf("grpcmgmt.loadshed.in_flight = %d with one unary call in flight, want 1", got)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("UnaryCall: %v", err)
	}
	if got := calls.InFlight(); got != 0 {
		t.Errorf("InFlight after the unary call returned = %d, want 0", got)
	}

	// Failures: Internal and Unavailable count towards EPS; InvalidArgument
	// (the caller's fault) does not.
	fail := func(c codes.Code) {
		_, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{ResponseStatus: &testgrpc.EchoStatus{Code: int32(c)}})
		if status.Code(err) != c {
			t.Fatalf("UnaryCall asking for %v: %v", c, err)
		}
	}
	for range 3 {
		fail(codes.Internal)
	}
	fail(codes.Unavailable)
	fail(codes.InvalidArgument)
	fail(codes.InvalidArgument)

	// A stream is in flight from its first message to its end.
	stream, err := client.FullDuplexCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&testgrpc.StreamingOutputCallRequest{ResponseParameters: []*testgrpc.ResponseParameters{{Size: 10}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	if got := calls.InFlight(); got != 1 {
		t.Errorf("InFlight with a stream open = %d, want 1", got)
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("stream end: %v, want EOF", err)
	}
	waitUntil(t, "the stream to end on the server", func() bool { return calls.InFlight() == 0 })

	// A stream the client cancels ends too, and is not a server error.
	sctx, cancel := context.WithCancel(ctx)
	stream, err = client.FullDuplexCall(sctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&testgrpc.StreamingOutputCallRequest{ResponseParameters: []*testgrpc.ResponseParameters{{Size: 1}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	cancel()
	waitUntil(t, "the cancelled stream to end on the server", func() bool { return calls.InFlight() == 0 })

	if got, want := calls.Started(), uint64(1+6+2); got != want {
		t.Errorf("Started = %d, want %d", got, want)
	}
	if got, want := calls.Failed(), uint64(4); got != want {
		t.Errorf("Failed = %d, want %d (3 Internal + 1 Unavailable)", got, want)
	}

	// The sampler turns the counts into rates, and the Manager's meter
	// provider exports them.
	waitUntil(t, "a sample with EPS and QPS", func() bool {
		sn := m.Load().Snapshot()
		return sn.EPS > 0 && sn.QPS > 0 && sn.InFlight == 0
	})
	got := gauges(t, reader, "github.com/grpcmgmt/grpcmgmt/load")
	for _, name := range []string{"grpcmgmt.load.qps", "grpcmgmt.load.eps", "grpcmgmt.load.cpu", "grpcmgmt.load.memory"} {
		if got[name] <= 0 {
			t.Errorf("gauge %s = %v through WithMeterProvider, want > 0 (all: %v)", name, got[name], got)
		}
	}
	if v, ok := got["grpcmgmt.load.inflight"]; !ok || v != 0 {
		t.Errorf("gauge grpcmgmt.load.inflight = %v (present %v), want 0", v, ok)
	}
}

// upDownSum returns the value of the integer up-down counter name of one
// instrumentation scope from reader (summed over its attributes).
func upDownSum(t *testing.T, reader *metric.ManualReader, scope, name string) int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var sum int64
	for _, sm := range rm.ScopeMetrics {
		for _, mt := range sm.Metrics {
			if d, ok := mt.Data.(metricdata.Sum[int64]); ok && sm.Scope.Name == scope && mt.Name == name {
				for _, p := range d.DataPoints {
					sum += p.Value
				}
			}
		}
	}
	return sum
}

// gauges collects the float and integer gauges of one instrumentation scope
// (a package's meter, e.g. github.com/grpcmgmt/grpcmgmt/load) from reader by
// name.
func gauges(t *testing.T, reader *metric.ManualReader, scope string) map[string]float64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != scope {
			continue
		}
		for _, mt := range sm.Metrics {
			switch d := mt.Data.(type) {
			case metricdata.Gauge[float64]:
				for _, p := range d.DataPoints {
					out[mt.Name] = p.Value
				}
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					out[mt.Name] = float64(p.Value)
				}
			}
		}
	}
	return out
}

// TestWithLoadInvalid: New reports the sampler's validation error.
func TestWithLoadInvalid(t *testing.T) {
	_, err := grpcmgmt.New(grpcmgmt.WithLoad(load.Config{Period: time.Nanosecond}))
	if err == nil || err.Error() != "load: Period must be within 10ms..10s, got 1ns" {
		t.Fatalf("New with Period 1ns: %v", err)
	}
}

// A health-checking client's Watch stream, open for as long as its
// connection, is not load: it is not counted as a call (in flight or
// started). A probe's Check is an ordinary unary call (with the shedder
// on, one exempt from it: counted, untimed, in the sampler's counter).
func TestCallCounterSkipsHealth(t *testing.T) {
	t.Run("without shedder", func(t *testing.T) { testCallCounterSkipsHealth(t) })
	t.Run("with shedder", func(t *testing.T) {
		testCallCounterSkipsHealth(t, grpcmgmt.WithLoadShed(loadshed.Config{MaxInFlight: 1}))
	})
	t.Run("with the default shedder", func(t *testing.T) { // CPU and queueing limits: no count compared
		testCallCounterSkipsHealth(t, grpcmgmt.WithLoadShed(loadshed.Config{}))
	})
}

func testCallCounterSkipsHealth(t *testing.T, opts ...grpcmgmt.Option) {
	m, conn := serveReplicaConn(t, replica.Config{Name: "r1"}, opts...)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := m.Load().Calls()
	if _, err := testgrpc.NewTestServiceClient(conn).EmptyCall(ctx, &testgrpc.Empty{}); err != nil {
		t.Fatal(err)
	}
	hc := healthpb.NewHealthClient(conn)
	w, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Recv(); err != nil {
		t.Fatal(err)
	}
	if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	if got := calls.InFlight(); got != 0 {
		t.Errorf("InFlight with a health Watch stream open = %d, want 0", got)
	}
	if got := calls.Started(); got != 2 {
		t.Errorf("Started = %d after one EmptyCall, a Watch and a Check, want 2 (the Watch not counted)", got)
	}
}
