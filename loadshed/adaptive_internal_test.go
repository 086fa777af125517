package loadshed

import (
	"log/slog"
	"math"
	"testing"
	"time"
)

// simulate runs the adaptive limit against a model service with a knee of
// k calls and no-load latency base, kept at its limit by unbounded demand,
// on a simulated clock, for d. It returns the limits seen each 10 ms.
func simulate(t *testing.T, cfg AdaptiveConfig, k float64, base time.Duration, d time.Duration, demand func(now time.Duration) float64) []int64 {
	t.Helper()
	var clock int64
	a := newAdaptive(cfg.withDefaults(), slog.New(slog.DiscardHandler), func() int64 { return clock })
	var limits []int64
	const dt = time.Millisecond
	carry := 0.0
	for now := time.Duration(0); now < d; now += dt {
		clock = int64(now)
		inFlight := math.Min(float64(a.limit.Load()), demand(now))
		rtt := float64(base) * math.Max(1, inFlight/k)
		// Completions in dt at concurrency inFlight (Little's law); each is
		// replaced by an admission at the same concurrency.
		carry += inFlight * float64(dt) / rtt
		for ; carry >= 1; carry-- {
			b := a.admitted(int64(inFlight))
			a.done(clock, int64(rtt), b)
		}
		if now%(10*time.Millisecond) == 0 {
			limits = append(limits, a.limit.Load())
		}
	}
	return limits
}

func median(v []int64) int64 {
	c := append([]int64(nil), v...)
	for i := range c { // insertion sort: small slices
		for j := i; j > 0 && c[j] < c[j-1]; j-- {
			c[j], c[j-1] = c[j-1], c[j]
		}
	}
	return c[len(c)/2]
}

// TestAdaptiveOverloadFromStart: a replica overloaded from its first call
// never sees light load, so the baseline is measured by pinning the limit;
// the limit then settles at knee × (1+Tolerance).
func TestAdaptiveOverloadFromStart(t *testing.T) {
	limits := simulate(t, AdaptiveConfig{}, 20, 50*time.Millisecond, 8*time.Second,
		func(time.Duration) float64 { return 1e9 })
	if got := limits[0]; got != 20 {
		t.Errorf("initial limit %d, want InitialLimit 20", got)
	}
	pinned := false
	for _, l := range limits[:200] { // first 2 s
		pinned = pinned || l == 3
	}
	if !pinned {
		t.Errorf("limit never pinned to MinLimit to measure the baseline under overload")
	}
	if m := median(limits[500:]); m < 20 || m > 24 {
		t.Errorf("limit settled at %d, want 20..24 (knee 20 × 1.1 = 22)", m)
	}
}

// TestAdaptiveGrowsAndIsAppLimited: from a low start the limit grows to the
// knee under enough demand, and does not grow while demand uses less than
// half of it.
func TestAdaptiveGrowsAndIsAppLimited(t *testing.T) {
	limits := simulate(t, AdaptiveConfig{InitialLimit: 5, MinLimit: 2}, 100, 20*time.Millisecond, 10*time.Second,
		func(now time.Duration) float64 {
			if now < 2*time.Second {
				return 3 // light: the baseline is measured passively
			}
			return 1e9
		})
	if m := median(limits[100:200]); m > 10 {
		t.Errorf("limit grew to %d while demand used 3 calls, want it to stay near 5", m)
	}
	if m := median(limits[800:]); m < 100 || m > 120 {
		t.Errorf("limit settled at %d, want 100..120 (knee 100 × 1.1 = 110)", m)
	}
}

// TestAdaptiveReprobes: after ProbeInterval the baseline is measured again,
// so a service that became slower per call (and so has a lower knee) gets
// a lower limit.
func TestAdaptiveReprobes(t *testing.T) {
	cfg := AdaptiveConfig{ProbeInterval: 2 * time.Second}.withDefaults()
	var clock int64
	a := newAdaptive(cfg, slog.New(slog.DiscardHandler), func() int64 { return clock })
	// run returns the median limit over the last second (a re-probe may pin
	// the limit at any moment).
	run := func(from, to time.Duration, k float64, base time.Duration) int64 {
		var last []int64
		carry := 0.0
		for now := from; now < to; now += time.Millisecond {
			clock = int64(now)
			inFlight := float64(a.limit.Load())
			rtt := float64(base) * math.Max(1, inFlight/k)
			carry += inFlight * float64(time.Millisecond) / rtt
			for ; carry >= 1; carry-- {
				a.done(clock, int64(rtt), a.admitted(int64(inFlight)))
			}
			if to-now <= time.Second && now%(10*time.Millisecond) == 0 {
				last = append(last, a.limit.Load())
			}
		}
		return median(last)
	}
	if l := run(0, 4*time.Second, 40, 20*time.Millisecond); l < 40 || l > 48 {
		t.Fatalf("limit %d, want about 44 (knee 40)", l)
	}
	// Each call now takes twice as long and capacity halves: knee 40 still
	// in calls, but latency doubles at every concurrency; without a new
	// baseline the limit would fall to half.
	if l := run(4*time.Second, 14*time.Second, 40, 40*time.Millisecond); l < 36 || l > 48 {
		t.Fatalf("limit %d after the baseline doubled, want about 44 again after a new baseline", l)
	}
}

// TestAdaptiveSampled: at 40,000 calls/s only one call in sampleEvery is
// timed, and the limit settles as with every call timed.
func TestAdaptiveSampled(t *testing.T) {
	var clock int64
	a := newAdaptive(AdaptiveConfig{}.withDefaults(), slog.New(slog.DiscardHandler), func() int64 { return clock })
	const k, base = 200.0, 5 * time.Millisecond
	var timed, calls int
	var last []int64
	carry := 0.0
	for now := time.Duration(0); now < 6*time.Second; now += time.Millisecond {
		clock = int64(now)
		inFlight := float64(a.limit.Load())
		rtt := float64(base) * math.Max(1, inFlight/k)
		carry += inFlight * float64(time.Millisecond) / rtt
		for ; carry >= 1; carry-- {
			b := a.admitted(int64(inFlight))
			calls++
			if a.sample() {
				timed++
				a.done(clock, int64(rtt), b)
			}
		}
		if now >= 5*time.Second && now%(10*time.Millisecond) == 0 {
			last = append(last, a.limit.Load())
		}
	}
	t.Logf("median limit %d, %d of %d calls timed", median(last), timed, calls)
	if m := median(last); m < 200 || m > 240 {
		t.Errorf("limit settled at %d, want 200..240 (knee 200 × 1.1 = 220)", m)
	}
	if frac := float64(timed) / float64(calls); frac > 0.3 {
		t.Errorf("%.0f%% of calls timed at 40,000 calls/s, want about 1/%d", 100*frac, sampleEvery)
	}
}
