package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/grpcmgmt/grpcmgmt/bench/cluster"
)

// scale: 16 replicas (GOMAXPROCS=1) behind HAProxy in TCP mode, 2 000
// client connections from 4 connload processes (pick_first through
// HAProxy, a call every 2 s each; 2 heavy ones at 10× that). Legs, one
// after the other: 8 → 16 behind "balance random(1)" (uniform, as
// kube-proxy in iptables mode) and behind "leastconn" (IPVS lc), and
// 16 → 12 behind random(1) and leastconn (the removed replicas'
// connections must land evenly). Replicas run the library's defaults except a lookup of the
// replica set every 500 ms (as the other scenarios) and a 10 min
// MAX_CONNECTION_AGE, so that only rebalancing moves connections.
func runScale(ctx context.Context, e *env) error {
	load, err := e.c.Build("./bench/cmd/connload")
	if err != nil {
		return err
	}
	base := cluster.Scale{ServerBin: e.serverBin, LoadBin: load, Conns: 2000, Clients: 4, Heavy: 2, Rate: 0.5,
		ScaleAt: 15 * time.Second, For: 30 * time.Second,
		ServerArgs: []string{"-replica-set-interval", "500ms", "-max-connection-age", "10m", "-log-level", "info"}}
	legs := []struct {
		name, balance string
		before, after int
	}{
		{"random", "random(1)", 8, 16},
		{"leastconn", "leastconn", 8, 16},
		{"scalein", "random(1)", 16, 12},
		{"scalein_leastconn", "leastconn", 16, 12},
	}
	failed, peak := 0, 0
	for _, leg := range legs {
		s := base
		s.Balance, s.Before, s.After = leg.balance, leg.before, leg.after
		res, err := s.Run(ctx, e.c)
		e.c.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", leg.name, err)
		}
		fmt.Fprintf(os.Stderr, "   %-9s %d→%d %-9s fair share after %5.2fs  GOAWAYs %d for %d to move (%.2f each)  peak %d reconnects/s  max/mean %.2f (before %.2f)  heavy moves %d  calls %d failed %d %v at %v s\n",
			leg.name, leg.before, leg.after, leg.balance, res.SecondsToFairShare, res.GoAways, res.HadToMove, res.GoAwaysPerMovedConn,
			res.PeakReconnectsPerSec, res.MaxOverMean, res.MaxOverMeanBefore, res.HeavyMoves, res.Calls, res.Failed, res.Codes, res.FailedAt)
		p := "scale." + leg.name + "."
		if res.SecondsToFairShare >= 0 {
			e.results[p+"seconds_to_fair_share"] = res.SecondsToFairShare
		}
		if leg.after > leg.before {
			e.results[p+"goaways_per_moved_conn"] = res.GoAwaysPerMovedConn
		}
		e.results[p+"max_over_mean_conns"] = res.MaxOverMean
		e.results[p+"max_over_mean_conns_before"] = res.MaxOverMeanBefore
		e.results[p+"peak_reconnects_per_s"] = float64(res.PeakReconnectsPerSec)
		e.results[p+"heavy_moves"] = float64(res.HeavyMoves)
		e.results[p+"failed"] = float64(res.Failed)
		failed += res.Failed
		if leg.after > leg.before {
			peak = max(peak, res.PeakReconnectsPerSec)
		}
		name := fmt.Sprintf("scale_%s_%d-%d.svg", leg.name, leg.before, leg.after)
		if err := res.ConnsChart(filepath.Join(e.out, name), fmt.Sprintf("scale (%s, HAProxy balance %s): connections per replica, %d → %d",
			leg.name, strings.TrimSuffix(leg.balance, "(1)"), leg.before, leg.after)); err != nil {
			return err
		}
	}
	e.results["scale.peak_reconnects_per_s"] = float64(peak)
	e.results["scale.failed"] = float64(failed)
	return nil
}
