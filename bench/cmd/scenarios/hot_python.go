package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/grpcmgmt/grpcmgmt/bench/cluster"
	"github.com/grpcmgmt/grpcmgmt/clientconfig"
)

// hot_python: the hot scenario's "equal" and "rr" legs (three replicas of
// one worker each, r1 at half capacity, the library's shedding and health
// on, the replicas knowing their replica set for the health guard as in
// hot, 60 % of the fleet's capacity offered open loop with 1 s deadlines,
// hotPairs interleaved pairs, ratio of medians)
// with the standard C-core client (Debian python3-grpcio) and the
// documented config: round_robin, client-side health checking, retries.
func runHotPython(ctx context.Context, e *env) error {
	e.c.ReplicaEnv = []string{"GOMAXPROCS=1"}
	defer func() { e.c.ReplicaEnv = nil }()
	lib := []string{"-shed", "-shed-adaptive", "-log-level", "warn"}
	replicas := func(hotWork string) [][]string {
		var out [][]string
		for i := range 3 {
			work := "10ms"
			if i == 0 && hotWork != "" {
				work = hotWork
			}
			out = append(out, append([]string{"-work", work, "-workers", "1"}, lib...))
		}
		return out
	}
	const fleetCapacity = 250.0 // 100 + 100 + 50 calls/s with r1 hot
	measure := 10 * time.Second
	p99 := map[string][]float64{} // seconds, one per run of the leg
	for range hotPairs {
		for _, leg := range []struct{ name, hot string }{{"equal", ""}, {"rr", "20ms"}} {
			f := cluster.Fleet{Bin: e.serverBin, Args: replicas(leg.hot), Conns: 4, Rate: 0.6 * fleetCapacity, Guard: true,
				For: 25 * time.Second, CallTimeout: time.Second, ServiceConfig: clientconfig.RoundRobin, Stack: cluster.PythonStack}
			rec, err := f.Run(ctx, e.c)
			e.c.Close()
			if err != nil {
				return fmt.Errorf("%s: %w", leg.name, err)
			}
			w := rec.Window(f.For-measure, f.For+2*time.Second)
			p99[leg.name] = append(p99[leg.name], w.Quantile(0.99).Seconds())
			fmt.Fprintf(os.Stderr, "   python %-6s p99 %v  share r1 %.2f r2 %.2f r3 %.2f  ok %d failed %d %v\n", leg.name,
				w.Quantile(0.99).Round(time.Millisecond), w.Share("r1"), w.Share("r2"), w.Share("r3"), w.OK, w.Failed, w.Codes)
		}
	}
	if a, b := p99["rr"], p99["equal"]; len(a) == len(b) && median(b) > 0 {
		e.results["hot.python.p99_ratio"] = median(a) / median(b)
		var pairs []float64
		for i := range a {
			if b[i] > 0 {
				pairs = append(pairs, a[i]/b[i])
			}
		}
		if len(pairs) > 0 {
			e.results["hot.python.p99_ratio_min"], e.results["hot.python.p99_ratio_max"] = slices.Min(pairs), slices.Max(pairs)
		}
	}
	return nil
}
