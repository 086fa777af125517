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

// scaleup_dns: 3 → 4 replicas behind a real dnsmasq, default grpc-go
// clients (dns:///, round_robin, 30 s minimum between re-resolutions). The
// library leg has fair-share rebalancing on (the replicas watch the same
// name); its GOAWAYs make every client re-resolve, which grpc-go does at
// most once per 30 s. MAX_CONNECTION_AGE stays at its default (2 min): with
// libraryArgs' 30 s the connections' own age would make the clients
// re-resolve at about the same time, and the figure would not say which
// lever did it.
func runScaleUpDNS(ctx context.Context, e *env) error {
	s := cluster.ScaleUpDNS{ServerBin: e.serverBin, Replicas: 3, Conns: 8, Callers: 32,
		ServerArgs: append(cluster.RebalanceArgs(), "-log-level", "warn"),
		AddAt:      5 * time.Second, For: 42 * time.Second, CallTimeout: 2 * time.Second}
	res, err := s.Run(ctx, e.c)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "   library    seconds to fair share %5.1f  end share %.2f of fair  calls %d failed %d\n",
		res.SecondsToFairShare, res.EndShare, res.Calls, res.Failed)
	if res.SecondsToFairShare >= 0 {
		e.results["scaleup_dns.seconds_to_fair_share"] = res.SecondsToFairShare
	}
	e.results["scaleup_dns.failed"] = float64(res.Failed)
	// The same with C-core (Python) clients on dnsmasq, and grpc-java ones
	// on the hosts file dnsmasq serves (the JDK cannot query port 5353);
	// both at their default 30 s re-resolution floor.
	for _, st := range []cluster.Stack{cluster.PythonStack, cluster.JavaStack} {
		e.c.Close()
		ss := s
		ss.Stack = st
		r, err := ss.Run(ctx, e.c)
		if err != nil {
			return fmt.Errorf("%s: %w", st.Name(), err)
		}
		fmt.Fprintf(os.Stderr, "   %-10s seconds to fair share %5.1f  end share %.2f of fair  calls %d failed %d\n",
			st.Name(), r.SecondsToFairShare, r.EndShare, r.Calls, r.Failed)
		if r.SecondsToFairShare >= 0 {
			e.results["scaleup_dns."+st.Name()+".seconds_to_fair_share"] = r.SecondsToFairShare
		}
		e.results["scaleup_dns."+st.Name()+".failed"] = float64(r.Failed)
	}
	return cluster.PerReplicaChart(filepath.Join(e.out, "scaleup_dns_library.svg"),
		"scaleup_dns (library): calls/s per replica, grpc-go clients on real DNS", res.PerSec,
		chart.Marker{X: s.AddAt.Seconds(), Label: res.NewName + " added"})
}
