package health

import (
	"testing"
	"time"

	"github.com/grpcmgmt/grpcmgmt/load"
	"go.opentelemetry.io/otel/metric/noop"
)

// The decision made on every sample: one policy step. It runs on the
// sampler goroutine, once per period, never on the call path.
func BenchmarkPolicyStep(b *testing.B) {
	p := newPolicy(Config{}.WithDefaults())
	now := time.Now()
	s := load.Snapshot{CPU: 0.5, InFlight: 10}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		s.CPU = 0.5 + 0.45*float64(i%2) // crossing nothing: CPUEnter is 0.9
		now = now.Add(10 * time.Millisecond)
		p.step(now, s)
	}
}

// The Reporter's sample callback, with two services following load.
func BenchmarkReporterOnSample(b *testing.B) {
	r, err := New(nil, Config{Services: []string{"", "svc"}, MeterProvider: noop.NewMeterProvider()})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	r.policy = newPolicy(r.cfg) // follow load without a sampler goroutine
	for _, s := range r.cfg.Services {
		r.follows[s] = true
	}
	s := load.Snapshot{At: time.Now(), CPU: 0.5}
	b.ReportAllocs()
	for b.Loop() {
		s.At = s.At.Add(10 * time.Millisecond)
		r.onSample(s)
	}
}

// The step function's transitions, sample by sample, on a fake clock.
func TestPolicyTransitions(t *testing.T) {
	cfg := Config{Hold: 30 * time.Millisecond, MinDwell: 20 * time.Millisecond, MaxNotServing: 100 * time.Millisecond,
		Cooldown: 50 * time.Millisecond, MaxCooldown: 150 * time.Millisecond}.WithDefaults()
	p := newPolicy(cfg)
	p.jitter = func() float64 { return 0.5 } // no jitter
	t0 := time.Unix(0, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	hot, cold := load.Snapshot{CPU: 0.95}, load.Snapshot{CPU: 0.1}
	steps := []struct {
		ms       int
		s        load.Snapshot
		want     event
		cooldown time.Duration // after the step
	}{
		{0, hot, eventNone, 50 * time.Millisecond},
		{20, hot, eventNone, 50 * time.Millisecond},
		{30, hot, eventOverloaded, 50 * time.Millisecond},   // held for Hold
		{40, cold, eventNone, 50 * time.Millisecond},        // MinDwell not over
		{50, cold, eventRecovered, 50 * time.Millisecond},   // cooling until 100
		{60, hot, eventNone, 50 * time.Millisecond},         // overloaded again...
		{90, hot, eventSuppressed, 50 * time.Millisecond},   // ...for Hold, in the cooldown
		{95, hot, eventNone, 50 * time.Millisecond},         // reported once per run
		{100, hot, eventOverloaded, 100 * time.Millisecond}, // cooldown over; the next doubles
		{200, hot, eventReleased, 100 * time.Millisecond},   // MaxNotServing; cooling until 300
		{229, hot, eventNone, 100 * time.Millisecond},
		{259, hot, eventSuppressed, 100 * time.Millisecond},
		{300, hot, eventOverloaded, 150 * time.Millisecond}, // doubled, capped at MaxCooldown
		{400, hot, eventReleased, 150 * time.Millisecond},   // cooling until 550
		{549, hot, eventNone, 150 * time.Millisecond},
		{550, hot, eventNone, 150 * time.Millisecond}, // cooldown over, Hold not yet
		{580, hot, eventOverloaded, 150 * time.Millisecond},
		{600, cold, eventRecovered, 150 * time.Millisecond}, // cooling until 750
		{750, cold, eventNone, 50 * time.Millisecond},       // a quiet cooldown resets it
	}
	for _, st := range steps {
		got := p.step(at(st.ms), st.s)
		if got != st.want || p.cooldown != st.cooldown {
			t.Fatalf("at %dms CPU %.2f: event %d cooldown %v, want %d %v", st.ms, st.s.CPU, got, p.cooldown, st.want, st.cooldown)
		}
	}
}

// Queueing high (the sampler's hysteresis already applied) counts as
// overloaded whatever the CPU, and the server recovers only once it is
// off.
func TestPolicyQueueing(t *testing.T) {
	cfg := Config{Hold: 30 * time.Millisecond, MinDwell: 20 * time.Millisecond, MaxNotServing: time.Second}.WithDefaults()
	p := newPolicy(cfg)
	t0 := time.Unix(0, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	queued := load.Snapshot{CPU: 0.1, Queueing: 0.7, QueueingHigh: true}
	settling := load.Snapshot{CPU: 0.1, Queueing: 0.3, QueueingHigh: true} // between the sampler's thresholds
	calm := load.Snapshot{CPU: 0.1, Queueing: 0.1}
	for _, st := range []struct {
		ms   int
		s    load.Snapshot
		want event
	}{
		{0, queued, eventNone},
		{30, queued, eventOverloaded},
		{60, settling, eventNone}, // still high: stays NOT_SERVING
		{90, calm, eventRecovered},
	} {
		if got := p.step(at(st.ms), st.s); got != st.want {
			t.Fatalf("at %dms queueing %.1f high %v: event %d, want %d", st.ms, st.s.Queueing, st.s.QueueingHigh, got, st.want)
		}
	}
}
