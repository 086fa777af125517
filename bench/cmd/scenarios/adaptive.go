package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/grpcmgmt/grpcmgmt/bench/cluster"
	"github.com/grpcmgmt/grpcmgmt/internal/chart"
)

// adaptiveProfile is one service shape of the adaptive scenario, on one
// replica. Capacities stay near 100 calls/s so that 10× is a rate the load
// generator can offer on two cores; io excepted, whose 500 calls of 50 ms
// at once make 10 000 calls/s: at 3× more than the load generator and the
// replica exchange on two shared cores of some machines (bench/NOTES.md,
// "io at 3× on this machine").
type adaptiveProfile struct {
	name    string
	args    []string // capacity flags of internal/replica
	callers int      // closed-loop callers for the capacity measurement
	drift   bool
}

var adaptiveProfiles = []adaptiveProfile{
	// CPU-bound, one worker: 10 ms of CPU per call.
	{name: "cpu1", args: []string{"-work", "10ms", "-workers", "1"}, callers: 32},
	// Four workers, each call holding its slot for 40 ms of which 10 ms
	// burn CPU: a knee of four calls. (Four workers burning CPU all the
	// time would need four cores; this machine has two, shared with the
	// load generator.)
	{name: "cpu4", args: []string{"-work", "10ms", "-wait", "30ms", "-workers", "4"}, callers: 32},
	// Handlers that wait 50 ms without CPU, 500 at once: a knee of
	// hundreds of calls (a limit of 3 or 20 would starve it).
	{name: "io", args: []string{"-wait", "50ms", "-workers", "500"}, callers: 1000},
	// Two methods, half of the calls each: 1 ms and 50 ms (1 ms of CPU,
	// and 0 or 49 ms of wait), four workers.
	{name: "mixed", args: []string{"-work", "1ms", "-wait-mix", "0ms,49ms", "-workers", "4"}, callers: 32},
	// 20 ms downstream (any number at once), then 5 ms of CPU in one
	// worker: a knee of 5 calls; SIGUSR1 doubles the CPU per call (a knee of
	// 3) at t=10s of each phase and restores it at t=20s.
	{name: "drift", args: []string{"-downstream", "20ms", "-work", "5ms", "-workers", "1"}, callers: 32, drift: true},
}

// adaptive: each profile on a fresh replica (ADAPTIVE_PROFILES=cpu1,io
// runs a subset; ADAPTIVE_LOG_LEVEL=debug keeps the replica's decisions in
// its log, kept with KEEP=1) with grpcmgmt's adaptive limit
// (library defaults otherwise), its capacity measured first, offered 0.5×,
// 1×, 3× and 10× of it in sequence (drift: 0.5×, 1×, 3×, 30 s each, its
// capacity the slower one); then the failsafe-go adaptive limiter on the
// same profile at 0.5×, 1× and 3× (drift excepted).
func runAdaptive(ctx context.Context, e *env) error {
	peerBin, err := e.c.Build("./bench/cmd/peerserver")
	if err != nil {
		return err
	}
	only := map[string]bool{}
	for _, n := range strings.Split(os.Getenv("ADAPTIVE_PROFILES"), ",") {
		if n != "" {
			only[n] = true
		}
	}
	for _, p := range adaptiveProfiles {
		if len(only) > 0 && !only[p.name] {
			continue
		}
		if err := adaptiveProfileRun(ctx, e, peerBin, p); err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
	}
	return nil
}

func adaptiveProfileRun(ctx context.Context, e *env, peerBin string, p adaptiveProfile) error {
	const deadline = 250 * time.Millisecond
	level := "warn"
	if l := os.Getenv("ADAPTIVE_LOG_LEVEL"); l != "" {
		level = l // the replica's log, in the scenario's temporary directory
	}
	lib := cluster.Adaptive{Bin: e.serverBin, Args: append([]string{"-shed", "-shed-adaptive", "-log-level", level}, p.args...),
		Metrics: true, Phase: 4 * time.Second, Deadline: deadline, Callers: p.callers}
	peer := cluster.Adaptive{Bin: peerBin, Args: append([]string{"-peer", "failsafe"}, p.args...),
		Phase: 4 * time.Second, Deadline: deadline, Callers: p.callers}
	mults := []float64{0.5, 1, 3, 10}
	if p.drift {
		lib.Phase, lib.DriftAt = 30*time.Second, []time.Duration{10 * time.Second, 20 * time.Second}
		mults = []float64{0.5, 1, 3}
	}
	base := cluster.Adaptive{Bin: peerBin, Args: append([]string{"-peer", "none"}, p.args...), Callers: p.callers}
	capacity, err := base.Capacity(ctx, e.c, 5*time.Second, 0)
	e.c.Close()
	if err != nil {
		return err
	}
	slow := capacity
	if p.drift {
		if slow, err = base.Capacity(ctx, e.c, 5*time.Second, 1); err != nil {
			return err
		}
		e.c.Close()
		fmt.Fprintf(os.Stderr, "   %-6s capacity %.0f calls/s, %.0f with the CPU per call doubled\n", p.name, capacity, slow)
	} else {
		fmt.Fprintf(os.Stderr, "   %-6s capacity %.0f calls/s\n", p.name, capacity)
	}
	e.results["adaptive."+p.name+".capacity_qps"] = capacity
	res, err := lib.Run(ctx, e.c, slow, mults)
	e.c.Close()
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "   %-6s grpcmgmt %s\n", p.name, res)
	ph := res.Phases
	key := "adaptive." + p.name + "."
	e.results[key+"goodput_1x"] = ph[1].OfferedGoodput
	// The 0.5× phase is the replica's first: what it shed there (from its
	// second second on) it shed while its limit learned the service.
	e.results[key+"goodput_start"] = ph[0].OfferedGoodput
	if ph[0].P99 > 0 {
		e.results[key+"p99_ratio_3x"] = float64(ph[2].P99) / float64(ph[0].P99)
		if len(ph) > 3 {
			e.results[key+"p99_ratio_10x"] = float64(ph[3].P99) / float64(ph[0].P99)
		}
	}
	if p.drift {
		// Capacity over the measured window [1 s, 30 s) of the 3× phase:
		// the faster one for 19 s, the slower for 10 s.
		eff := (19*capacity + 10*slow) / 29
		e.results[key+"goodput_ratio_3x"] = ph[2].Goodput * slow / eff
		t0 := 2 * lib.Phase.Seconds()
		down := cluster.SettleSeconds(res.Limit, t0+10, t0+20, 0.2)
		up := cluster.SettleSeconds(res.Limit, t0+20, t0+30, 0.2)
		fmt.Fprintf(os.Stderr, "   %-6s limit settled %.1fs after the CPU per call doubled, %.1fs after it returned\n", p.name, down, up)
		if down >= 0 && up >= 0 {
			e.results[key+"seconds_to_follow"] = max(down, up)
			e.results[key+"seconds_to_follow_down"] = down
			e.results[key+"seconds_to_follow_up"] = up
		}
	} else {
		e.results[key+"goodput_ratio_3x"] = ph[2].Goodput
		e.results[key+"goodput_ratio_10x"] = ph[3].Goodput
	}
	if err := adaptiveChart(filepath.Join(e.out, "adaptive_"+p.name+".svg"), p.name, res, lib.Phase, mults); err != nil {
		return err
	}
	if err := writeTrace(filepath.Join(e.out, "adaptive_"+p.name+"_limit.csv"), res.Limit); err != nil {
		return err
	}
	if p.drift {
		return nil
	}
	pres, err := peer.Run(ctx, e.c, capacity, mults[:3])
	e.c.Close()
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "   %-6s failsafe %s\n", p.name, pres)
	e.results[key+"failsafe_goodput_1x"] = pres.Phases[1].OfferedGoodput
	e.results[key+"failsafe_goodput_ratio_3x"] = pres.Phases[2].Goodput
	if pres.Phases[0].P99 > 0 {
		e.results[key+"failsafe_p99_ratio_3x"] = float64(pres.Phases[2].P99) / float64(pres.Phases[0].P99)
	}
	return nil
}

// writeTrace writes the limit trace (seconds, limit) as CSV, for a second
// look at how it settled.
func writeTrace(path string, trace [][2]float64) error {
	var b strings.Builder
	b.WriteString("seconds,limit\n")
	for _, p := range trace {
		fmt.Fprintf(&b, "%.3f,%g\n", p[0], p[1])
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// adaptiveChart draws the limit and the p99 latency (of 500 ms windows)
// over time, with the phases marked.
func adaptiveChart(path, name string, res cluster.AdaptiveResult, phase time.Duration, mults []float64) error {
	c := chart.Line{Title: "adaptive (" + name + "): limit and p99 latency over time",
		XLabel: "seconds", YLabel: "limit (calls) / p99 (ms)"}
	lim := chart.Series{Name: "limit"}
	for _, p := range res.Limit {
		lim.Points = append(lim.Points, chart.Point{X: p[0], Y: p[1]})
	}
	lat := chart.Series{Name: "p99 ms"}
	for _, p := range res.P99Trace {
		lat.Points = append(lat.Points, chart.Point{X: p[0], Y: p[1]})
	}
	c.Series = []chart.Series{lim, lat}
	for i, m := range mults {
		c.Markers = append(c.Markers, chart.Marker{X: float64(i) * phase.Seconds(), Label: fmt.Sprintf("%g×", m)})
	}
	return cluster.WriteChart(path, c)
}
