package goaway_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// meter is an OpenTelemetry SDK provider with a manual reader, for asserting
// on what the library recorded.
type meter struct {
	*sdkmetric.MeterProvider
	r *sdkmetric.ManualReader
}

func newMeter() *meter {
	r := sdkmetric.NewManualReader()
	return &meter{MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(r)), r: r}
}

func (m *meter) collect(t testing.TB) []metricdata.Metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := m.r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var out []metricdata.Metrics
	for _, sm := range rm.ScopeMetrics {
		out = append(out, sm.Metrics...)
	}
	return out
}

// sum returns the sum of an int64 counter's points that carry every attr.
func (m *meter) sum(t testing.TB, name string, attrs ...attribute.KeyValue) int64 {
	t.Helper()
	var total int64
	for _, mt := range m.collect(t) {
		if mt.Name != name {
			continue
		}
		s, ok := mt.Data.(metricdata.Sum[int64])
		if !ok {
			t.Fatalf("%s is %T, not an int64 sum", name, mt.Data)
		}
	points:
		for _, p := range s.DataPoints {
			for _, a := range attrs {
				if v, ok := p.Attributes.Value(a.Key); !ok || v != a.Value {
					continue points
				}
			}
			total += p.Value
		}
	}
	return total
}

// histCount returns how many values a float64 histogram recorded.
func (m *meter) histCount(t testing.TB, name string) uint64 {
	t.Helper()
	var n uint64
	for _, mt := range m.collect(t) {
		if mt.Name != name {
			continue
		}
		h, ok := mt.Data.(metricdata.Histogram[float64])
		if !ok {
			t.Fatalf("%s is %T, not a float64 histogram", name, mt.Data)
		}
		for _, p := range h.DataPoints {
			n += p.Count
		}
	}
	return n
}
