package load

import (
	"errors"
	"math"
	"os"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/metric/noop"
)

// newTestSampler builds a Sampler whose goroutine is not started, so the
// test drives sample with chosen instants.
func newTestSampler(t *testing.T, cfg Config) (*Sampler, time.Time) {
	t.Helper()
	cfg.MeterProvider = noop.NewMeterProvider()
	cfg.Logger = discardLogger()
	s, err := newSampler(cfg, os.DirFS(fixture("missing")))
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1000, 0)
	s.lastAt = t0
	return s, t0
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// TestSampleRatesAndSmoothing checks one step of the arithmetic exactly:
// rates over the true interval, the first sample taken as it is, then one
// EWMA step over a whole time constant (weight 1-1/e).
func TestSampleRatesAndSmoothing(t *testing.T) {
	cpu := []float64{0.2, 0.8}
	s, t0 := newTestSampler(t, Config{
		Period:       250 * time.Millisecond,
		TimeConstant: time.Second,
		CPU: SourceFunc(func() (float64, error) {
			v := cpu[0]
			cpu = cpu[1:]
			return v, nil
		}),
		Memory: SourceFunc(func() (float64, error) { return 0.5, nil }),
	})
	c := s.Calls()
	for range 100 {
		c.Begin()
	}
	for i := range 40 {
		c.End(i < 25)
	}
	for range 50 {
		c.Refuse()
	}
	s.sample(t0.Add(500 * time.Millisecond))
	got := *s.Snapshot()
	want := Snapshot{At: t0.Add(500 * time.Millisecond), CPU: 0.2, CPURaw: 0.2, Memory: 0.5, MemoryRaw: 0.5,
		InFlight: 60, InFlightAvg: 60, QPS: 200, QPSRaw: 200, EPS: 50, EPSRaw: 50, Shed: 100, ShedRaw: 100, ShedRatio: 50.0 / 150}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Fatalf("first sample (-got +want):\n%s", diff)
	}

	for range 60 {
		c.End(false)
	}
	s.sample(t0.Add(1500 * time.Millisecond)) // dt = TimeConstant
	got = *s.Snapshot()
	k := 1 - math.Exp(-1)
	if got.CPURaw != 0.8 || !near(got.CPU, 0.2+k*0.6) {
		t.Errorf("CPU = %v (raw %v), want %v (raw 0.8)", got.CPU, got.CPURaw, 0.2+k*0.6)
	}
	if got.QPSRaw != 0 || !near(got.QPS, 200*(1-k)) || got.EPSRaw != 0 || !near(got.EPS, 50*(1-k)) {
		t.Errorf("QPS %v raw %v, EPS %v raw %v; want %v, 0, %v, 0", got.QPS, got.QPSRaw, got.EPS, got.EPSRaw, 200*(1-k), 50*(1-k))
	}
	if got.InFlight != 0 || !near(got.InFlightAvg, 60*(1-k)) {
		t.Errorf("InFlight %v avg %v, want 0, %v", got.InFlight, got.InFlightAvg, 60*(1-k))
	}
	if !near(got.ErrorRatio(), 0.25) {
		t.Errorf("ErrorRatio = %v, want 0.25", got.ErrorRatio())
	}
	// 50 refused beside 100 started in the first sample: a third of the
	// arrivals refused. Nothing arrived in the second: the share falls as
	// if nothing were refused, not held where the rates' ratio would be.
	if got.ShedRaw != 0 || !near(got.Shed, 100*(1-k)) || !near(got.ShedRatio, (1-k)/3) {
		t.Errorf("Shed %v raw %v ratio %v, want %v, 0, %v", got.Shed, got.ShedRaw, got.ShedRatio, 100*(1-k), (1-k)/3)
	}
}

// TestFailedReadingKeepsLastValue: an error, NaN, Inf or a negative value
// keeps the last good value; a source that never succeeded stays absent
// from Custom.
func TestFailedReadingKeepsLastValue(t *testing.T) {
	var next float64
	var nextErr error
	s, t0 := newTestSampler(t, Config{
		CPU:     SourceFunc(func() (float64, error) { return next, nextErr }),
		Memory:  SourceFunc(func() (float64, error) { return 0.1, nil }),
		Sources: map[string]Source{"never": SourceFunc(func() (float64, error) { return 0, errors.New("down") })},
	})
	at := t0
	step := func(v float64, err error) *Snapshot {
		next, nextErr = v, err
		at = at.Add(250 * time.Millisecond)
		s.sample(at)
		return s.Snapshot()
	}
	step(0.4, nil)
	for _, bad := range []struct {
		v   float64
		err error
	}{{0.9, errors.New("boom")}, {math.NaN(), nil}, {math.Inf(1), nil}, {-0.1, nil}} {
		if got := step(bad.v, bad.err); got.CPURaw != 0.4 || got.CPU != 0.4 {
			t.Errorf("after a bad reading (%v, %v): CPU %v raw %v, want 0.4 and 0.4", bad.v, bad.err, got.CPU, got.CPURaw)
		}
		if !s.cpu.failing {
			t.Errorf("after a bad reading (%v, %v): source not marked failing", bad.v, bad.err)
		}
	}
	if got := step(0.6, nil); got.CPURaw != 0.6 || s.cpu.failing {
		t.Errorf("after recovery: raw %v failing %v, want 0.6 false", got.CPURaw, s.cpu.failing)
	}
	if _, ok := s.Snapshot().Custom["never"]; ok || s.Snapshot().Custom == nil {
		t.Errorf("Custom = %v, want an empty non-nil map", s.Snapshot().Custom)
	}
}

// TestSampleAllocationsDoNotGrowWithSubscribers: delivering a sample to
// subscribers allocates nothing; the per-sample allocations (the new
// Snapshot) are the same with 0 and 16 subscribers.
func TestSampleAllocationsDoNotGrowWithSubscribers(t *testing.T) {
	s, t0 := newTestSampler(t, Config{
		CPU:    SourceFunc(func() (float64, error) { return 0.5, nil }),
		Memory: SourceFunc(func() (float64, error) { return 0.5, nil }),
	})
	at := t0
	run := func() float64 {
		return testing.AllocsPerRun(100, func() {
			at = at.Add(250 * time.Millisecond)
			s.sample(at)
		})
	}
	base := run()
	var sink float64
	for range 16 {
		s.OnSample(func(sn Snapshot) { sink += sn.CPU })
	}
	if with := run(); with != base {
		t.Errorf("allocations per sample: %v with 16 subscribers, %v with none", with, base)
	}
	if base > 1 {
		t.Errorf("allocations per sample = %v, want at most 1 (the Snapshot)", base)
	}
	_ = sink
}
