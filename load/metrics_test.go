package load_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/grpcmgmt/grpcmgmt/load"
)

// collect returns every data point the reader holds, by instrument name;
// points with a "source" attribute are keyed "name{source}".
func collect(t *testing.T, r *sdkmetric.ManualReader) map[string]float64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != "github.com/grpcmgmt/grpcmgmt/load" {
			t.Errorf("instrument scope %q, want the package import path", sm.Scope.Name)
		}
		for _, m := range sm.Metrics {
			key := func(attrs attribute.Set) string {
				if v, ok := attrs.Value("source"); ok {
					return m.Name + "{" + v.AsString() + "}"
				}
				return m.Name
			}
			switch d := m.Data.(type) {
			case metricdata.Gauge[float64]:
				for _, p := range d.DataPoints {
					out[key(p.Attributes)] = p.Value
				}
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					out[key(p.Attributes)] = float64(p.Value)
				}
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					out[key(p.Attributes)] = float64(p.Value)
				}
			default:
				t.Errorf("%s: unexpected data type %T", m.Name, m.Data)
			}
		}
	}
	return out
}

func TestGauges(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer func() { _ = mp.Shutdown(context.Background()) }()

	var queueFails atomic.Bool
	s := newSampler(t, load.Config{
		MeterProvider: mp,
		CPU:           constant(0.42),
		Memory:        constant(0.3),
		Sources: map[string]load.Source{"queue": load.SourceFunc(func() (float64, error) {
			if queueFails.Load() {
				return 0, errors.New("queue gone")
			}
			return 0.7, nil
		})},
	})
	if got := collect(t, reader); len(got) != 0 {
		t.Errorf("before the first sample the gauges report %v, want nothing", got)
	}
	c := s.Calls()
	c.Begin()
	c.Begin()
	c.End(true)
	waitFor(t, "a sample with the call in flight and the error counted", 5*time.Second, func() bool {
		sn := s.Snapshot()
		return sn.InFlight == 1 && sn.EPS > 0
	})
	got := collect(t, reader)
	for name, want := range map[string]float64{
		"grpcmgmt.load.cpu":           0.42,
		"grpcmgmt.load.cpu_raw":       0.42,
		"grpcmgmt.load.memory":        0.3,
		"grpcmgmt.load.memory_raw":    0.3,
		"grpcmgmt.load.inflight":      1,
		"grpcmgmt.load.custom{queue}": 0.7,
	} {
		if v, ok := got[name]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", name, v, ok, want)
		}
	}
	for _, name := range []string{"grpcmgmt.load.inflight_avg", "grpcmgmt.load.qps", "grpcmgmt.load.eps"} {
		if got[name] <= 0 {
			t.Errorf("%s = %v, want > 0 after 2 calls, 1 failed", name, got[name])
		}
	}
	for _, name := range []string{"grpcmgmt.load.qps_raw", "grpcmgmt.load.eps_raw"} {
		if _, ok := got[name]; !ok {
			t.Errorf("%s missing", name)
		}
	}
	if _, ok := got["grpcmgmt.load.source_errors{queue}"]; ok {
		t.Errorf("source_errors reported before any error: %v", got)
	}

	queueFails.Store(true)
	waitFor(t, "3 failed readings counted", 5*time.Second, func() bool {
		return collect(t, reader)["grpcmgmt.load.source_errors{queue}"] >= 3
	})
	if got := collect(t, reader)["grpcmgmt.load.custom{queue}"]; got != 0.7 {
		t.Errorf("custom{queue} while failing = %v, want the last good 0.7", got)
	}
	c.End(false)

	_ = s.Close()
	for name := range collect(t, reader) {
		if name != "grpcmgmt.load.source_errors{queue}" {
			t.Errorf("after Close the gauge %s is still observed", name)
		}
	}
}
