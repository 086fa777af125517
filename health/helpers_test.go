package health_test

import (
	"context"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/grpcmgmt/grpcmgmt/health"
	"github.com/grpcmgmt/grpcmgmt/load"
)

// signal is an injected reading (a CPU at 95 % cannot be made real here),
// fed to the sampler through load.Source like a real one.
type signal struct{ bits atomic.Uint64 }

func (s *signal) Set(v float64) { s.bits.Store(math.Float64bits(v)) }

func (s *signal) Read() (float64, error) { return math.Float64frombits(s.bits.Load()), nil }

// newSampler starts a sampler reading cpu every 10ms, with little smoothing.
func newSampler(t *testing.T, cpu load.Source) *load.Sampler {
	t.Helper()
	s, err := load.NewSampler(load.Config{Period: 10 * time.Millisecond, TimeConstant: 10 * time.Millisecond, CPU: cpu})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// newReader returns a meter provider and its manual reader.
func newReader(t *testing.T) (*sdkmetric.MeterProvider, *sdkmetric.ManualReader) {
	t.Helper()
	rd := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	return mp, rd
}

// collect reads every metric from rd.
func collect(t *testing.T, rd *sdkmetric.ManualReader) metricdata.ResourceMetrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := rd.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	return rm
}

// counter sums the data points of the named Int64 counter whose attributes
// include every one of attrs (name=value pairs).
func counter(t *testing.T, rd *sdkmetric.ManualReader, name string, attrs ...string) int64 {
	t.Helper()
	rm := collect(t, rd)
	var n int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			sum, ok := m.Data.(metricdata.Sum[int64])
			if !ok {
				t.Fatalf("%s is %T, want a Sum[int64]", name, m.Data)
			}
		points:
			for _, dp := range sum.DataPoints {
				for i := 0; i+1 < len(attrs); i += 2 {
					if v, ok := dp.Attributes.Value(attribute.Key(attrs[i])); !ok || v.AsString() != attrs[i+1] {
						continue points
					}
				}
				n += dp.Value
			}
		}
	}
	return n
}

// gauge returns the value of the named Int64 gauge for service, and false
// if there is none.
func gauge(t *testing.T, rd *sdkmetric.ManualReader, name, service string) (int64, bool) {
	t.Helper()
	rm := collect(t, rd)
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if g, ok := m.Data.(metricdata.Gauge[int64]); ok && m.Name == name {
				for _, dp := range g.DataPoints {
					if v, _ := dp.Attributes.Value("service"); v.AsString() == service {
						return dp.Value, true
					}
				}
			}
		}
	}
	return 0, false
}

// gaugeAttr sums the data points of the named Int64 gauge whose attribute
// key has value.
func gaugeAttr(t *testing.T, rd *sdkmetric.ManualReader, name, key, value string) int64 {
	t.Helper()
	rm := collect(t, rd)
	var n int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if g, ok := m.Data.(metricdata.Gauge[int64]); ok && m.Name == name {
				for _, dp := range g.DataPoints {
					if v, _ := dp.Attributes.Value(attribute.Key(key)); v.AsString() == value {
						n += dp.Value
					}
				}
			}
		}
	}
	return n
}

// serve starts a real gRPC server on 127.0.0.1:0 with r registered, and
// returns a client connection to it.
func serve(t *testing.T, r *health.Reporter) *grpc.ClientConn {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	if err := r.Register(srv); err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// change is one status received on a Watch stream.
type change struct {
	st healthpb.HealthCheckResponse_ServingStatus
	at time.Time
}

// watcher records what a real Watch stream receives.
type watcher struct {
	mu   sync.Mutex
	got  []change
	stop func() // ends the stream and waits for the reader; idempotent
}

// watch opens a Watch stream for service over cc and records every status
// it receives until the test ends.
func watch(t *testing.T, cc *grpc.ClientConn, service string) *watcher {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := healthpb.NewHealthClient(cc).Watch(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	w := &watcher{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			resp, err := stream.Recv()
			if err != nil {
				return
			}
			w.mu.Lock()
			w.got = append(w.got, change{resp.GetStatus(), time.Now()})
			w.mu.Unlock()
		}
	}()
	var once sync.Once
	w.stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(w.stop)
	return w
}

func (w *watcher) changes() []change {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]change(nil), w.got...)
}

// waitFor waits until the n-th status received (counting from 1) exists and
// returns it; it fails the test after timeout.
func (w *watcher) waitFor(t *testing.T, n int, timeout time.Duration) change {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if c := w.changes(); len(c) >= n {
			return c[n-1]
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("Watch received %v within %v, want at least %d statuses", w.changes(), timeout, n)
	return change{}
}

func statuses(cs []change) []healthpb.HealthCheckResponse_ServingStatus {
	out := make([]healthpb.HealthCheckResponse_ServingStatus, len(cs))
	for i, c := range cs {
		out[i] = c.st
	}
	return out
}

// check asks the health service for service's status with a real Check.
func check(t *testing.T, cc *grpc.ClientConn, service string) healthpb.HealthCheckResponse_ServingStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		t.Fatalf("Check(%q): %v", service, err)
	}
	return resp.GetStatus()
}
