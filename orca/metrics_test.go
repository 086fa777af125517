package orca_test

import (
	"context"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/grpcmgmt/grpcmgmt/load"
	"github.com/grpcmgmt/grpcmgmt/orca"
)

func testMeter(t *testing.T) (*sdkmetric.MeterProvider, *sdkmetric.ManualReader) {
	t.Helper()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	return mp, reader
}

func collect(t *testing.T, reader *sdkmetric.ManualReader, name string) (metricdata.Aggregation, bool) {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != "github.com/grpcmgmt/grpcmgmt/orca" {
			continue
		}
		for _, m := range sm.Metrics {
			if m.Name == name {
				return m.Data, true
			}
		}
	}
	return nil, false
}

// sumInt returns the value of an int64 sum instrument (0 if not recorded).
func sumInt(t *testing.T, reader *sdkmetric.ManualReader, name string) int64 {
	t.Helper()
	d, ok := collect(t, reader, name)
	if !ok {
		return 0
	}
	s, ok := d.(metricdata.Sum[int64])
	if !ok {
		t.Fatalf("%s is %T, want an int64 sum", name, d)
	}
	var n int64
	for _, p := range s.DataPoints {
		n += p.Value
	}
	return n
}

// gauge returns the last value of a float64 gauge.
func gauge(t *testing.T, reader *sdkmetric.ManualReader, name string) (float64, bool) {
	t.Helper()
	d, ok := collect(t, reader, name)
	if !ok {
		return 0, false
	}
	g, ok := d.(metricdata.Gauge[float64])
	if !ok || len(g.DataPoints) == 0 {
		return 0, false
	}
	return g.DataPoints[0].Value, true
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after 5s waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Every per-call report is counted (with a 10 ms PerCallInterval, the
// first call of one connection in each period carries one), and the
// reported utilization is published as a gauge.
func TestMetricsCallReports(t *testing.T) {
	mp, reader := testMeter(t)
	cpu := load.SourceFunc(func() (float64, error) { return 0.25, nil })
	r, _ := newReporter(t, load.Config{Period: 10 * time.Millisecond, CPU: cpu}, orca.Config{PerCallInterval: 10 * time.Millisecond}, orca.WithMeterProvider(mp))
	c := dial(t, startStandalone(t, r, r.ServerOptions()...))
	reports, calls := 0, 0
	for deadline := time.Now().Add(10 * time.Second); reports < 3 && time.Now().Before(deadline); calls++ {
		if callReport(t, c) != nil {
			reports++
		}
		time.Sleep(5 * time.Millisecond) // paces the calls over several periods
	}
	if reports < 3 {
		t.Fatalf("%d of %d calls 5 ms apart carried a report with a 10 ms PerCallInterval in 10 s, want 3", reports, calls)
	}
	if n := sumInt(t, reader, "grpcmgmt.orca.call_reports"); n != int64(reports) {
		t.Errorf("call_reports = %d after %d reports, want %d", n, reports, reports)
	}
	waitFor(t, "application_utilization gauge = CPU (no limit configured)", func() bool {
		v, ok := gauge(t, reader, "grpcmgmt.orca.application_utilization")
		return ok && v == 0.25
	})
}
