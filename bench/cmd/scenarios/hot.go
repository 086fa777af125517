package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
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

// healthOnlyConfig is round_robin with health checking and no retries.
const healthOnlyConfig = `{"loadBalancingConfig":[{"round_robin":{}}],"healthCheckConfig":{"serviceName":""}}`

// hotPairs is how many times the compared legs run, interleaved.
const hotPairs = 3

// hot: three replicas on real DNS, each with one CPU and one worker (10 ms
// per call: 100 calls/s); r1 turns hot at half capacity (20 ms per call).
// Open-loop load at 60 % of the fleet's capacity with 1 s deadlines. The
// library's replicas know their replica set (the fleet's DNS name, for the
// health guard). Legs equal, rr and health_only run interleaved hotPairs
// times; the figures are ratios of medians, with their spread over the
// pairs. The other legs run once: bare grpc-go (baseline),
// weighted_round_robin on ORCA (wrr; wrr_wait with replicas that wait
// instead of burning CPU, so the hot one is slow but not CPU-bound),
// library defaults (no shedding; defaults_set: with the replica set named),
// and the failsafe-go peer, each against
// its own equal fleet where one is needed for the ratio. HOT_LEGS=equal,rr
// runs a subset.
func runHot(ctx context.Context, e *env) error {
	peerBin, err := e.c.Build("./bench/cmd/peerserver")
	if err != nil {
		return err
	}
	e.c.ReplicaEnv = []string{"GOMAXPROCS=1"}
	defer func() { e.c.ReplicaEnv = nil }()
	lib := []string{"-shed", "-shed-adaptive", "-log-level", "warn"}
	replicas := func(extra []string, hotWork string) [][]string {
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
	mk := func(bin string, args [][]string, sc string, guard bool) cluster.Fleet {
		f := base
		f.Bin, f.Args, f.Guard = bin, args, guard
		if bin == e.serverBin {
			f.Watch = []string{"r1"} // its /metrics (the peer server has none)
		}
		if sc != "" {
			f.ServiceConfig = sc
		}
		return f
	}
	compared := []leg{
		{"equal", mk(e.serverBin, replicas(lib, ""), "", true)},
		{"rr", mk(e.serverBin, replicas(lib, "20ms"), "", true)},
		{"health_only", mk(e.serverBin, replicas([]string{"-log-level", "warn"}, "20ms"), healthOnlyConfig, true)},
	}
	var legs []leg
	for range hotPairs {
		legs = append(legs, compared...)
	}
	quiet := []string{"-log-level", "warn"}
	legs = append(legs,
		leg{"baseline_equal", mk(peerBin, replicas([]string{"-peer", "none"}, ""), "", false)},
		leg{"baseline", mk(peerBin, replicas([]string{"-peer", "none"}, "20ms"), "", false)},
		leg{"wrr", mk(e.serverBin, replicas(quiet, "20ms"), wrrConfig, false)},
		leg{"wrr_wait", mk(e.serverBin, waiting(quiet), wrrConfig, false)},
		// Library defaults: no shedding; health follows CPU or queueing.
		leg{"defaults_equal", mk(e.serverBin, replicas(quiet, ""), "", false)},
		leg{"defaults", mk(e.serverBin, replicas(quiet, "20ms"), "", false)},
		// The same defaults with the replica set named (the deployment
		// docs/kubernetes.md describes: the headless name, which
		// rebalancing needs anyway): health's guard and the latency
		// comparison with the peers come with it.
		leg{"defaults_set_equal", mk(e.serverBin, replicas(quiet, ""), "", true)},
		leg{"defaults_set", mk(e.serverBin, replicas(quiet, "20ms"), "", true)},
		// The failsafe-go adaptive limiter on every replica (no health
		// service: health checking clients count it as serving).
		leg{"failsafe", mk(peerBin, replicas([]string{"-peer", "failsafe"}, "20ms"), "", false)},
	)
	only := map[string]bool{}
	for _, n := range strings.Split(os.Getenv("HOT_LEGS"), ",") {
		if n != "" {
			only[n] = true
		}
	}
	p99 := map[string][]float64{} // seconds, one per run of the leg
	outShare := map[string][]float64{}
	for i, l := range legs {
		if len(only) > 0 && !only[l.name] {
			continue
		}
		run, err := l.f.RunWatched(ctx, e.c)
		e.c.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", l.name, err)
		}
		from, to := l.f.For-measure, l.f.For+2*time.Second
		w := run.Rec.Window(from, to)
		p99[l.name] = append(p99[l.name], w.Quantile(0.99).Seconds())
		var share, notServing, n float64
		for _, h := range run.Health["r1"] {
			if h.At >= from && h.At < l.f.For {
				share += h.RemovedShare
				if h.NotServing {
					notServing++
				}
				n++
			}
		}
		if n > 0 {
			share, notServing = share/n, notServing/n
			outShare[l.name] = append(outShare[l.name], share)
		}
		fmt.Fprintf(os.Stderr, "   %-14s p99 %v  share r1 %.2f r2 %.2f r3 %.2f  ok %d failed %d %v  r1 removed share %.2f, NOT_SERVING %.0f%% of the window\n",
			l.name, w.Quantile(0.99).Round(time.Millisecond), w.Share("r1"), w.Share("r2"), w.Share("r3"),
			w.OK, w.Failed, w.Codes, share, 100*notServing)
		if hs := run.Health["r1"]; len(hs) > 0 {
			fmt.Fprintf(os.Stderr, "   %-14s r1 removed share, every second: %s\n", "", shareTimeline(hs))
		}
		if l.name == "wrr" || l.name == "wrr_wait" {
			capShare := 50 / fleetCapacity
			e.results["hot."+l.name+".share_error"] = math.Abs(w.Share("r1")-capShare) / capShare
		}
		if i < len(compared) || i >= hotPairs*len(compared) { // one chart per leg
			if err := cluster.PerReplicaChart(filepath.Join(e.out, "hot_"+l.name+".svg"),
				"hot ("+l.name+"): calls/s per replica, r1 at half capacity", run.Rec.PerSecond(int(l.f.For/time.Second))); err != nil {
				return err
			}
		}
	}
	ratio := func(figure, leg, ref string) {
		a, b := p99[leg], p99[ref]
		if len(a) == 0 || len(a) != len(b) || median(b) <= 0 {
			return
		}
		e.results[figure] = median(a) / median(b)
		var pairs []float64
		for i := range a {
			if b[i] > 0 {
				pairs = append(pairs, a[i]/b[i])
			}
		}
		if len(pairs) > 0 {
			e.results[figure+"_min"], e.results[figure+"_max"] = slices.Min(pairs), slices.Max(pairs)
		}
	}
	ratio("hot.rr.p99_ratio", "rr", "equal")
	ratio("hot.health_only.p99_ratio", "health_only", "equal")
	if s := outShare["rr"]; len(s) > 0 {
		e.results["hot.seconds_out"] = median(s)
		e.results["hot.seconds_out_min"], e.results["hot.seconds_out_max"] = slices.Min(s), slices.Max(s)
	}
	if s := outShare["health_only"]; len(s) > 0 {
		e.results["hot.health_only.seconds_out"] = median(s)
	}
	if b, be := p99["baseline"], p99["baseline_equal"]; len(b) > 0 && len(be) > 0 && be[0] > 0 {
		e.results["hot.baseline.p99_ratio"] = b[0] / be[0]
	}
	ratio("hot.defaults.p99_ratio", "defaults", "defaults_equal")
	ratio("hot.defaults_set.p99_ratio", "defaults_set", "defaults_set_equal")
	if b, f := p99["baseline_equal"], p99["failsafe"]; len(b) > 0 && len(f) > 0 && b[0] > 0 {
		// Against bare grpc-go's equal fleet: failsafe-go adds no latency
		// to a fleet it does not shed from.
		e.results["hot.failsafe.p99_ratio"] = f[0] / b[0]
	}
	return nil
}

// shareTimeline prints a replica's removed share in each whole second
// (the last sample of the second; "." for a second without one): how the
// health lever followed the load.
func shareTimeline(hs []cluster.HealthSample) string {
	last := map[int]float64{}
	end := 0
	for _, h := range hs {
		sec := int(h.At / time.Second)
		last[sec] = h.RemovedShare
		end = max(end, sec)
	}
	var b strings.Builder
	for sec := 0; sec <= end; sec++ {
		if v, ok := last[sec]; ok {
			fmt.Fprintf(&b, " %.2f", v)
		} else {
			b.WriteString(" .")
		}
	}
	return b.String()
}

// median returns the median of v (the mean of the middle two for an even
// count); 0 for none.
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(v))
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
