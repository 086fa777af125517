package grpcmgmt_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"google.golang.org/grpc"
	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/grpcmgmt/grpcmgmt"
)

// Shutdown lets a call in flight finish, stops the registered server, and
// leaves no goroutine behind (checked by leakcheck in TestMain).
func TestShutdownFinishesInFlightCallsAndStopsServer(t *testing.T) {
	m, err := grpcmgmt.New(testOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(m.ServerOptions()...)
	if err := m.Register(srv); err != nil {
		t.Fatal(err)
	}
	addr := serve(t, srv)
	client := testpb.NewTestServiceClient(dial(t, addr))
	if _, err := client.EmptyCall(context.Background(), &testpb.Empty{}); err != nil {
		t.Fatal(err)
	}

	// A slow call in flight while Shutdown runs: use a stream that we end
	// after Shutdown has begun.
	stream, err := client.FullDuplexCall(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Header(); err != nil {
		t.Fatal(err)
	}
	shutdownDone := make(chan error, 1)
	go func() { shutdownDone <- m.Shutdown(context.Background()) }()

	// The stream still works while the server drains.
	if err := stream.Send(&testpb.StreamingOutputCallRequest{ResponseParameters: []*testpb.ResponseParameters{{Size: 10}}}); err != nil {
		t.Fatalf("send during drain: %v", err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatalf("recv during drain: %v", err)
	}
	select {
	case err := <-shutdownDone:
		t.Fatalf("Shutdown returned (%v) while a call was in flight", err)
	default:
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err == nil {
		t.Fatal("stream did not end")
	}
	select {
	case err := <-shutdownDone:
		if err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown did not return after the last call ended")
	}
	if err := m.Register(grpc.NewServer()); !errors.Is(err, grpcmgmt.ErrShutdown) {
		t.Errorf("Register after Shutdown = %v, want ErrShutdown", err)
	}
	// Idempotent.
	if err := m.Shutdown(context.Background()); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
}

// When the context ends before calls finish, Shutdown stops the server hard
// and returns the context's error.
func TestShutdownStopsHardWhenContextEnds(t *testing.T) {
	m, err := grpcmgmt.New(testOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(m.ServerOptions()...)
	if err := m.Register(srv); err != nil {
		t.Fatal(err)
	}
	client := testpb.NewTestServiceClient(dial(t, serve(t, srv)))
	stream, err := client.FullDuplexCall(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Header(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := m.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v, want context.DeadlineExceeded", err)
	}
	if _, err := stream.Recv(); err == nil {
		t.Error("stream survived a hard stop")
	}
}

// Shutdown's lame duck sends a GOAWAY (reason "drain") to every connection
// before it stops the server, counted in grpcmgmt.goaway.sent.
func TestShutdownSendsGoAwayToEveryConnection(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	m, err := grpcmgmt.New(testOptions(grpcmgmt.WithMeterProvider(mp))...)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(m.ServerOptions()...)
	if err := m.Register(srv); err != nil {
		t.Fatal(err)
	}
	addr := serve(t, srv)
	const clients = 3
	for range clients {
		if _, err := testpb.NewTestServiceClient(dial(t, addr)).EmptyCall(context.Background(), &testpb.Empty{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	// drain counts the drain GOAWAYs in metric name. An idle connection's
	// GOAWAY is written (and counted) on its own goroutine, which can finish
	// after Shutdown has returned; if GracefulStop's own GOAWAY went out
	// first, ours was rightly not inserted and is counted as suppressed.
	drain := func(name string) int64 {
		var rm metricdata.ResourceMetrics
		if err := reader.Collect(context.Background(), &rm); err != nil {
			t.Fatal(err)
		}
		var n int64
		for _, sm := range rm.ScopeMetrics {
			for _, mt := range sm.Metrics {
				if mt.Name != name {
					continue
				}
				for _, dp := range mt.Data.(metricdata.Sum[int64]).DataPoints {
					if v, _ := dp.Attributes.Value("reason"); v.AsString() == "drain" {
						n += dp.Value
					}
				}
			}
		}
		return n
	}
	waitUntil(t, "a drain GOAWAY per connection", func() bool {
		return drain("grpcmgmt.goaway.sent")+drain("grpcmgmt.goaway.suppressed") >= clients
	})
	if sent, suppressed := drain("grpcmgmt.goaway.sent"), drain("grpcmgmt.goaway.suppressed"); sent+suppressed != clients || sent == 0 {
		t.Errorf("goaway.{sent,suppressed}{reason=drain} = %d, %d after Shutdown, want %d in all (one per connection), at least one sent", sent, suppressed, clients)
	}
}

// TestShutdownEndsDrainAwareStreams: a long-lived stream whose handler
// listens to goaway.Draining ends with OK at the lame duck's drain GOAWAY,
// so Shutdown's GracefulStop does not wait for the grace (30 s by default)
// and the stream is counted as ended by its handler, reason drain.
func TestShutdownEndsDrainAwareStreams(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	m, err := grpcmgmt.New(testOptions(grpcmgmt.WithMeterProvider(mp))...)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(m.ServerOptions()...)
	if err := m.Register(srv); err != nil {
		t.Fatal(err)
	}
	addr := serve(t, srv)
	req := &testpb.StreamingOutputCallRequest{}
	for range 10000 { // 100 s of responses
		req.ResponseParameters = append(req.ResponseParameters, &testpb.ResponseParameters{IntervalUs: 10000})
	}
	stream, err := testpb.NewTestServiceClient(dial(t, addr)).StreamingOutputCall(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown = %v, want nil (the stream ends at the drain, well within 10 s)", err)
	}
	for {
		if _, err := stream.Recv(); err != nil {
			if !errors.Is(err, io.EOF) {
				t.Errorf("stream ended with %v, want OK", err)
			}
			break
		}
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var handler int64
	for _, sm := range rm.ScopeMetrics {
		for _, mt := range sm.Metrics {
			if mt.Name != "grpcmgmt.goaway.drained_streams" {
				continue
			}
			for _, dp := range mt.Data.(metricdata.Sum[int64]).DataPoints {
				if r, _ := dp.Attributes.Value("reason"); r.AsString() == "drain" {
					if e, _ := dp.Attributes.Value("ended"); e.AsString() == "handler" {
						handler += dp.Value
					}
				}
			}
		}
	}
	if handler != 1 {
		t.Errorf("drained_streams{drain, handler} = %d, want 1", handler)
	}
}
