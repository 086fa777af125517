package health_test

import (
	"context"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	_ "google.golang.org/grpc/health" // client-side health checking
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"

	"github.com/grpcmgmt/grpcmgmt"
	"github.com/grpcmgmt/grpcmgmt/health"
	"github.com/grpcmgmt/grpcmgmt/internal/replica"
	"github.com/grpcmgmt/grpcmgmt/load"
)

// serviceConfig is the documented client configuration: round_robin,
// client-side health checking of the whole server, and a retry policy for
// UNAVAILABLE.
const serviceConfig = `{
  "loadBalancingConfig": [{"round_robin": {}}],
  "healthCheckConfig": {"serviceName": ""},
  "methodConfig": [{
    "name": [{"service": "grpc.testing.TestService"}],
    "retryPolicy": {
      "maxAttempts": 5,
      "initialBackoff": "0.05s",
      "maxBackoff": "0.5s",
      "backoffMultiplier": 2,
      "retryableStatusCodes": ["UNAVAILABLE"]
    }
  }]
}`

// node is one replica: a Manager, a grpc.Server and the test service.
type node struct {
	name string
	addr string
	m    *grpcmgmt.Manager
	srv  *grpc.Server
	done chan struct{} // closed when Serve returns
}

type nodeConfig struct {
	addr    string // "127.0.0.1:0" for a new port
	replica replica.Config
	load    load.Config
	health  health.Config
	mp      *sdkmetric.MeterProvider
	// extra are server options added after the Manager's (a test shedder).
	extra []grpc.ServerOption
	// opts are further Manager options.
	opts []grpcmgmt.Option
}

func startNode(t *testing.T, cfg nodeConfig) *node {
	t.Helper()
	opts := []grpcmgmt.Option{grpcmgmt.WithLoad(cfg.load), grpcmgmt.WithHealth(cfg.health)}
	if cfg.mp != nil {
		opts = append(opts, grpcmgmt.WithMeterProvider(cfg.mp))
	}
	opts = append(opts, cfg.opts...)
	m, err := grpcmgmt.New(append([]grpcmgmt.Option{grpcmgmt.WithInsecure()}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	var lis net.Listener
	// The port of a restarted replica was just released: retry briefly.
	for i := 0; ; i++ {
		if lis, err = net.Listen("tcp", cfg.addr); err == nil || i == 50 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		_ = m.Shutdown(context.Background())
		t.Fatal(err)
	}
	srv := grpc.NewServer(append(m.ServerOptions(), cfg.extra...)...)
	replica.New(cfg.replica).Register(srv)
	if err := m.Register(srv); err != nil {
		t.Fatal(err)
	}
	n := &node{name: cfg.replica.Name, addr: lis.Addr().String(), m: m, srv: srv, done: make(chan struct{})}
	go func() { defer close(n.done); _ = srv.Serve(lis) }()
	t.Cleanup(func() { n.stop(t) })
	return n
}

// stop shuts the node down through the Manager (lame duck) and waits for
// Serve to return. It is idempotent.
func (n *node) stop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.m.Shutdown(ctx); err != nil {
		t.Errorf("%s: Shutdown: %v", n.name, err)
	}
	<-n.done
}

// dial returns a client of the documented configuration for addrs, through
// a manual resolver.
func dial(t *testing.T, addrs ...string) *grpc.ClientConn {
	t.Helper()
	return dialConfig(t, serviceConfig, addrs...)
}

// dialConfig is dial with another service config.
func dialConfig(t *testing.T, sc string, addrs ...string) *grpc.ClientConn {
	t.Helper()
	r := manual.NewBuilderWithScheme("fleet")
	var st resolver.State
	for _, a := range addrs {
		st.Addresses = append(st.Addresses, resolver.Address{Addr: a})
	}
	r.InitialState(st)
	cc, err := grpc.NewClient("fleet:///replicas",
		grpc.WithResolvers(r),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(sc),
		// A restarted replica is reconnected to within ~100ms, not after
		// grpc-go's default 1s+ backoff.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 200 * time.Millisecond},
			MinConnectTimeout: time.Second,
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// dialTarget returns a client for target (e.g. dns://...) with the service
// config sc.
func dialTarget(t *testing.T, target, sc string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(target,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(sc))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// result is one finished call.
type result struct {
	replica    string // from the x-replica header; "" if the call failed
	start, end time.Time
	err        error
}

// recorder collects results from many goroutines.
type recorder struct {
	mu  sync.Mutex
	all []result
}

func (r *recorder) add(res result) {
	r.mu.Lock()
	r.all = append(r.all, res)
	r.mu.Unlock()
}

func (r *recorder) results() []result {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.all)
}

// call makes one UnaryCall and records it.
func call(ctx context.Context, c testpb.TestServiceClient, rec *recorder, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var md metadata.MD
	start := time.Now()
	_, err := c.UnaryCall(ctx, &testpb.SimpleRequest{}, grpc.Header(&md))
	res := result{start: start, end: time.Now(), err: err}
	if err == nil && len(md.Get(replica.HeaderName)) > 0 {
		res.replica = md.Get(replica.HeaderName)[0]
	}
	rec.add(res)
}

// closedLoop runs n callers, each calling again after pause, until stop is
// called; stop waits for them.
func closedLoop(cc *grpc.ClientConn, n int, pause time.Duration, rec *recorder) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	c := testpb.NewTestServiceClient(cc)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for ctx.Err() == nil {
				call(context.Background(), c, rec, 5*time.Second)
				time.Sleep(pause)
			}
		})
	}
	return func() { cancel(); wg.Wait() }
}

// failed returns the failed calls among rs.
func failed(rs []result) []result {
	var out []result
	for _, r := range rs {
		if r.err != nil {
			out = append(out, r)
		}
	}
	return out
}

// waitServedBy polls until a call that started after since was served by
// name.
func waitServedBy(t *testing.T, rec *recorder, name string, since time.Time, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, r := range rec.results() {
			if r.replica == name && r.start.After(since) {
				return
			}
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no call started after %v was served by %s within %v", since.Format(time.StampMilli), name, timeout)
}

// healthWatch watches the whole-server status of the node at addr.
func healthWatch(t *testing.T, addr string) *watcher {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return watch(t, cc, "")
}

// fastLoad is a sampler configuration for tests: a sample every 10ms and
// little smoothing.
func fastLoad(cpu load.Source) load.Config {
	return load.Config{Period: 10 * time.Millisecond, TimeConstant: 20 * time.Millisecond, CPU: cpu}
}

// A round_robin client with health checking stops sending to a replica
// within 1 s of its NOT_SERVING and sends to it again after SERVING, with
// no failed call. The replica is so far over its capacity (an excess of
// 100, MaxShare 1) that every Watch stream is turned away, this client's
// too.
func TestRoundRobinClientFollowsHealth(t *testing.T) {
	hcfg := health.Config{
		Hold: 100 * time.Millisecond, MinDwell: 300 * time.Millisecond, MaxNotServing: time.Minute,
		Cooldown: 100 * time.Millisecond, PropagationDelay: 10 * time.Millisecond,
		MaxShare: 1, Signal: func(s load.Snapshot) health.Load {
			return health.Load{Over: s.CPU >= 0.9, Clear: s.CPU < 0.7, Excess: 100 * s.CPU}
		},
	}
	var nodes []*node
	var hot *signal
	for _, name := range []string{"a", "b", "c"} {
		cpu := &signal{}
		cpu.Set(0.2)
		if name == "b" {
			hot = cpu
		}
		nodes = append(nodes, startNode(t, nodeConfig{
			addr: "127.0.0.1:0", replica: replica.Config{Name: name}, load: fastLoad(cpu), health: hcfg,
		}))
	}
	cc := dial(t, nodes[0].addr, nodes[1].addr, nodes[2].addr)
	w := healthWatch(t, nodes[1].addr)
	rec := &recorder{}
	stop := closedLoop(cc, 3, time.Millisecond, rec)
	defer stop()

	waitServedBy(t, rec, "b", time.Now(), 5*time.Second)
	hot.Set(0.95)
	down := w.waitFor(t, 2, 5*time.Second)
	if down.st != notServing {
		t.Fatalf("b turned %v, want NOT_SERVING", down.st)
	}
	time.Sleep(1500 * time.Millisecond) // traffic observed across this window
	var late int
	for _, r := range rec.results() {
		if r.replica == "b" && r.start.After(down.at.Add(time.Second)) {
			late++
		}
	}
	if late > 0 {
		t.Errorf("b served %d calls started more than 1s after it turned NOT_SERVING, want 0", late)
	}
	waitServedBy(t, rec, "a", down.at.Add(time.Second), 5*time.Second)
	waitServedBy(t, rec, "c", down.at.Add(time.Second), 5*time.Second)

	hot.Set(0.1)
	up := w.waitFor(t, 3, 5*time.Second)
	if up.st != serving {
		t.Fatalf("b turned %v, want SERVING", up.st)
	}
	waitServedBy(t, rec, "b", up.at, 5*time.Second)
	stop()
	rs := rec.results()
	if f := failed(rs); len(f) > 0 {
		t.Errorf("%d of %d calls failed, want 0; first: %v", len(f), len(rs), f[0].err)
	}
}

// A rolling restart of three replicas under load, each through
// Manager.Shutdown (lame duck, GracefulStop) and started again on the same
// address, fails no call of a client with health checking and retries.
func TestRollingRestart(t *testing.T) {
	hcfg := health.Config{DisableLoad: true, PropagationDelay: 300 * time.Millisecond}
	cfgs := make([]nodeConfig, 3)
	nodes := make([]*node, 3)
	for i, name := range []string{"a", "b", "c"} {
		cfgs[i] = nodeConfig{addr: "127.0.0.1:0", replica: replica.Config{Name: name, Work: time.Millisecond}, health: hcfg}
		nodes[i] = startNode(t, cfgs[i])
		cfgs[i].addr = nodes[i].addr // restarts reuse the address
	}
	cc := dial(t, nodes[0].addr, nodes[1].addr, nodes[2].addr)
	rec := &recorder{}
	stop := closedLoop(cc, 4, time.Millisecond, rec)
	defer stop()
	for _, n := range nodes {
		waitServedBy(t, rec, n.name, time.Now(), 5*time.Second)
	}
	for i := range nodes {
		begin := time.Now()
		nodes[i].stop(t)
		t.Logf("%s: Shutdown took %v", nodes[i].name, time.Since(begin))
		restarted := time.Now()
		nodes[i] = startNode(t, cfgs[i])
		waitServedBy(t, rec, nodes[i].name, restarted, 10*time.Second)
	}
	stop()
	rs := rec.results()
	if f := failed(rs); len(f) > 0 {
		t.Errorf("%d of %d calls failed during the rolling restart, want 0; first: %v", len(f), len(rs), f[0].err)
	}
	t.Logf("%d calls, none failed", len(rs))
}
