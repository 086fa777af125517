package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/grpcmgmt/grpcmgmt/bench/cluster"
	"github.com/grpcmgmt/grpcmgmt/clientconfig"
)

// wrrConfig is clientconfig.WeightedRoundRobin (per-call reports, both
// spellings, health checking and retries) with the blackout shortened to
// 2 s, so that weights apply within the scenario's warm-up.
var wrrConfig = func() string {
	var sc map[string]any
	if err := json.Unmarshal([]byte(clientconfig.WeightedRoundRobin), &sc); err != nil {
		panic(err)
	}
	w := sc["loadBalancingConfig"].([]any)[0].(map[string]any)["weighted_round_robin"].(map[string]any)
	w["blackoutPeriod"], w["blackout_period"] = "2s", "2s"
	b, err := json.Marshal(sc)
	if err != nil {
		panic(err)
	}
	return string(b)
}()

// hot: three replicas on real DNS, each with one CPU and one worker (10 ms
// per call: 100 calls/s); r1 turns hot at half capacity (20 ms per call).
// Open-loop load at 60 % of the fleet's capacity with 1 s deadlines. Legs:
// shedding + health (rr), bare grpc-go (baseline), weighted_round_robin on
// ORCA (wrr; wrr_wait with replicas that wait instead of burning CPU, so
// the hot one is slow but not CPU-bound), library defaults (no shedding),
// and the failsafe-go peer,
// each against its own equal fleet where one is needed for the ratio.
func runHot(ctx context.Context, e *env) error {
	peerBin, err := e.c.Build("./bench/cmd/peerserver")
	if err != nil {
		return err
	}
	e.c.ReplicaEnv = []string{"GOMAXPROCS=1"}
	defer func() { e.c.ReplicaEnv = nil }()
	lib := []string{"-shed", "-shed-adaptive", "-log-level", "warn"}
	replicas := func(bin string, extra []string, hotWork string) [][]string {
		var out [][]string
		for i := range 3 {
			work := "10ms"
			if i == 0 && hotWork != "" {
				work = hotWork
			}
			out = append(out, append([]string{"-work", work, "-workers", "1"}, extra...))
		}
		return out
	}
	// The same capacities, but each call waits without CPU (a lock held
	// across a slow disk): the hot replica is slow, not CPU-bound.
	waiting := func(extra []string) [][]string {
		var out [][]string
		for i := range 3 {
			wait := "10ms"
			if i == 0 {
				wait = "20ms"
			}
			out = append(out, append([]string{"-wait", wait, "-workers", "1"}, extra...))
		}
		return out
	}
	const fleetCapacity = 250.0 // 100 + 100 + 50 calls/s with r1 hot
	base := cluster.Fleet{Conns: 4, Rate: 0.6 * fleetCapacity, For: 25 * time.Second, CallTimeout: time.Second,
		ServiceConfig: clientconfig.RoundRobin}
	measure := 10 * time.Second // the last 10 s: after the levers had time
	type leg struct {
		name string
		f    cluster.Fleet
	}
	mk := func(bin string, args [][]string, sc string) cluster.Fleet {
		f := base
		f.Bin, f.Args = bin, args
		if sc != "" {
			f.ServiceConfig = sc
		}
		return f
	}
	legs := []leg{
		{"equal", mk(e.serverBin, replicas(e.serverBin, lib, ""), "")},
		{"rr", mk(e.serverBin, replicas(e.serverBin, lib, "20ms"), "")},
		{"baseline_equal", mk(peerBin, replicas(peerBin, []string{"-peer", "none"}, ""), "")},
		{"baseline", mk(peerBin, replicas(peerBin, []string{"-peer", "none"}, "20ms"), "")},
		{"wrr", mk(e.serverBin, replicas(e.serverBin, []string{"-log-level", "warn"}, "20ms"), wrrConfig)},
		{"wrr_wait", mk(e.serverBin, waiting([]string{"-log-level", "warn"}), wrrConfig)},
		// Library defaults: no shedding; health follows CPU or queueing.
		{"defaults_equal", mk(e.serverBin, replicas(e.serverBin, []string{"-log-level", "warn"}, ""), "")},
		{"defaults", mk(e.serverBin, replicas(e.serverBin, []string{"-log-level", "warn"}, "20ms"), "")},
		// The failsafe-go adaptive limiter on every replica (no health
		// service: health checking clients count it as serving).
		{"failsafe", mk(peerBin, replicas(peerBin, []string{"-peer", "failsafe"}, "20ms"), "")},
	}
	only := map[string]bool{} // HOT_LEGS=equal,rr runs a subset
	for _, n := range strings.Split(os.Getenv("HOT_LEGS"), ",") {
		if n != "" {
			only[n] = true
		}
	}
	p99 := map[string]time.Duration{}
	for _, l := range legs {
		if len(only) > 0 && !only[l.name] {
			continue
		}
		rec, err := l.f.Run(ctx, e.c)
		e.c.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", l.name, err)
		}
		w := rec.Window(l.f.For-measure, l.f.For+2*time.Second)
		p99[l.name] = w.Quantile(0.99)
		fmt.Fprintf(os.Stderr, "   %-14s p99 %v  share r1 %.2f r2 %.2f r3 %.2f  ok %d failed %d %v\n", l.name,
			p99[l.name].Round(time.Millisecond), w.Share("r1"), w.Share("r2"), w.Share("r3"), w.OK, w.Failed, w.Codes)
		if l.name == "wrr" || l.name == "wrr_wait" {
			capShare := 50 / fleetCapacity
			e.results["hot."+l.name+".share_error"] = math.Abs(w.Share("r1")-capShare) / capShare
		}
		if err := cluster.PerReplicaChart(filepath.Join(e.out, "hot_"+l.name+".svg"),
			"hot ("+l.name+"): calls/s per replica, r1 at half capacity", rec.PerSecond(int(l.f.For/time.Second))); err != nil {
			return err
		}
	}
	if p99["equal"] > 0 {
		e.results["hot.rr.p99_ratio"] = float64(p99["rr"]) / float64(p99["equal"])
	}
	if p99["baseline_equal"] > 0 {
		e.results["hot.baseline.p99_ratio"] = float64(p99["baseline"]) / float64(p99["baseline_equal"])
		// Against bare grpc-go's equal fleet: failsafe-go adds no latency
		// to a fleet it does not shed from.
		e.results["hot.failsafe.p99_ratio"] = float64(p99["failsafe"]) / float64(p99["baseline_equal"])
	}
	if p99["defaults_equal"] > 0 {
		e.results["hot.defaults.p99_ratio"] = float64(p99["defaults"]) / float64(p99["defaults_equal"])
	}
	return nil
}
