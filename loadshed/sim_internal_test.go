package loadshed

import (
	"container/heap"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/otel/metric/noop"
)

// The adaptive limit against model services, on a simulated clock: a
// discrete-event simulation drives the real Shedder (admit and done, with
// its clock injected) with open-loop arrivals, so every figure is
// deterministic (seeded) and a run of many simulated seconds takes
// milliseconds.

// model is a service: calls first spend outside (a downstream call, any
// number at once), then wait for one of workers slots and hold it for
// inside.
type model struct {
	name    string
	workers int
	// inside and outside return a call's times for a call arriving at t.
	inside  func(r *rand.Rand, t time.Duration) time.Duration
	outside func(t time.Duration) time.Duration
}

func fixed(d time.Duration) func(*rand.Rand, time.Duration) time.Duration {
	return func(*rand.Rand, time.Duration) time.Duration { return d }
}

// capacity is calls per second at full use of the workers (mean inside
// time, at time t).
func (m model) capacity(t time.Duration) float64 {
	r := rand.New(rand.NewPCG(1, 2))
	var sum time.Duration
	for range 1000 {
		sum += m.inside(r, t)
	}
	return float64(m.workers) / (sum / 1000).Seconds()
}

type event struct {
	at   time.Duration
	kind int // arrival, outsideDone, insideDone
	call *simCall
}

const (
	evArrival = iota
	evOutside
	evInside
)

type simCall struct {
	arrived time.Duration
	phase   int
	counted bool // arrived after its phase's warm-up
	tok     token
	inside  time.Duration
}

type events []event

func (e events) Len() int { return len(e) }
func (e events) Less(i, j int) bool {
	if e[i].at != e[j].at {
		return e[i].at < e[j].at
	}
	return e[i].kind > e[j].kind // completions before arrivals at the same instant
}
func (e events) Swap(i, j int) { e[i], e[j] = e[j], e[i] }
func (e *events) Push(x any)   { *e = append(*e, x.(event)) }
func (e *events) Pop() any {
	old := *e
	x := old[len(old)-1]
	*e = old[:len(old)-1]
	return x
}

// phase is a stretch of constant offered load, as a multiple of the
// capacity at its start.
type phase struct {
	mult float64
	d    time.Duration
}

// simResult holds per phase: the completed calls' latencies (after skip),
// completions within the deadline, calls offered and shed; and the limit
// every 10ms.
type simResult struct {
	lat     [][]time.Duration
	good    []int
	offered []int
	shed    []int
	limits  []int64 // every 10ms of simulated time
}

func (r simResult) p99(i int) time.Duration {
	l := slices.Clone(r.lat[i])
	slices.Sort(l)
	if len(l) == 0 {
		return 0
	}
	return l[len(l)*99/100]
}

// simulate runs the phases against m with a Shedder built from cfg.
// Arrivals are evenly spaced with ±jitter of the spacing (a load generator
// on a busy machine), or Poisson.
func simulate(t *testing.T, m model, cfg AdaptiveConfig, phases []phase, poisson bool, seed uint64) simResult {
	t.Helper()
	s, err := New(Config{Adaptive: &cfg, MeterProvider: noop.NewMeterProvider(), Logger: simLogger})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var now time.Duration
	s.clock = func() int64 { return int64(now) }
	r := rand.New(rand.NewPCG(seed, 7))
	deadline := max(250*time.Millisecond, 10*time.Duration(float64(time.Second)/m.capacity(0)*float64(m.workers)))
	var res simResult
	var q events
	var waiting []*simCall
	busy := 0
	startInside := func(c *simCall) {
		busy++
		c.inside = m.inside(r, now)
		heap.Push(&q, event{at: now + c.inside, kind: evInside, call: c})
	}
	var start time.Duration
	const skip = time.Second
	complete := func(c *simCall) {
		busy--
		if len(waiting) > 0 {
			w := waiting[0]
			waiting = waiting[1:]
			startInside(w)
		}
		s.done(c.tok, false)
		if lat := now - c.arrived; c.counted {
			if lat <= deadline {
				res.good[c.phase]++
			}
			res.lat[c.phase] = append(res.lat[c.phase], lat)
		}
	}
	step := func(ev event) {
		for ; len(res.limits) < int(ev.at/(10*time.Millisecond)); res.limits = append(res.limits, s.Limit()) {
		}
		now = ev.at
		switch ev.kind {
		case evOutside:
			if busy < m.workers {
				startInside(ev.call)
			} else {
				waiting = append(waiting, ev.call)
			}
		case evInside:
			complete(ev.call)
		}
	}
	for pi, ph := range phases {
		res.lat = append(res.lat, nil)
		res.good = append(res.good, 0)
		res.offered = append(res.offered, 0)
		res.shed = append(res.shed, 0)
		spacing := time.Duration(float64(time.Second) / (ph.mult * m.capacity(start)))
		end := start + ph.d
		for next := start; next < end; {
			for q.Len() > 0 && q[0].at <= next {
				step(heap.Pop(&q).(event))
			}
			now = next
			res.offered[pi]++
			if tok, why := s.admit(Critical, true, true); why != admitted {
				_ = s.rejected(why, Critical, "/sim/Call")
				res.shed[pi]++
			} else {
				c := &simCall{arrived: now, phase: pi, counted: now >= start+skip, tok: tok}
				heap.Push(&q, event{at: now + m.outside(now), kind: evOutside, call: c})
			}
			if poisson {
				next += time.Duration(r.ExpFloat64() * float64(spacing))
			} else {
				next += spacing + time.Duration((r.Float64()-0.5)*float64(spacing))
			}
		}
		start = end
	}
	for q.Len() > 0 {
		step(heap.Pop(&q).(event))
	}
	return res
}

// profiles are the service shapes of the adaptive scenario.
var profiles = []model{
	{name: "cpu1", workers: 1, inside: fixed(10 * time.Millisecond), outside: noWait},
	{name: "cpu4", workers: 4, inside: fixed(5 * time.Millisecond), outside: noWait},
	{name: "io", workers: 200, inside: fixed(50 * time.Millisecond), outside: noWait},
	{name: "mixed", workers: 4, inside: func(r *rand.Rand, _ time.Duration) time.Duration {
		if r.IntN(2) == 0 {
			return time.Millisecond
		}
		return 50 * time.Millisecond
	}, outside: noWait},
	{name: "knee5", workers: 1, inside: fixed(5 * time.Millisecond), outside: func(time.Duration) time.Duration { return 20 * time.Millisecond }},
}

func noWait(time.Duration) time.Duration { return 0 }

// TestAdaptiveProfiles: for each profile, offered 0.5×, 1×, 3×, 10× its
// capacity (each phase fresh after 0.5×, for its own start-up): at 1×
// goodput is at least 97 % of what is offered; at 3× and 10× it is at least
// 95 % of capacity and p99 at most twice p99 at 0.5× (the aims of
// BENCH.md's adaptive scenario). Evenly spaced arrivals with jitter, and
// Poisson arrivals.
func TestAdaptiveProfiles(t *testing.T) {
	for _, m := range profiles {
		for _, poisson := range []bool{false, true} {
			name := m.name
			if poisson {
				name += "/poisson"
			}
			t.Run(name, func(t *testing.T) {
				d := 6 * time.Second
				ref := simulate(t, m, AdaptiveConfig{}, []phase{{0.5, d}}, poisson, 1)
				p99 := ref.p99(0)
				for _, mult := range []float64{1, 3, 10} {
					res := simulate(t, m, AdaptiveConfig{}, []phase{{0.5, 2 * time.Second}, {mult, d}}, poisson, 2)
					span := (d - time.Second).Seconds()
					goodput := float64(res.good[1]) / span / m.capacity(0)
					offered := float64(res.offered[1]) / d.Seconds() / m.capacity(0)
					ratio := float64(res.p99(1)) / float64(p99)
					lim := slices.Clone(res.limits[len(res.limits)/2:])
					slices.Sort(lim)
					t.Logf("%4.0f×: goodput %.3f of capacity (offered %.2f), shed %d of %d, p99 %v (0.5×: %v, ratio %.2f), limit median %d",
						mult, goodput, offered, res.shed[1], res.offered[1], res.p99(1), p99, ratio, lim[len(lim)/2])
					switch {
					case mult == 1 && poisson:
						// At 1× Poisson arrivals make an unstable queue (M/D/1
						// at ρ = 1): some calls must be shed or wait without
						// bound. Reported, not asserted.
					case mult == 1 && goodput/offered < 0.97:
						t.Errorf("1×: goodput ÷ offered %.3f (shed %d of %d), want at least 0.97", goodput/offered, res.shed[1], res.offered[1])
					case mult > 1 && goodput < 0.95:
						t.Errorf("%.0f×: goodput %.3f of capacity, want at least 0.95", mult, goodput)
					case mult > 1 && ratio > 2:
						t.Errorf("%.0f×: p99 %v is %.2f× p99 at 0.5× (%v), want at most 2", mult, res.p99(1), ratio, p99)
					}
				}
			})
		}
	}
}

// simLogger receives the Shedder's logs; LOADSHED_DEBUG=1 shows every window
// of the adaptive limit (go test -v -run 'TestAdaptiveProfiles/cpu1$').
var simLogger = func() *slog.Logger {
	if os.Getenv("LOADSHED_DEBUG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}()

// TestAdaptiveFollowsDrift: a service whose work in its one slot doubles at
// t=10s and returns at t=20s (20 ms downstream, then 5 ms or 10 ms of
// work: a knee of 5 calls, then 3), offered 3× its slower capacity
// throughout. The limit settles at each knee within 3 s of each change.
func TestAdaptiveFollowsDrift(t *testing.T) {
	m := model{name: "drift", workers: 1,
		inside: func(_ *rand.Rand, t time.Duration) time.Duration {
			if t >= 10*time.Second && t < 20*time.Second {
				return 10 * time.Millisecond
			}
			return 5 * time.Millisecond
		},
		outside: func(time.Duration) time.Duration { return 20 * time.Millisecond },
	}
	// 3× of 100 calls/s, the slower capacity: 1.5× of the faster one.
	res := simulate(t, m, AdaptiveConfig{}, []phase{{1.5, 30 * time.Second}}, false, 3)
	for _, c := range []struct {
		from time.Duration
		knee int64
	}{{2 * time.Second, 5}, {10 * time.Second, 3}, {20 * time.Second, 5}} {
		settled := time.Duration(-1)
		i0 := int(c.from / (10 * time.Millisecond))
		for i := i0; i < i0+900; i++ {
			ok := true
			for _, l := range res.limits[i : i+100] { // within ±1 for a whole second
				ok = ok && l >= c.knee-1 && l <= c.knee+1
			}
			if ok {
				settled = time.Duration(i-i0) * 10 * time.Millisecond
				break
			}
		}
		var every []int64
		for i := i0; i < i0+400; i += 40 {
			every = append(every, res.limits[i])
		}
		t.Logf("from %v: knee %d, settled after %v; limit every 400ms: %v", c.from, c.knee, settled, every)
		if settled < 0 || settled > 3*time.Second {
			t.Errorf("from %v: the limit did not settle within ±1 of the knee %d within 3s (settled after %v)", c.from, c.knee, settled)
		}
	}
}

// TestAdaptiveOverloadedFromStart: a replica offered 3× its capacity from
// its first call never sees a call run alone; the limit is pinned to 1 to
// measure the no-load latency, then settles at the knee.
func TestAdaptiveOverloadedFromStart(t *testing.T) {
	for _, m := range []model{profiles[0], profiles[1], profiles[4]} { // cpu1, cpu4, knee5
		knee := map[string]int64{"cpu1": 1, "cpu4": 4, "knee5": 5}[m.name]
		res := simulate(t, m, AdaptiveConfig{}, []phase{{3, 6 * time.Second}}, false, 4)
		pinned := slices.Contains(res.limits[:200], 1) // within the first 2 s
		lim := slices.Clone(res.limits[300:])
		slices.Sort(lim)
		med := lim[len(lim)/2]
		t.Logf("%s: pinned to 1 in the first 2s: %v; limit median after 3s %d (knee %d)", m.name, pinned, med, knee)
		if !pinned || med < knee || med > knee+1 {
			t.Errorf("%s: pinned %v, limit median %d; want pinned, then the knee %d (or one more)", m.name, pinned, med, knee)
		}
	}
}

// TestAdaptiveReprobes: under sustained overload no call runs alone; every
// ProbeInterval the limit is pinned to a quarter of itself for a few calls
// to measure the no-load latency again, and returns to the knee.
func TestAdaptiveReprobes(t *testing.T) {
	m := profiles[1] // cpu4
	res := simulate(t, m, AdaptiveConfig{ProbeInterval: 3 * time.Second}, []phase{{3, 20 * time.Second}}, false, 5)
	pins := 0
	for i := 1; i < len(res.limits); i++ {
		if res.limits[i] == 1 && res.limits[i-1] > 1 {
			pins++
		}
	}
	lim := slices.Clone(res.limits[len(res.limits)/2:])
	slices.Sort(lim)
	t.Logf("%d pins in 20s with ProbeInterval 3s; limit median %d", pins, lim[len(lim)/2])
	if pins < 3 || pins > 8 {
		t.Errorf("%d pins in 20s of overload with ProbeInterval 3s (±15%%), want 4..6 or so", pins)
	}
	if med := lim[len(lim)/2]; med != 4 {
		t.Errorf("limit median %d between probes, want the knee 4", med)
	}
}

// TestAdaptiveStartsUnderLoad: a replica started under load, of a service
// that takes many calls at once (io: 50 ms, 200 at once), sheds little:
// the limit grows from InitialLimit (20) while the calls take no longer
// than at 20 in flight, instead of shedding all beyond 20 until a pin to 1
// has measured the no-load latency (34 % and 39 % of the first 4 s at
// 0.5× and 1× before). And a service that queues, whose first call was
// slow (a cold start: 300 ms against 10 ms), grows its limit at most one
// step (its latency rises with the limit, which stops the growth for
// good), then pins to 1 and settles at its knee.
func TestAdaptiveStartsUnderLoad(t *testing.T) {
	io := profiles[2]
	for _, c := range []struct {
		mult float64
		max  float64
	}{{0.5, 0.08}, {1, 0.10}} {
		res := simulate(t, io, AdaptiveConfig{}, []phase{{c.mult, 4 * time.Second}}, false, 9)
		shed := float64(res.shed[0]) / float64(res.offered[0])
		need := int64(c.mult * float64(io.workers)) // calls in flight at this load
		t.Logf("io at %g×: shed %.3f of the first 4s (%d of %d); limit at 1s %d, at 4s %d (%d calls in flight needed)",
			c.mult, shed, res.shed[0], res.offered[0], res.limits[100], res.limits[len(res.limits)-1], need)
		if shed > c.max {
			t.Errorf("io at %g×: %.3f of the calls of the first 4s shed, want at most %.2f", c.mult, shed, c.max)
		}
		if l := res.limits[100]; l < need {
			t.Errorf("io at %g×: limit %d after 1s, want at least the %d calls in flight the load needs", c.mult, l, need)
		}
	}
	cold := model{name: "cpu1-cold", workers: 1, inside: fixed(10 * time.Millisecond),
		outside: func(at time.Duration) time.Duration {
			if at == 0 { // the first call: a connection to a dependency made, say
				return 290 * time.Millisecond
			}
			return 0
		}}
	res := simulate(t, cold, AdaptiveConfig{}, []phase{{3, 6 * time.Second}}, false, 4)
	pinned := slices.Contains(res.limits[:200], 1)
	lim := slices.Clone(res.limits[300:])
	slices.Sort(lim)
	med := lim[len(lim)/2]
	t.Logf("cpu1 with a cold first call at 3×: pinned to 1 in the first 2s: %v; limit median after 3s %d; most in the first second %d",
		pinned, med, slices.Max(res.limits[:100]))
	if !pinned || med > 2 {
		t.Errorf("cpu1 with a cold first call: pinned %v, limit median %d; want pinned, then the knee 1 (or 2)", pinned, med)
	}
	if m := slices.Max(res.limits[:100]); m > 2*20 {
		t.Errorf("cpu1 with a cold first call: the limit reached %d in the first second, want at most twice InitialLimit (20): its latency rose", m)
	}
}

// TestAdaptiveSkipsIdleProbes: a probe pins the limit to a quarter of
// itself and sheds most calls while it lasts; when the limit has held
// nothing back in its last windows and the calls take their no-load latency,
// nothing says the no-load latency changed, and the probe is skipped. The
// four-worker profile at half its capacity with a probe due every second:
// no pin in the 10 s after its first measurement (before: one a second,
// 54–63 calls shed in those 10 s, none now); TestAdaptiveReprobes holds
// that probes still come under overload.
func TestAdaptiveSkipsIdleProbes(t *testing.T) {
	m := profiles[1] // cpu4
	res := simulate(t, m, AdaptiveConfig{ProbeInterval: time.Second}, []phase{{0.5, 3 * time.Second}, {0.5, 10 * time.Second}}, false, 6)
	pins := 0
	for i := 301; i < len(res.limits); i++ {
		if res.limits[i] <= 2 && res.limits[i-1] > 2 {
			pins++
		}
	}
	t.Logf("cpu4 at 0.5×, a probe due every second: %d pins and %d of %d calls shed in the 10 s after the first 3", pins, res.shed[1], res.offered[1])
	if pins != 0 {
		t.Errorf("%d pins at half the capacity with calls at their no-load latency, want none", pins)
	}
}
