package loadshed

import (
	"log/slog"
	"testing"
)

// TestGateBoostBound: while calls are shed and the slots at the knee stand
// idle (the prediction missed), the gate's boost grows, up to 2 for a
// steady service (spread 1) and up to 4 for one whose calls vary.
func TestGateBoostBound(t *testing.T) {
	for _, c := range []struct {
		spread int64
		want   float64
	}{{1, steadyMaxBoost}, {4, maxBoost}} {
		cfg := AdaptiveConfig{}.withDefaults()
		a := newAdaptive(cfg, slog.New(slog.DiscardHandler), func() int64 { return 0 }, func() (uint64, uint64, int64) { return 0, 0, 0 })
		a.spread.Store(c.spread)
		a.est, a.baseline, a.overload = 4, 10_000, 3 // K 4, W0 10 ms, 3× overloaded
		for range 50 {
			// A 1 s window: 200 completed (half of what K = 4 at 10 ms
			// serves), 600 offered.
			a.gate(200, 600, 1e9, true)
		}
		if a.boost != c.want {
			t.Errorf("spread %d: boost %v after 50 windows of idle slots under overload, want %v", c.spread, a.boost, c.want)
		}
	}
}
