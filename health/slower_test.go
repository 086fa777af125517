package health_test

import (
	"fmt"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/grpcmgmt/grpcmgmt/health"
	"github.com/grpcmgmt/grpcmgmt/internal/replica"
)

// A replica slower than its peers without being busy: three replicas with
// the guard on a fixed list, r1's calls wait 20 ms and its peers' 4 ms,
// without CPU (CPU reads 0.2 everywhere, nothing queues): only the
// comparison with the peers' latency can see r1. Four round_robin client
// channels with health checking (four Watch streams per replica) call in
// closed loops. r1 turns a share of its streams away and its share of the
// calls falls well under a third; r2 and r3 never leave rotation; no call
// fails. With Peers.DisableLatency r1 keeps its third.
func TestSlowerThanPeers(t *testing.T) {
	for _, disable := range []bool{false, true} {
		t.Run(fmt.Sprintf("DisableLatency=%v", disable), func(t *testing.T) { testSlowerThanPeers(t, disable) })
	}
}

func testSlowerThanPeers(t *testing.T, disable bool) {
	addrs := threeReplicaAddrs(t)
	hcfg := health.Config{
		Hold: 200 * time.Millisecond, MinDwell: 300 * time.Millisecond, PropagationDelay: 10 * time.Millisecond,
		Peers: health.Peers{Addrs: addrs, CheckInterval: 50 * time.Millisecond, Delay: 100 * time.Millisecond, DisableLatency: disable},
	}
	var (
		nodes []*node
		rds   []*sdkmetric.ManualReader
	)
	for i, addr := range addrs {
		cpu := &signal{}
		cpu.Set(0.2)
		wait := 4 * time.Millisecond
		if i == 0 {
			wait = 20 * time.Millisecond
		}
		mp, rd := newReader(t)
		nodes = append(nodes, startNode(t, nodeConfig{
			addr: addr, replica: replica.Config{Name: fmt.Sprintf("r%d", i+1), Wait: wait},
			load: fastLoad(cpu), health: hcfg, mp: mp,
		}))
		rds = append(rds, rd)
	}
	rec := &recorder{}
	var stops []func()
	for range 4 {
		cc := dialConfig(t, `{"loadBalancingConfig":[{"round_robin":{}}],"healthCheckConfig":{"serviceName":""}}`, addrs...)
		stops = append(stops, closedLoop(cc, 2, time.Millisecond, rec))
	}
	stop := func() {
		for _, s := range stops {
			s()
		}
	}
	defer stop()
	for _, n := range nodes {
		waitServedBy(t, rec, n.name, time.Now(), 10*time.Second)
	}

	window := time.Second
	if !disable {
		// Hold, the guard's re-check delay, then a step up each Hold.
		deadline := time.Now().Add(10 * time.Second)
		for nodes[0].m.Health().RemovedShare() < 0.5 {
			if time.Now().After(deadline) {
				t.Fatalf("r1 turned away %.2f of its Watch streams within 10s, want ≥ 0.5", nodes[0].m.Health().RemovedShare())
			}
			time.Sleep(10 * time.Millisecond)
		}
	} else {
		window = 2 * time.Second // what the levers took above, and more
	}
	from := time.Now()
	time.Sleep(window) // the measurement window
	stop()

	calls, r1 := 0, 0
	for _, r := range rec.results() {
		if r.start.Before(from) {
			continue
		}
		calls++
		if r.replica == "r1" {
			r1++
		}
	}
	share := float64(r1) / float64(max(calls, 1))
	t.Logf("r1 served %d of %d calls (%.3f) in %v; its share of Watch streams turned away %.2f", r1, calls, share, window,
		nodes[0].m.Health().RemovedShare())
	if f := failed(rec.results()); len(f) > 0 {
		t.Errorf("%d of %d calls failed, want 0; first: %v", len(f), len(rec.results()), f[0].err)
	}
	for i := 1; i < 3; i++ {
		if n := counter(t, rds[i], "grpcmgmt.health.load_decisions", "reason", "want"); n != 0 {
			t.Errorf("r%d asked to leave rotation %d times, want 0 (it is not slower than its peers)", i+1, n)
		}
	}
	if disable {
		if share < 0.25 {
			t.Errorf("with DisableLatency r1 served %.3f of the calls, want its third (≥ 0.25): nothing else sees it", share)
		}
		if n := counter(t, rds[0], "grpcmgmt.health.load_decisions", "reason", "want"); n != 0 {
			t.Errorf("with DisableLatency r1 asked to leave rotation %d times, want 0", n)
		}
		return
	}
	if share > 0.2 {
		t.Errorf("r1 (5× slower than its peers) served %.3f of the calls, want under 0.2 (a third without the comparison)", share)
	}
	if n := counter(t, rds[0], "grpcmgmt.health.guard_decisions", "decision", "granted"); n < 1 {
		t.Errorf("r1: guard_decisions{granted} = %d, want ≥ 1 (it went out through the guard)", n)
	}
}
