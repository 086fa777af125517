package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/grpcmgmt/grpcmgmt/bench/cluster"
	"github.com/grpcmgmt/grpcmgmt/clientconfig"
)

// fleetPairs is how many times the compared legs of fleet_overload run,
// interleaved.
const fleetPairs = 3

// fleet_overload: three replicas on real DNS, each with one CPU and one
// worker (20 ms per call: 50 calls/s), all offered twice the fleet's
// measured capacity for 30 s in open loop (1 s deadlines), by standard
// grpc-go clients with round_robin, health checking and retries. Each of
// fleetPairs rounds measures the fleet's capacity (a closed loop of 32
// callers, 8 s, no shedding, health not following load), then runs, with
// the library's recommended server config (adaptive shedding, health
// following load on its defaults: CPU, queueing and refused calls), the
// legs guard (the replicas know their replica set: the outage guard) and
// time_bounded (no set: MaxNotServing and the cooldown), and the same two
// as closed loops (guard_closed, time_bounded_closed; figures
// fleet_overload.closed.*): 150 callers, about twice what the fleet serves
// within the 1 s deadline, as in the measurement of issue 13. Goodput is
// divided by the capacity measured in the same round; the figures are the
// medians over the rounds, with their spread.
//
// The last round adds, for reference, the replicas without shedding
// (figures fleet_overload.no_shed.*), health following in-flight calls too
// (4) as in issue 13's measurement: an open loop at twice the capacity
// fills every queue until calls time out, whatever health does, so
// goodput is low there; and a no_load leg (no shedding, health does not
// follow load).
func runFleetOverload(ctx context.Context, e *env) error {
	e.c.ReplicaEnv = []string{"GOMAXPROCS=1"}
	defer func() { e.c.ReplicaEnv = nil }()
	replicas := func(extra ...string) [][]string {
		var out [][]string
		for range 3 {
			out = append(out, append([]string{"-work", "20ms", "-workers", "1", "-log-level", "warn"}, extra...))
		}
		return out
	}
	noShed := []string{"-health-in-flight-enter", "4"}
	lib := []string{"-shed", "-shed-adaptive"}
	watch := []string{"r1", "r2", "r3"}
	capFleet := cluster.Fleet{Bin: e.serverBin, Args: replicas("-health-no-load"), Conns: 4, For: 8 * time.Second,
		CallTimeout: 10 * time.Second, ServiceConfig: clientconfig.RoundRobin}
	const window = 30 * time.Second
	type leg struct {
		name string
		f    cluster.Fleet
	}
	mk := func(guard bool, rate float64, args [][]string) cluster.Fleet {
		return cluster.Fleet{Bin: e.serverBin, Args: args, Conns: 4, Rate: rate, For: window, CallTimeout: time.Second,
			ServiceConfig: clientconfig.RoundRobin, Guard: guard, Watch: watch}
	}
	closed := func(guard bool, args [][]string) cluster.Fleet {
		f := mk(guard, 0, args)
		f.Callers = 150
		return f
	}
	unavailable := map[string][]float64{}
	goodput := map[string][]float64{}
	failed := map[string][]float64{} // share of the calls made
	maxOut := map[string][]float64{}
	var capacities []float64
	runLeg := func(l leg, capacity float64, chart bool) error {
		run, err := l.f.RunWatched(ctx, e.c)
		e.c.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", l.name, err)
		}
		// Every call offered in the window (those still running at its
		// end get up to their deadline).
		w := run.Rec.Window(0, window+2*time.Second)
		g := float64(w.OK) / window.Seconds() / capacity
		out := run.MaxNotServing(0, window)
		unavailable[l.name] = append(unavailable[l.name], float64(w.NoServing))
		if n := w.OK + w.Failed; n > 0 {
			failed[l.name] = append(failed[l.name], float64(w.Failed)/float64(n))
		}
		goodput[l.name] = append(goodput[l.name], g)
		maxOut[l.name] = append(maxOut[l.name], float64(out))
		fmt.Fprintf(os.Stderr, "   %-21s goodput %.2f of capacity  ok %d failed %d %v  failed because no replica was SERVING %d  most replicas NOT_SERVING at once %d\n",
			l.name, g, w.OK, w.Failed, w.Codes, w.NoServing, out)
		if chart {
			return cluster.PerReplicaChart(filepath.Join(e.out, "fleet_overload_"+l.name+".svg"),
				"fleet_overload ("+l.name+"): calls/s per replica, 3 replicas offered 2× capacity", run.Rec.PerSecond(int(window/time.Second)))
		}
		return nil
	}
	for round := range fleetPairs {
		capacity, err := capFleet.Capacity(ctx, e.c, 32)
		e.c.Close()
		if err != nil {
			return err
		}
		capacities = append(capacities, capacity)
		fmt.Fprintf(os.Stderr, "   measured fleet capacity %.0f calls/s (nominal 150)\n", capacity)
		legs := []leg{
			{"guard", mk(true, 2*capacity, replicas(lib...))},
			{"time_bounded", mk(false, 2*capacity, replicas(lib...))},
			{"guard_closed", closed(true, replicas(lib...))},
			{"time_bounded_closed", closed(false, replicas(lib...))},
		}
		if round == fleetPairs-1 {
			legs = append(legs,
				leg{"no_shed", mk(true, 2*capacity, replicas(noShed...))},
				leg{"no_shed_closed", closed(true, replicas(noShed...))},
				leg{"no_load", mk(false, 2*capacity, replicas("-health-no-load"))})
		}
		for _, l := range legs {
			if err := runLeg(l, capacity, round == 0 || round == fleetPairs-1 && slices.Contains([]string{"no_shed", "no_shed_closed", "no_load"}, l.name)); err != nil {
				return err
			}
		}
	}
	spread := func(figure string, v []float64) {
		if len(v) == 0 {
			return
		}
		e.results[figure] = median(v)
		if len(v) > 1 {
			e.results[figure+"_min"], e.results[figure+"_max"] = slices.Min(v), slices.Max(v)
		}
	}
	spread("fleet_overload.capacity_qps", capacities)
	spread("fleet_overload.failed_unavailable", unavailable["guard"])
	spread("fleet_overload.goodput_ratio", goodput["guard"])
	spread("fleet_overload.max_not_serving", maxOut["guard"])
	spread("fleet_overload.time_bounded.failed_unavailable", unavailable["time_bounded"])
	spread("fleet_overload.time_bounded.goodput_ratio", goodput["time_bounded"])
	spread("fleet_overload.time_bounded.max_not_serving", maxOut["time_bounded"])
	spread("fleet_overload.no_load.goodput_ratio", goodput["no_load"])
	spread("fleet_overload.no_shed.failed_unavailable", unavailable["no_shed"])
	spread("fleet_overload.no_shed.goodput_ratio", goodput["no_shed"])
	spread("fleet_overload.no_shed.closed.failed_unavailable", unavailable["no_shed_closed"])
	spread("fleet_overload.no_shed.closed.goodput_ratio", goodput["no_shed_closed"])
	for _, l := range []string{"guard", "time_bounded"} {
		p := "fleet_overload.closed."
		if l != "guard" {
			p += l + "."
		}
		spread(p+"failed_unavailable", unavailable[l+"_closed"])
		spread(p+"goodput_ratio", goodput[l+"_closed"])
		spread(p+"max_not_serving", maxOut[l+"_closed"])
		spread(p+"failed_share", failed[l+"_closed"])
	}
	return nil
}
