package health_test

import (
	"fmt"
	"net"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/grpcmgmt/grpcmgmt"
	"github.com/grpcmgmt/grpcmgmt/bench/cluster"
	"github.com/grpcmgmt/grpcmgmt/goaway"
	"github.com/grpcmgmt/grpcmgmt/health"
	"github.com/grpcmgmt/grpcmgmt/internal/loopback"
	"github.com/grpcmgmt/grpcmgmt/internal/replica"
)

// Three replicas on 127.0.0.2–4 behind a real DNS server (dnsmasq, as a
// headless Service's DNS), each a Manager with fair-share rebalancing and
// the health guard on the same name (one set of lookups), called by a
// standard grpc-go client on dns:/// with round_robin and health checking.
// Two replicas turn hot at once; with three replicas one may be out: the
// lower address goes out of rotation, the other stays SERVING (counted
// "fleet_needed") for as long as both are hot, and no call fails.
func TestGuardRealDNS(t *testing.T) {
	if err := cluster.Require("dnsmasq"); err != nil {
		t.Fatal(err)
	}
	c, err := cluster.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	ips := []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"}
	port, err := loopback.FreePort(ips...)
	if err != nil {
		t.Fatal(err)
	}
	dns, err := c.StartDNS("svc.guard.test", 0, ips...)
	if err != nil {
		t.Fatal(err)
	}
	hcfg := health.Config{
		Hold: 200 * time.Millisecond, MinDwell: 200 * time.Millisecond, PropagationDelay: 10 * time.Millisecond,
		Peers: health.Peers{Name: dns.Name, Resolver: dns.Addr, Port: port,
			CheckInterval: 100 * time.Millisecond, Delay: 200 * time.Millisecond},
	}
	var (
		nodes []*node
		cpus  []*signal
		rds   []*sdkmetric.ManualReader
	)
	for i, ip := range ips {
		cpu := &signal{}
		cpu.Set(0.2)
		mp, rd := newReader(t)
		nodes = append(nodes, startNode(t, nodeConfig{
			addr: net.JoinHostPort(ip, fmt.Sprint(port)), replica: replica.Config{Name: fmt.Sprintf("r%d", i+1)},
			load: fastLoad(cpu), health: hcfg, mp: mp,
			opts: []grpcmgmt.Option{grpcmgmt.WithRebalance(goaway.RebalanceConfig{Name: dns.Name, Resolver: dns.Addr, Interval: 100 * time.Millisecond})},
		}))
		cpus, rds = append(cpus, cpu), append(rds, rd)
	}
	cc := dialTarget(t, fmt.Sprintf("dns://%s/%s:%d", dns.Addr, dns.Name, port),
		`{"loadBalancingConfig":[{"round_robin":{}}],"healthCheckConfig":{"serviceName":""}}`)
	rec := &recorder{}
	stop := closedLoop(cc, 4, 2*time.Millisecond, rec)
	defer stop()
	for _, n := range nodes {
		waitServedBy(t, rec, n.name, time.Now(), 10*time.Second)
	}

	cpus[0].Set(0.95)
	cpus[2].Set(0.95)
	waitStatus(t, nodes[0].m.Health(), health.NotServing)
	// Both stay hot: r3 asks round after round and is refused.
	deadline := time.Now().Add(10 * time.Second)
	for counter(t, rds[2], "grpcmgmt.health.guard_decisions", "decision", "fleet_needed") < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("r3 was not refused 5 times within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st, _ := nodes[0].m.Health().Status(""); st != health.NotServing {
		t.Errorf("r1 is %v while both are hot, want NOT_SERVING (it took the slot)", st)
	}
	if got := counter(t, rds[2], "grpcmgmt.health.flips", "reason", "load", "direction", "not_serving"); got != 0 {
		t.Errorf("r3 turned NOT_SERVING for load %d times while r1 was out, want 0", got)
	}
	if got := counter(t, rds[0], "grpcmgmt.health.guard_decisions", "decision", "granted"); got != 1 {
		t.Errorf("r1: guard_decisions{granted} = %d, want 1", got)
	}

	cpus[0].Set(0.1)
	cpus[2].Set(0.1)
	waitStatus(t, nodes[0].m.Health(), health.Serving)
	stop()
	if f := failed(rec.results()); len(f) > 0 {
		t.Errorf("%d of %d calls failed, want 0; first: %v", len(f), len(rec.results()), f[0].err)
	}
}
