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

// drain: a rolling restart of 3 replicas under load (SIGTERM → lame duck →
// exit → start again), standard clients on real DNS with health checking
// and retries: grpc-go, then grpc-java (through the JDK's hosts-file name
// service on the file dnsmasq serves: the JDK cannot query a DNS server on
// port 5353) and C-core (Python).
func runDrain(ctx context.Context, e *env) error {
	base := cluster.Drain{ServerBin: e.serverBin, Replicas: 3, Conns: 4, Callers: 16,
		ServerArgs: libraryArgs(), Settle: 3 * time.Second, StopTimeout: 60 * time.Second,
		CallTimeout: 5 * time.Second, DNSPort: 5353}
	for _, st := range []cluster.Stack{cluster.JavaStack, cluster.PythonStack} {
		d := base
		d.Stack = st
		res, err := d.Run(ctx, e.c)
		e.c.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", st.Name(), err)
		}
		fmt.Fprintf(os.Stderr, "   %-6s calls %d failed %d %v, stop seconds %v\n", st.Name(), res.Calls, res.Failed, res.FailedCodes, res.StopSeconds)
		e.results["drain."+st.Name()+".failed"] = float64(res.Failed)
		e.results["drain."+st.Name()+".calls"] = float64(res.Calls)
	}
	res, err := base.Run(ctx, e.c)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "   calls %d failed %d %v, stop seconds %v\n", res.Calls, res.Failed, res.FailedCodes, res.StopSeconds)
	e.results["drain.failed"] = float64(res.Failed)
	e.results["drain.seconds"] = res.MedianStopSeconds()
	var markers []chart.Marker
	for i, at := range res.StopAt {
		markers = append(markers, chart.Marker{X: at, Label: fmt.Sprintf("r%d SIGTERM", i+1)})
	}
	return cluster.PerReplicaChart(filepath.Join(e.out, "drain.svg"),
		"drain: calls/s per replica during a rolling restart", res.PerSec, markers...)
}
