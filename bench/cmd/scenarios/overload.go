package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/grpcmgmt/grpcmgmt/bench/cluster"
	"github.com/grpcmgmt/grpcmgmt/internal/chart"
)

// overload: one replica (10 ms of CPU per call, one worker) under
// open-loop load with 250 ms deadlines at 0.5×, 3×, 0.5× and 10× its
// measured capacity; legs: grpcmgmt shedding (adaptive limit), no shedding,
// and the failsafe-go, bbr and semaphore peers, in one run.
func runOverload(ctx context.Context, e *env) error {
	peerBin, err := e.c.Build("./bench/cmd/peerserver")
	if err != nil {
		return err
	}
	// The replica keeps both CPUs: its one worker burns one, and receiving
	// and rejecting calls needs the other. With GOMAXPROCS=1 the worker's
	// busy loop delays every other goroutine of the replica to Go's 10 ms
	// preemption, so even a rejection waits behind the work and every
	// stack's goodput collapses (measured: 0.01–0.56 at 3×).
	capArgs := []string{"-work", "10ms", "-workers", "1", "-log-level", "warn"}
	legs := []struct {
		name, bin string
		args      []string
	}{
		{"library", e.serverBin, append([]string{"-shed", "-shed-adaptive"}, capArgs...)},
		{"baseline", e.serverBin, capArgs},
		{"failsafe", peerBin, []string{"-peer", "failsafe", "-work", "10ms", "-workers", "1"}},
		{"bbr", peerBin, []string{"-peer", "bbr", "-work", "10ms", "-workers", "1"}},
		{"semaphore", peerBin, []string{"-peer", "semaphore", "-work", "10ms", "-workers", "1"}},
	}
	base := cluster.Overload{Bin: e.serverBin, Args: capArgs, Phase: 6 * time.Second, Deadline: 250 * time.Millisecond}
	capacity, err := base.Capacity(ctx, e.c, 5*time.Second)
	e.c.Close()
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "   measured capacity %.0f calls/s\n", capacity)
	e.results["overload.capacity_qps"] = capacity
	goodput := chart.Line{Title: "overload: goodput ÷ capacity against offered load", XLabel: "offered load ÷ capacity", YLabel: "goodput ÷ capacity"}
	for _, leg := range legs {
		o := base
		o.Bin, o.Args = leg.bin, leg.args
		res, err := o.Run(ctx, e.c, capacity)
		e.c.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", leg.name, err)
		}
		fmt.Fprintf(os.Stderr, "   %-9s %s\n", leg.name, res)
		switch leg.name {
		case "library":
			e.results["overload.goodput_ratio_3x"] = res.Goodput3x
			e.results["overload.goodput_ratio_10x"] = res.Goodput10x
			if res.RecoverySeconds >= 0 {
				e.results["overload.recovery_seconds"] = res.RecoverySeconds
			}
			if res.P99Low > 0 {
				e.results["overload.p99_ratio_3x"] = float64(res.P99At3x) / float64(res.P99Low)
				e.results["overload.p99_ratio_10x"] = float64(res.P99At10x) / float64(res.P99Low)
			}
		default:
			e.results["overload."+leg.name+"_goodput_ratio_3x"] = res.Goodput3x
			e.results["overload."+leg.name+"_goodput_ratio_10x"] = res.Goodput10x
			if leg.name == "failsafe" && res.P99Low > 0 {
				e.results["overload.failsafe_p99_ratio_3x"] = float64(res.P99At3x) / float64(res.P99Low)
				e.results["overload.failsafe_p99_ratio_10x"] = float64(res.P99At10x) / float64(res.P99Low)
			}
		}
		goodput.Series = append(goodput.Series, chart.Series{Name: leg.name, Points: []chart.Point{
			{X: 0.5, Y: res.GoodputLow}, {X: 3, Y: res.Goodput3x}, {X: 10, Y: res.Goodput10x}}})
	}
	f, err := os.Create(filepath.Join(e.out, "overload_goodput.svg"))
	if err != nil {
		return err
	}
	defer f.Close()
	return goodput.WriteSVG(f)
}
