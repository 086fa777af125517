package load

import (
	"bytes"
	"context"
	"log/slog"
	"math"
	"os"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// trace feeds the sampler one period at a time: calls ended in the period
// with latency lat each, the first lone of them started alone, and then
// takes a sample.
type trace struct {
	t  *testing.T
	s  *Sampler
	at time.Time
}

func newTrace(t *testing.T, cfg Config) *trace {
	cfg.CPU = SourceFunc(func() (float64, error) { return 0.1, nil })
	cfg.Memory = SourceFunc(func() (float64, error) { return 0.1, nil })
	s, t0 := newTestSampler(t, cfg)
	return &trace{t: t, s: s, at: t0}
}

// period records calls ended in the next period and samples at its end.
func (tr *trace) period(calls int, lat time.Duration, lone int) *Snapshot {
	for i := range calls {
		tr.s.calls.record(lat.Microseconds(), i < lone)
	}
	tr.at = tr.at.Add(tr.s.period)
	tr.s.sample(tr.at)
	return tr.s.Snapshot()
}

// run repeats period for d.
func (tr *trace) run(d time.Duration, calls int, lat time.Duration, lone int) *Snapshot {
	var sn *Snapshot
	for end := tr.at.Add(d); tr.at.Before(end); {
		sn = tr.period(calls, lat, lone)
	}
	return sn
}

// TestQueueingFollowsLatencyAgainstLoneCalls: a replica measured idle at
// 10 ms per call (every call alone) whose calls then take 50 ms while none
// runs alone is queueing 1 − 10/50; the state turns high, and back to normal
// when latency returns, each once.
func TestQueueingFollowsLatencyAgainstLoneCalls(t *testing.T) {
	tr := newTrace(t, Config{})
	sn := tr.run(3*time.Second, 10, 10*time.Millisecond, 10)
	if sn.NoLoadLatency != 10*time.Millisecond || sn.Queueing != 0 || sn.QueueingHigh {
		t.Fatalf("idle: no-load %v queueing %v high %v, want 10ms 0 false", sn.NoLoadLatency, sn.Queueing, sn.QueueingHigh)
	}
	sn = tr.run(5*time.Second, 30, 50*time.Millisecond, 0)
	if math.Abs(sn.Queueing-0.8) > 0.01 || !sn.QueueingHigh || sn.NoLoadLatency != 10*time.Millisecond {
		t.Fatalf("busy: queueing %.3f high %v no-load %v, want 0.8 true 10ms", sn.Queueing, sn.QueueingHigh, sn.NoLoadLatency)
	}
	if sn.LatencyRaw != 50*time.Millisecond {
		t.Errorf("LatencyRaw %v, want 50ms", sn.LatencyRaw)
	}
	sn = tr.run(5*time.Second, 10, 11*time.Millisecond, 0)
	if sn.QueueingHigh || sn.Queueing > 0.12 {
		t.Fatalf("recovered: queueing %.3f high %v, want < 0.12 false (11ms against 10ms: 0.09)", sn.Queueing, sn.QueueingHigh)
	}
}

// TestQueueingHysteresis: between the exit and the enter threshold the state
// stays what it was.
func TestQueueingHysteresis(t *testing.T) {
	tr := newTrace(t, Config{})
	tr.run(2*time.Second, 10, 10*time.Millisecond, 10)
	// 1 − 10/25 = 0.6: between exit 0.5 and enter 0.75.
	if sn := tr.run(5*time.Second, 10, 25*time.Millisecond, 0); sn.QueueingHigh {
		t.Fatalf("queueing %.2f from normal: high, want normal (below enter 0.75)", sn.Queueing)
	}
	tr.run(5*time.Second, 10, 50*time.Millisecond, 0)
	if sn := tr.run(5*time.Second, 10, 25*time.Millisecond, 0); !sn.QueueingHigh {
		t.Fatalf("queueing %.2f from high: normal, want high (above exit 0.5)", sn.Queueing)
	}
}

// TestQueueingNeverIdle: a replica that always has calls in flight (an
// I/O-bound service, 50 ms per call at any concurrency) has no lone calls;
// its no-load latency is the lowest batch mean, and it is not queueing.
// When its calls then take 5× as long it is.
func TestQueueingNeverIdle(t *testing.T) {
	tr := newTrace(t, Config{})
	sn := tr.run(5*time.Second, 100, 50*time.Millisecond, 0)
	if sn.NoLoadLatency != 50*time.Millisecond || sn.QueueingHigh || sn.Queueing != 0 {
		t.Fatalf("no-load %v queueing %v high %v, want 50ms 0 false", sn.NoLoadLatency, sn.Queueing, sn.QueueingHigh)
	}
	if sn = tr.run(5*time.Second, 100, 250*time.Millisecond, 0); !sn.QueueingHigh {
		t.Fatalf("latency 5× the lowest: queueing %.2f, not high", sn.Queueing)
	}
}

// TestQueueingMinDelay: a microsecond-scale service whose latency goes from
// 20 µs to 200 µs is queueing 0.9, but the 180 µs delay is below
// QueueingMinDelay: not high, and not past the floor the levers that read
// Queueing itself go by (QueueingPastMinDelay).
func TestQueueingMinDelay(t *testing.T) {
	tr := newTrace(t, Config{})
	tr.run(2*time.Second, 100, 20*time.Microsecond, 100)
	sn := tr.run(5*time.Second, 100, 200*time.Microsecond, 0)
	if sn.QueueingHigh || sn.Queueing < 0.85 || sn.QueueingPastMinDelay {
		t.Fatalf("queueing %.2f high %v past the floor %v, want about 0.9, not high, not past (delay under 1ms)", sn.Queueing, sn.QueueingHigh, sn.QueueingPastMinDelay)
	}
	tr = newTrace(t, Config{QueueingMinDelay: 100 * time.Microsecond})
	tr.run(2*time.Second, 100, 20*time.Microsecond, 100)
	if sn := tr.run(5*time.Second, 100, 200*time.Microsecond, 0); !sn.QueueingHigh || !sn.QueueingPastMinDelay {
		t.Fatalf("with QueueingMinDelay 100µs: high %v past the floor %v, want both", sn.QueueingHigh, sn.QueueingPastMinDelay)
	}
}

// TestQueueingOff: with QueueingEnter Off the share is still published but
// never counts as high.
func TestQueueingOff(t *testing.T) {
	tr := newTrace(t, Config{QueueingEnter: Off})
	tr.run(2*time.Second, 10, 10*time.Millisecond, 10)
	if sn := tr.run(5*time.Second, 10, 100*time.Millisecond, 0); sn.QueueingHigh || sn.Queueing < 0.8 {
		t.Fatalf("Off: queueing %.2f high %v, want about 0.9 and never high", sn.Queueing, sn.QueueingHigh)
	}
}

// TestNoLoadLatencyFollowsTheService: lone calls that take longer (the
// service itself got slower, not queued) move the no-load latency, so an
// idle replica is not queueing; a busy period faster than the estimate
// lowers it at once.
func TestNoLoadLatencyFollowsTheService(t *testing.T) {
	tr := newTrace(t, Config{})
	tr.run(2*time.Second, 10, 10*time.Millisecond, 10)
	sn := tr.run(5*time.Second, 10, 20*time.Millisecond, 10)
	if d := sn.NoLoadLatency - 20*time.Millisecond; d < -time.Millisecond || d > time.Millisecond || sn.QueueingHigh {
		t.Fatalf("lone calls at 20ms: no-load %v high %v, want about 20ms, not high", sn.NoLoadLatency, sn.QueueingHigh)
	}
	sn = tr.run(time.Second, 40, 8*time.Millisecond, 0)
	if sn.NoLoadLatency != 8*time.Millisecond {
		t.Fatalf("busy at 8ms: no-load %v, want 8ms", sn.NoLoadLatency)
	}
}

// TestNoLoadLatencyExpires: a lone-call estimate older than NoLoadWindow
// gives way to the lowest batch mean of the window: an overload that lasts
// longer than the window becomes the new normal.
func TestNoLoadLatencyExpires(t *testing.T) {
	tr := newTrace(t, Config{NoLoadWindow: 10 * time.Second})
	tr.run(2*time.Second, 10, 10*time.Millisecond, 10)
	if sn := tr.run(5*time.Second, 40, 50*time.Millisecond, 0); !sn.QueueingHigh || sn.NoLoadLatency != 10*time.Millisecond {
		t.Fatalf("5s of overload: high %v no-load %v, want true 10ms", sn.QueueingHigh, sn.NoLoadLatency)
	}
	if sn := tr.run(15*time.Second, 40, 50*time.Millisecond, 0); sn.QueueingHigh || sn.NoLoadLatency != 50*time.Millisecond {
		t.Fatalf("20s of overload, window 10s: high %v no-load %v, want false 50ms", sn.QueueingHigh, sn.NoLoadLatency)
	}
}

// TestIdleReplicaDrainsItsQueue: periods with no call in flight and none
// ended pull the latency back to the no-load latency.
func TestIdleReplicaDrainsItsQueue(t *testing.T) {
	tr := newTrace(t, Config{})
	tr.run(2*time.Second, 10, 10*time.Millisecond, 10)
	tr.run(3*time.Second, 10, 50*time.Millisecond, 0)
	if sn := tr.run(5*time.Second, 0, 0, 0); sn.QueueingHigh || sn.Queueing > 0.05 || sn.LatencyRaw != 0 {
		t.Fatalf("idle: queueing %.2f high %v raw %v, want about 0, false, 0", sn.Queueing, sn.QueueingHigh, sn.LatencyRaw)
	}
	// A call still in flight: no evidence either way; latency holds.
	tr.run(3*time.Second, 10, 50*time.Millisecond, 0)
	held := tr.s.Snapshot().Latency
	tr.s.calls.flight.Add(1)
	if sn := tr.run(2*time.Second, 0, 0, 0); sn.Latency != held {
		t.Errorf("a call in flight and none ended: latency %v, want it held at %v", sn.Latency, held)
	}
}

// TestCallMeasuresLatency: BeginUnary and End time the call on the
// monotonic clock (the fake one, inside the bubble), mark a call that began
// alone, and count it like Begin and End.
func TestCallMeasuresLatency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var c Calls
		a := c.BeginUnary()
		time.Sleep(10 * time.Millisecond)
		b := c.BeginUnary()
		time.Sleep(20 * time.Millisecond)
		b.End(false)
		a.End(true)
		Call{}.End(true) // the zero Call: nothing
		n, sum := unpack(c.lat.Load())
		na, suma := unpack(c.alone.Load())
		if n != 2 || sum != 50_000 || na != 1 || suma != 30_000 {
			t.Errorf("samples %d sum %dµs, lone %d sum %dµs; want 2 50000 1 30000", n, sum, na, suma)
		}
		if c.InFlight() != 0 || c.Started() != 2 || c.Failed() != 1 || c.timedInFlight() != 0 {
			t.Errorf("in flight %d started %d failed %d unary %d, want 0 2 1 0", c.InFlight(), c.Started(), c.Failed(), c.timedInFlight())
		}
	})
}

// TestQueueingMetricsAndLogs: the gauges carry the signal, each change of
// state is counted by the state entered and logged at INFO with the values
// it was decided on.
func TestQueueingMetricsAndLogs(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer func() { _ = mp.Shutdown(context.Background()) }()
	var logs bytes.Buffer
	s, err := newSampler(Config{
		MeterProvider: mp,
		Logger:        slog.New(slog.NewTextHandler(&logs, nil)),
		CPU:           SourceFunc(func() (float64, error) { return 0.1, nil }),
		Memory:        SourceFunc(func() (float64, error) { return 0.1, nil }),
	}, os.DirFS(fixture("missing")))
	if err != nil {
		t.Fatal(err)
	}
	defer s.met.close()
	tr := &trace{t: t, s: s, at: time.Unix(1000, 0)}
	s.lastAt = tr.at
	tr.run(2*time.Second, 10, 10*time.Millisecond, 10)
	tr.run(5*time.Second, 10, 50*time.Millisecond, 0)

	got := map[string]float64{}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Gauge[float64]:
				for _, p := range d.DataPoints {
					got[m.Name] = p.Value
				}
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					got[m.Name] = float64(p.Value)
				}
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					if v, ok := p.Attributes.Value("to"); ok {
						got[m.Name+"{"+v.AsString()+"}"] = float64(p.Value)
					}
				}
			}
		}
	}
	for name, want := range map[string]float64{
		"grpcmgmt.load.no_load_latency":            0.010,
		"grpcmgmt.load.queueing_high":              1,
		"grpcmgmt.load.queueing_transitions{high}": 1,
	} {
		if v, ok := got[name]; !ok || math.Abs(v-want) > 1e-9 {
			t.Errorf("%s = %v (present %v), want %v", name, v, ok, want)
		}
	}
	if v := got["grpcmgmt.load.queueing"]; v < 0.77 || v > 0.81 {
		t.Errorf("grpcmgmt.load.queueing = %v, want about 0.8", v)
	}
	if v := got["grpcmgmt.load.latency"]; v < 0.045 || v > 0.051 {
		t.Errorf("grpcmgmt.load.latency = %v s, want about 0.050", v)
	}
	for _, want := range []string{
		"level=INFO msg=\"load: no-load latency measured\" no_load_latency=10ms",
		"level=INFO msg=\"load: queueing high: calls wait for one another\"",
		"queueing_enter=0.75",
	} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("logs lack %q:\n%s", want, logs.String())
		}
	}
}

// TestUnaryInFlightMean: the sampler publishes the exact time integral of
// the unary calls in flight over each period, calls still in flight
// included, and the unary calls started per second without the streams.
func TestUnaryInFlightMean(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fixed := SourceFunc(func() (float64, error) { return 0.1, nil })
		s, err := NewSampler(Config{Period: time.Second, CPU: fixed, Memory: fixed, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		c := s.Calls()
		time.Sleep(time.Millisecond) // off the sampler's ticks
		// Period 1: one call for the whole period (it began 1 ms in, so
		// 999 ms), one for 500 ms, a stream throughout.
		a := c.BeginUnary()
		c.Begin()
		b := c.BeginUnary()
		time.Sleep(500 * time.Millisecond)
		b.End(false)
		time.Sleep(500 * time.Millisecond)
		synctest.Wait()
		snap := s.Snapshot()
		if got, want := snap.UnaryInFlightMean, 1.499; math.Abs(got-want) > 0.002 {
			t.Errorf("period 1: mean unary calls in flight %.4f, want %.3f", got, want)
		}
		if got := snap.UnaryQPSRaw; got != 2 {
			t.Errorf("period 1: unary calls started per second %v, want 2 (the stream not counted)", got)
		}
		// Period 2: the long call ends halfway.
		time.Sleep(500 * time.Millisecond)
		a.End(false)
		time.Sleep(500 * time.Millisecond)
		synctest.Wait()
		if got, want := s.Snapshot().UnaryInFlightMean, 0.5; math.Abs(got-want) > 0.002 {
			t.Errorf("period 2: mean unary calls in flight %.4f, want %.1f", got, want)
		}
		c.End(false)
	})
}
