package goaway_test

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/grpcmgmt/grpcmgmt/goaway"
)

// fakeConns is a ConnSet whose connections leave when sent a GOAWAY; a
// share of them comes straight back (comeBack: a random or round-robin
// balancer, or DNS clients, which reconnect to the same replica).
type fakeConns struct {
	active   int
	comeBack func(sent int) int // connections that come back after a round; nil: none
	rounds   []int              // GOAWAYs sent per call
	minAges  []time.Duration
}

func (f *fakeConns) Active() int { return f.active }

func (f *fakeConns) GoAwayOlder(n int, _ goaway.Selector, r goaway.Reason, minAge time.Duration) int {
	n = min(n, f.active)
	f.active -= n
	f.rounds = append(f.rounds, n)
	f.minAges = append(f.minAges, minAge)
	if f.comeBack != nil {
		f.active += f.comeBack(n)
	}
	return n
}

func (f *fakeConns) sent() int {
	s := 0
	for _, n := range f.rounds {
		s += n
	}
	return s
}

// decider is a RebalanceDecider on a fakeConns, its own clock (t0 plus the
// lookups' seconds), a seeded jitter, and recorded logs and metrics.
type decider struct {
	*goaway.RebalanceDecider
	conns *fakeConns
	m     *meter
	logs  *logRecorder
	t0    time.Time
}

func newDecider(t *testing.T, conns int, cfg goaway.RebalanceConfig) *decider {
	t.Helper()
	return newDeciderCfgSeed(t, conns, cfg, 1)
}

// newDeciderSeed is a light decider (no metrics or logs kept) with its own
// seed, for runs of many.
func newDeciderSeed(t *testing.T, conns int, seed uint64) *decider {
	t.Helper()
	d := &decider{conns: &fakeConns{active: conns}, t0: time.Unix(1_700_000_000, 0)}
	// A short Settle: the episodes end soon after sending what they owe.
	rd, err := goaway.NewRebalanceDecider(d.conns, goaway.RebalanceConfig{Settle: time.Second}, goaway.DecisionOptions{
		Logger: slog.New(slog.DiscardHandler), MeterProvider: noop.NewMeterProvider(), Rand: rand.New(rand.NewPCG(seed, 2))})
	if err != nil {
		t.Fatal(err)
	}
	d.RebalanceDecider = rd
	return d
}

func newDeciderCfgSeed(t *testing.T, conns int, cfg goaway.RebalanceConfig, seed uint64) *decider {
	t.Helper()
	d := &decider{conns: &fakeConns{active: conns}, m: newMeter(), logs: &logRecorder{}, t0: time.Unix(1_700_000_000, 0)}
	rd, err := goaway.NewRebalanceDecider(d.conns, cfg, goaway.DecisionOptions{
		Logger: slog.New(d.logs), MeterProvider: d.m, Rand: rand.New(rand.NewPCG(seed, 2))})
	if err != nil {
		t.Fatal(err)
	}
	d.RebalanceDecider = rd
	return d
}

// lookup reports size members at secs on the decider's clock (size 0: an
// empty answer, -1: a failed lookup) and returns Observe's answer.
func (d *decider) lookup(secs float64, size int) (time.Duration, bool) {
	l := goaway.Lookup{At: d.t0.Add(time.Duration(secs * float64(time.Second)))}
	if size < 0 {
		l.Err = errors.New("lookup svc.test: i/o timeout")
	}
	if size > 0 {
		l.Members = someMembers[:size]
	}
	return d.Observe(l)
}

// someMembers are addresses for lookups of up to 1 000 members.
var someMembers = func() []string {
	out := make([]string, 1000)
	for i := range out {
		out[i] = fmt.Sprintf("10.0.%d.%d", i/256, i%256)
	}
	return out
}()

// runEpisode runs the rounds of the episode that first started, each after
// the delay the decider asked for, and returns the delays.
func (d *decider) runEpisode(first time.Duration) []time.Duration {
	delays := []time.Duration{first}
	for {
		next, ok := d.Round()
		if !ok {
			return delays
		}
		delays = append(delays, next)
	}
}

// TestDeciderGrowth: 12 connections, the set grows from 3 to 4: nothing
// until the growth was reported twice and for StableFor; then rounds over
// Window that keep 9 connections, and a decision recorded in the metric
// and the log.
func TestDeciderGrowth(t *testing.T) {
	const window = 2 * time.Second
	d := newDecider(t, 12, goaway.RebalanceConfig{})
	for _, l := range []struct {
		secs float64
		size int
	}{{-60, 3}, {1, 4}, {2, 4}} {
		if _, ok := d.lookup(l.secs, l.size); ok {
			t.Fatalf("lookup of %d at %vs started an episode: the growth is 1 s old, StableFor is 2 s", l.size, l.secs)
		}
	}
	first, ok := d.lookup(3, 4)
	if !ok {
		t.Fatal("a growth stable for 2 s did not start an episode")
	}
	delays := d.runEpisode(first)
	if got := d.conns.sent(); got != 3 || d.conns.active != 9 {
		t.Fatalf("sent %d GOAWAYs, %d connections left; want 3 and 9 (12 × 3/4)", got, d.conns.active)
	}
	var total time.Duration
	for _, dl := range delays {
		total += dl
	}
	step := window / 20
	if delays[0] < step/4 || delays[0] > 3*step/4 {
		t.Errorf("first round after %v, want within %v..%v (half a jittered step)", delays[0], step/4, 3*step/4)
	}
	for _, dl := range delays[1:] {
		if dl < step/2 || dl > 3*step/2 {
			t.Errorf("round delay %v outside %v..%v (a step of Window/20, ±50 %%)", dl, step/2, 3*step/2)
		}
	}
	// Nothing comes back: the episode ends once the connections have been
	// at the target for Settle (10 s).
	if total < goaway.DefaultSettle || total > goaway.DefaultSettle+window {
		t.Errorf("episode lasted %v of scheduled delays, want Settle (%v) and less than a Window more", total, goaway.DefaultSettle)
	}
	if got := d.m.sum(t, "grpcmgmt.goaway.rebalance.decisions", attribute.String("decision", "rebalance"),
		attribute.Int("replicas.before", 3), attribute.Int("replicas.after", 4)); got != 1 {
		t.Fatalf("decisions{rebalance, 3 → 4} = %d, want 1", got)
	}
	if done := d.logs.find("rebalance: done"); len(done) != 1 || done[0]["sent"].Int64() != 3 {
		t.Fatalf("episode end logs = %v, want one with sent=3", done)
	}
	if got := d.ReplicaSetSize(); got != 4 {
		t.Fatalf("ReplicaSetSize = %d, want 4", got)
	}
	if _, ok := d.Round(); ok {
		t.Fatal("Round after the episode ended reported another round")
	}
}

// TestDeciderComeBack: connections that all come straight back (DNS
// clients reconnecting to the same replica) are each sent one GOAWAY, at
// most 4 per round (2 × 40 / 20), and no more: every DNS client has heard
// one. After a growth below 2 %, only the owed share is sent.
func TestDeciderComeBack(t *testing.T) {
	d := newDecider(t, 40, goaway.RebalanceConfig{})
	d.conns.comeBack = func(sent int) int { return sent }
	d.lookup(-60, 3)
	d.lookup(1, 4)
	first, ok := d.lookup(3, 4)
	if !ok {
		t.Fatal("no episode")
	}
	d.runEpisode(first)
	if got := d.conns.sent(); got != 40 {
		t.Fatalf("sent %d GOAWAYs to connections that all come back, want one per connection: 40", got)
	}
	for i, n := range d.conns.rounds {
		if n > 4 {
			t.Fatalf("round %d sent %d, want at most 4 (2 × 40 / 20)", i, n)
		}
	}
	small := newDecider(t, 1000, goaway.RebalanceConfig{})
	small.conns.comeBack = func(sent int) int { return sent }
	small.lookup(-60, 99)
	small.lookup(1, 100)
	if first, ok = small.lookup(3, 100); !ok {
		t.Fatal("no episode")
	}
	small.runEpisode(first)
	// A round may send a returned connection along with the last owed one.
	if got := small.conns.sent(); got < 10 || got > 12 {
		t.Fatalf("growth 99 → 100: sent %d GOAWAYs to connections that come back, want the owed 10 (1000 × 1/100), give or take a round's", got)
	}
}

// TestDeciderComeBackByChance: 3 → 4 replicas, 8 connections, behind a
// round-robin balancer that sends 3 in 4 reconnections back to the old
// replicas. By chance the first 8 GOAWAYs all come back here (one time in
// ten at 3/4), which is also what DNS clients do. The replica must keep
// sending until it holds its share (6) rather than take the chance for DNS
// clients and stop 2 above it; with DNS clients (everything comes back)
// it stops once the count makes them the likelier explanation, at 12.
func TestDeciderComeBackByChance(t *testing.T) {
	d := newDecider(t, 8, goaway.RebalanceConfig{})
	sent := 0
	d.conns.comeBack = func(n int) int {
		back := 0
		for range n {
			sent++
			if sent <= 8 || sent%4 != 0 {
				back++
			}
		}
		return back
	}
	d.lookup(-60, 3)
	d.lookup(1, 4)
	first, ok := d.lookup(3, 4)
	if !ok {
		t.Fatal("no episode")
	}
	d.runEpisode(first)
	if d.conns.active != 6 {
		t.Fatalf("round-robin balancer, the first 8 GOAWAYs back by chance: ended with %d connections after %d GOAWAYs, want the share, 6", d.conns.active, d.conns.sent())
	}

	dns := newDecider(t, 8, goaway.RebalanceConfig{})
	dns.conns.comeBack = func(n int) int { return n }
	dns.lookup(-60, 3)
	dns.lookup(1, 4)
	if first, ok = dns.lookup(3, 4); !ok {
		t.Fatal("no episode")
	}
	dns.runEpisode(first)
	if got := dns.conns.sent(); got < 8 || got > 13 {
		t.Fatalf("DNS clients, 3 → 4: sent %d GOAWAYs, want one per connection and the few more it takes to tell them from a balancer: 8 to 13", got)
	}
}

// TestDeciderPace: behind a least-connections balancer (nothing comes
// back) a replica's GOAWAYs are paced so that the N old replicas together
// bring at most MaxArrivalRate reconnections per second to each of the M−N
// new ones: 9 → 10 replicas, 1 000 per second each: 111 per second per
// old replica.
func TestDeciderPace(t *testing.T) {
	d := newDecider(t, 9000, goaway.RebalanceConfig{})
	d.lookup(-60, 9)
	d.lookup(1, 10)
	first, ok := d.lookup(3, 10)
	if !ok {
		t.Fatal("no episode")
	}
	delays := d.runEpisode(first)
	var at time.Duration
	var sentBy2s int
	for i, n := range d.conns.rounds {
		at += delays[i]
		if at <= 2*time.Second {
			sentBy2s += n
		}
	}
	if got := d.conns.sent(); got != 900 {
		t.Fatalf("sent %d, want 900 (9000 × 1/10)", got)
	}
	if want := 2 * 1000.0 / 9; float64(sentBy2s) > want+1 || float64(sentBy2s) < want*0.8 {
		t.Fatalf("sent %d in the first 2 s, want about %.0f (1000/s × 1/9)", sentBy2s, want)
	}
	if got := d.m.sum(t, "grpcmgmt.goaway.rebalance.rounds", attribute.String("limit", "rate")); got == 0 {
		t.Fatal("no round counted as limited by the arrival rate")
	}
}

// TestDeciderHeldBeforeGrowth: connections that other replicas' rounds
// sent here before this one confirmed the growth are not kept: the share
// is computed on what was held before.
func TestDeciderHeldBeforeGrowth(t *testing.T) {
	d := newDecider(t, 100, goaway.RebalanceConfig{})
	d.lookup(-60, 5)
	d.lookup(1, 10)
	d.conns.active = 130 // the early replicas' reconnections arrive
	first, ok := d.lookup(3, 10)
	if !ok {
		t.Fatal("no episode")
	}
	d.runEpisode(first)
	// The tolerance is 50 × 5/(20 × 5) = 2.
	if d.conns.active < 50 || d.conns.active > 52 {
		t.Fatalf("kept %d connections, want 50 to 52 (half of the 100 held before the growth, not of 130, within the tolerance)", d.conns.active)
	}
}

// TestDeciderHeldNothing: a replica that held no connection before the
// growth (one of the added replicas, out of rotation until it) moves
// nothing, whatever arrives meanwhile.
func TestDeciderHeldNothing(t *testing.T) {
	d := newDecider(t, 0, goaway.RebalanceConfig{})
	d.lookup(-60, 8)
	d.lookup(1, 16)
	d.conns.active = 5
	if _, ok := d.lookup(3, 16); ok {
		t.Fatal("a replica that held nothing before the growth started an episode")
	}
}

// TestDeciderStartup: a replica that sees the set grow within Settle (10 s)
// of its first answer (a new replica, whose DNS cache answered without it) takes
// the grown set as its starting point.
func TestDeciderStartup(t *testing.T) {
	d := newDecider(t, 10, goaway.RebalanceConfig{})
	d.lookup(0, 5)
	d.lookup(3, 6)
	if _, ok := d.lookup(6, 6); ok {
		t.Fatal("a growth 3 s after the first answer started an episode")
	}
	if got := d.m.sum(t, "grpcmgmt.goaway.rebalance.decisions", attribute.String("decision", "startup")); got != 1 {
		t.Fatalf("decisions{startup} = %d, want 1", got)
	}
	d.lookup(60, 8)
	if _, ok := d.lookup(63, 8); !ok {
		t.Fatal("a later growth did not start an episode")
	}
}

// TestDeciderRounding: the share to send is rounded at random, so that a
// fleet of many replicas moves the exact share on average (999 replicas
// with 100 connections each, grown by one, move about 100, not 999); a
// small fleet where random rounding would often move nothing rounds up.
func TestDeciderRounding(t *testing.T) {
	total := 0
	for i := range 999 {
		d := newDeciderSeed(t, 100, uint64(i))
		d.lookup(-60, 999)
		d.lookup(1, 1000)
		if first, ok := d.lookup(3, 1000); ok {
			d.runEpisode(first)
		}
		total += d.conns.sent()
	}
	if total < 70 || total > 130 {
		t.Fatalf("999 replicas of 100 connections grown by one sent %d GOAWAYs, want about 100", total)
	}
	for i := range 20 {
		d := newDeciderSeed(t, 2, uint64(i))
		d.lookup(-60, 3)
		d.lookup(1, 4)
		first, _ := d.lookup(3, 4)
		d.runEpisode(first)
		if d.conns.sent() != 1 {
			t.Fatalf("3 → 4 replicas with 2 connections: sent %d, want 1 (half a connection, rounded up in a fleet of 3)", d.conns.sent())
		}
	}
}

// TestDeciderDoesNothing: a smaller set, a set that flaps faster than
// StableFor, lookups that fail or come back empty, and a set that grows
// back to a size seen recently start no episode. Each case ends with a
// real, stable growth, which must: the decider was listening all along.
func TestDeciderDoesNothing(t *testing.T) {
	cases := []struct {
		name string
		// lookups are (seconds, size) pairs after a first answer of 3 at 0;
		// size 0 is an empty answer, -1 a failed lookup.
		lookups [][2]float64
	}{
		{"shrink", [][2]float64{{1, 2}, {2, 2}, {3, 2}, {4, 1}, {5, 1}, {6, 1}}},
		{"flap every second", [][2]float64{{1, 4}, {2, 3}, {3, 4}, {4, 3}, {5, 4}, {6, 3}, {7, 4}, {8, 3}}},
		{"flap every 1.5 s", [][2]float64{{1, 4}, {1.5, 4}, {2, 4}, {2.5, 3}, {3, 4}, {3.5, 4}, {4, 4}, {4.5, 3}}},
		{"errors and empty answers", [][2]float64{{1, -1}, {2, 0}, {3, -1}, {4, 0}, {5, -1}, {6, 0}, {7, -1}}},
		{"growth interrupted by the old size", [][2]float64{{1, 4}, {2, -1}, {2.5, 3}, {3, 4}, {4, 0}}},
		{"back to a size seen recently", [][2]float64{{1, 2}, {2, 2}, {3, 2}, {4, 3}, {5, 3}, {6, 3}, {7, 3}}},
		{"bigger answer after an empty one", [][2]float64{{1, 0}, {2, 5}, {3, 0}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := newDecider(t, 12, goaway.RebalanceConfig{})
			d.lookup(-60, 3)
			last := 0.0
			for _, l := range tc.lookups {
				if _, ok := d.lookup(l[0], int(l[1])); ok {
					t.Fatalf("lookup of %v at %vs started an episode", l[1], l[0])
				}
				last = l[0]
			}
			if _, ok := d.Round(); ok || d.conns.sent() != 0 {
				t.Fatalf("a round ran (%d GOAWAYs) with no episode", d.conns.sent())
			}
			if got := d.m.sum(t, "grpcmgmt.goaway.rebalance.decisions", attribute.String("decision", "rebalance")); got != 0 {
				t.Fatalf("decisions{rebalance} = %d, want 0", got)
			}
			// Control: the set grows to 6 and stays: the server keeps 3/6
			// (or, after the shrink, 3 was the largest recent set: the same).
			var first time.Duration
			var ok bool
			for _, s := range []float64{1, 2, 3, 4} {
				if f, started := d.lookup(last+s, 6); started {
					first, ok = f, true
				}
			}
			if !ok {
				t.Fatal("a stable growth to 6 started no episode")
			}
			d.runEpisode(first)
			if got := d.conns.sent(); got != 6 {
				t.Fatalf("growth 3 → 6 sent %d GOAWAYs, want 6", got)
			}
		})
	}
	t.Run("failing lookups logged once each way", func(t *testing.T) {
		d := newDecider(t, 12, goaway.RebalanceConfig{})
		d.lookup(-60, 3)
		for _, s := range []float64{1, 2, 3} {
			d.lookup(s, -1)
		}
		d.lookup(4, 3)
		if f, w := d.logs.find("rebalance: replica set lookups failing"), d.logs.find("rebalance: replica set lookups work again"); len(f) != 1 || len(w) != 1 {
			t.Fatalf("logged failing %d times and working again %d times, want once each", len(f), len(w))
		}
		if got := d.m.sum(t, "grpcmgmt.goaway.replica_set.lookups", attribute.String("outcome", "error")); got != 3 {
			t.Fatalf("lookups{error} = %d, want 3", got)
		}
	})
}

// TestDeciderMemory: after a growth and a shrink, growing back to the same
// size within Memory does nothing; after Memory it acts again.
func TestDeciderMemory(t *testing.T) {
	d := newDecider(t, 12, goaway.RebalanceConfig{Memory: 30 * time.Second})
	var episodes int
	feed := func(size int, secs ...float64) {
		for _, s := range secs {
			if first, ok := d.lookup(s, size); ok {
				episodes++
				d.runEpisode(first)
			}
		}
	}
	feed(3, -60)
	feed(4, 1, 2, 3) // grows: acts
	if episodes != 1 || d.conns.sent() != 3 {
		t.Fatalf("first growth: %d episodes, %d GOAWAYs; want 1 and 3", episodes, d.conns.sent())
	}
	feed(3, 4, 5, 6)     // shrinks
	feed(4, 7, 8, 9, 10) // back within Memory: nothing
	if episodes != 1 {
		t.Fatal("growing back within Memory started an episode")
	}
	if got := d.m.sum(t, "grpcmgmt.goaway.rebalance.decisions", attribute.String("decision", "remembered")); got != 1 {
		t.Fatalf("decisions{remembered} = %d, want 1", got)
	}
	feed(3, 11, 12, 13)     // shrinks again
	feed(4, 50, 51, 52, 53) // back after Memory: acts
	if episodes != 2 {
		t.Fatalf("growing back after Memory: %d episodes, want 2", episodes)
	}
}

// TestDeciderGrowsAgain: a second growth during an episode replaces it,
// from the largest set confirmed (the first growth's).
func TestDeciderGrowsAgain(t *testing.T) {
	d := newDecider(t, 24, goaway.RebalanceConfig{})
	d.lookup(-60, 3)
	d.lookup(1, 4)
	if _, ok := d.lookup(3, 4); !ok {
		t.Fatal("no episode")
	}
	if _, ok := d.Round(); !ok { // 3 → 4 keeps 18: sends up to 3 per round
		t.Fatal("episode ended after one round")
	}
	sentBefore := d.conns.sent()
	d.lookup(3.1, 6)
	second, ok := d.lookup(5.2, 6)
	if !ok {
		t.Fatal("a second growth did not start an episode")
	}
	active := d.conns.active
	d.runEpisode(second)
	// 4 → 6 keeps 4/6 of what was active when it started.
	if want := active - active*4/6; d.conns.sent()-sentBefore != want {
		t.Fatalf("second episode sent %d, want %d (keep 4/6 of %d)", d.conns.sent()-sentBefore, want, active)
	}
	if got := d.logs.find("rebalance: replica set grew again; restarting"); len(got) != 1 {
		t.Fatalf("restart logged %d times, want once", len(got))
	}
}

// TestDeciderRepeatable: the same seed gives the same rounds: a simulation
// of many deciders can be rerun exactly.
func TestDeciderRepeatable(t *testing.T) {
	run := func() []time.Duration {
		d := newDecider(t, 100, goaway.RebalanceConfig{})
		d.conns.comeBack = func(sent int) int { return sent / 2 }
		d.lookup(-60, 5)
		d.lookup(1, 8)
		first, _ := d.lookup(3, 8)
		return d.runEpisode(first)
	}
	if a, b := run(), run(); !slices.Equal(a, b) {
		t.Fatalf("two runs with the same seed differ:\n%v\n%v", a, b)
	}
}

func TestNewRebalanceDecider(t *testing.T) {
	if _, err := goaway.NewRebalanceDecider(nil, goaway.RebalanceConfig{}, goaway.DecisionOptions{}); err == nil {
		t.Error("NewRebalanceDecider(nil ConnSet) did not fail")
	}
	if _, err := goaway.NewRebalanceDecider(&fakeConns{}, goaway.RebalanceConfig{Window: time.Millisecond}, goaway.DecisionOptions{}); err == nil {
		t.Error("NewRebalanceDecider with Window 1ms did not fail")
	}
	// Name and Watcher are the Rebalancer's: the decider needs neither.
	if _, err := goaway.NewRebalanceDecider(&fakeConns{}, goaway.RebalanceConfig{}, goaway.DecisionOptions{}); err != nil {
		t.Errorf("NewRebalanceDecider with no Name or Watcher: %v", err)
	}
}
