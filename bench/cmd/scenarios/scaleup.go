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

// scaleup_l4: 3 → 4 replicas behind HAProxy in TCP mode, 24 client
// connections (8 per replica). Legs in one run: the library (fair-share
// rebalancing: the replicas watch their replica set in a real dnsmasq,
// whose answer grows with HAProxy's rotation), MAX_CONNECTION_AGE alone
// (60 s; its leg lasts 75 s so that every connection ages once), and no
// library (the baseline). The library leg runs again with a grpc-java and
// a C-core (Python) client.
func runScaleUpL4(ctx context.Context, e *env) error {
	base := cluster.ScaleUpL4{ServerBin: e.serverBin, Replicas: 3, Conns: 24, Callers: 48,
		AddAt: 5 * time.Second, For: 30 * time.Second, CallTimeout: 2 * time.Second}
	legs := []struct {
		name  string
		args  []string
		dns   string
		dur   time.Duration
		stack cluster.Stack
	}{
		{"library", append(libraryArgs(), cluster.RebalanceArgs()...), "svc.scaleup-l4.test", 0, cluster.GoStack},
		{"maxage60s", []string{"-max-connection-age", "60s", "-log-level", "warn"}, "", 75 * time.Second, cluster.GoStack},
		{"baseline", append(cluster.BaselineArgs(), "-log-level", "warn"), "", 0, cluster.GoStack},
		{"library.java", append(libraryArgs(), cluster.RebalanceArgs()...), "svc.scaleup-l4.test", 0, cluster.JavaStack},
		{"library.python", append(libraryArgs(), cluster.RebalanceArgs()...), "svc.scaleup-l4.test", 0, cluster.PythonStack},
	}
	only := map[string]bool{}
	for _, n := range strings.Split(os.Getenv("SCALEUP_L4_LEGS"), ",") {
		if n != "" {
			only[n] = true
		}
	}
	failed := 0
	for _, leg := range legs {
		if len(only) > 0 && !only[leg.name] {
			continue
		}
		s := base
		s.ServerArgs = leg.args
		s.ReplicaSetDNS = leg.dns
		s.Stack = leg.stack
		if leg.dur > 0 {
			s.For = leg.dur
		}
		res, err := s.Run(ctx, e.c)
		e.c.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", leg.name, err)
		}
		fmt.Fprintf(os.Stderr, "   %-10s seconds to fair share %5.1f  end share %.2f of fair  calls %d failed %d\n",
			leg.name, res.SecondsToFairShare, res.EndShare, res.Calls, res.Failed)
		switch leg.name {
		case "library":
			if res.SecondsToFairShare >= 0 {
				e.results["scaleup_l4.seconds_to_fair_share"] = res.SecondsToFairShare
			}
			failed += res.Failed
		case "maxage60s":
			e.results["scaleup_l4.maxage_new_share"] = res.EndShare
			if res.SecondsToFairShare >= 0 {
				e.results["scaleup_l4.maxage_seconds_to_fair_share"] = res.SecondsToFairShare
			}
		case "baseline":
			e.results["scaleup_l4.baseline_new_share"] = res.EndShare
		case "library.java", "library.python":
			if res.SecondsToFairShare >= 0 {
				e.results["scaleup_l4."+leg.stack.Name()+".seconds_to_fair_share"] = res.SecondsToFairShare
			}
			e.results["scaleup_l4."+leg.stack.Name()+".failed"] = float64(res.Failed)
		}
		if err := cluster.PerReplicaChart(filepath.Join(e.out, "scaleup_l4_"+leg.name+".svg"),
			"scaleup_l4 ("+leg.name+"): calls/s per replica behind HAProxy", res.PerSec,
			chart.Marker{X: base.AddAt.Seconds(), Label: res.NewName + " added"}); err != nil {
			return err
		}
	}
	e.results["scaleup_l4.failed"] = float64(failed)
	return nil
}

// libraryArgs are the server flags of the "library" legs: everything on.
func libraryArgs() []string {
	level := "warn"
	if l := os.Getenv("LIBRARY_LOG_LEVEL"); l != "" {
		level = l
	}
	return []string{"-max-connection-age", "30s", "-log-level", level}
}
