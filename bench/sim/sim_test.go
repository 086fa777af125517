package sim_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/grpcmgmt/grpcmgmt/bench/sim"
	"github.com/grpcmgmt/grpcmgmt/goaway"
)

// small is a scenario that runs in milliseconds: 40 → 80 replicas, 8 000
// connections.
func small(b sim.Balancer) sim.Scenario {
	return sim.Scenario{Before: 40, After: 80, Conns: 8000, Balancer: b, Seed: 7}
}

// TestRepeatable: a seed fixes the run, deciders' jitter included.
func TestRepeatable(t *testing.T) {
	for _, b := range []sim.Balancer{sim.Random, sim.LeastConn, sim.DNS} {
		r1, err := sim.Run(small(b))
		if err != nil {
			t.Fatal(err)
		}
		r2, _ := sim.Run(small(b))
		if !reflect.DeepEqual(r1, r2) {
			t.Fatalf("%s: two runs with seed 7 differ: %+v\n%+v", b, r1, r2)
		}
		s := small(b)
		s.Seed = 8
		if r3, _ := sim.Run(s); reflect.DeepEqual(r1, r3) {
			t.Fatalf("%s: seeds 7 and 8 gave the same run: the seed is not used", b)
		}
	}
}

// TestConnectionsConserved: behind an L4 balancer every connection sent a
// GOAWAY lands somewhere, growing or shrinking.
func TestConnectionsConserved(t *testing.T) {
	for _, s := range []sim.Scenario{small(sim.Random), small(sim.P2C), small(sim.LeastConn),
		{Before: 80, After: 60, Conns: 8000, Balancer: sim.Random, Seed: 1}} {
		r, err := sim.Run(s)
		if err != nil {
			t.Fatal(err)
		}
		if r.Conns != s.Conns {
			t.Errorf("%s %d→%d: %d connections at the end, want %d", s.Balancer, s.Before, s.After, r.Conns, s.Conns)
		}
		if s.After < s.Before && (r.GoAways[goaway.ReasonDrain] == 0 || r.SecondsToFairShare < 0) {
			t.Errorf("scale-in: %d drain GOAWAYs, settled after %vs; want the removed replicas drained", r.GoAways[goaway.ReasonDrain], r.SecondsToFairShare)
		}
	}
}

// TestBaseline: without rebalancing the added replicas get nothing, and
// the balancer alone sets PlacementMaxOverMean (uniform random over 80
// replicas with 100 connections each leaves the busiest near 1.3 × mean).
func TestBaseline(t *testing.T) {
	s := small(sim.Random)
	s.Off = true
	r, err := sim.Run(s)
	if err != nil {
		t.Fatal(err)
	}
	if r.SecondsToFairShare >= 0 || r.NewShare[len(r.NewShare)-1] != 0 || r.GoAways[goaway.ReasonRebalance] != 0 {
		t.Fatalf("without rebalancing: fair share after %vs, added replicas' share %v, %d GOAWAYs; want never, 0, 0",
			r.SecondsToFairShare, r.NewShare[len(r.NewShare)-1], r.GoAways[goaway.ReasonRebalance])
	}
	if r.PlacementMaxOverMean < 1.1 || r.PlacementMaxOverMean > 1.6 {
		t.Fatalf("uniform random placement of 8 000 over 80: max/mean %.2f, want about 1.3", r.PlacementMaxOverMean)
	}
}

func TestRunRejects(t *testing.T) {
	for _, s := range []sim.Scenario{
		{Before: 0, After: 2, Conns: 10, Balancer: sim.Random},
		{Before: 2, After: 2, Conns: 10, Balancer: sim.Random},
		{Before: 2, After: 4, Conns: 1, Balancer: sim.Random},
		{Before: 2, After: 4, Conns: 10, Balancer: "roundrobin"},
		{Before: 2, After: 4, Conns: 10, Balancer: sim.DNS, Heavy: 1},
	} {
		if _, err := sim.Run(s); err == nil {
			t.Errorf("Run(%+v) did not fail", s)
		}
	}
	if _, err := sim.Run(sim.Scenario{Before: 2, After: 4, Conns: 10, Balancer: sim.Random, For: time.Second, ScaleAt: 500 * time.Millisecond}); err != nil {
		t.Errorf("a valid scenario failed: %v", err)
	}
}
