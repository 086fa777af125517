package orca_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v3orcapb "github.com/cncf/xds/go/xds/data/orca/v3"
	v3orcaservicegrpc "github.com/cncf/xds/go/xds/service/orca/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"

	"github.com/grpcmgmt/grpcmgmt"
	"github.com/grpcmgmt/grpcmgmt/internal/replica"
	"github.com/grpcmgmt/grpcmgmt/load"
	"github.com/grpcmgmt/grpcmgmt/orca"
)

// testLoad is a fast sampler: weights settle within a couple of seconds.
var testLoad = load.Config{Period: 50 * time.Millisecond, TimeConstant: 500 * time.Millisecond}

// testORCA matches testLoad's smoothing and lets clients ask for reports
// every 50ms.
func testORCA(capacity int) orca.Config {
	return orca.Config{Capacity: capacity, MinReportingInterval: 50 * time.Millisecond, TimeConstant: 500 * time.Millisecond}
}

// server is one replica: its own Manager (sampler, ORCA reporter, call
// counter) and grpc.Server on a loopback address.
type server struct {
	addr string
	m    *grpcmgmt.Manager
	srv  *grpc.Server
}

// startServer serves svc on ip:0 with a Manager built from opts. extra are
// added after the Manager's server options.
func startServer(t *testing.T, ip string, svc func(grpc.ServiceRegistrar), opts []grpcmgmt.Option, extra ...grpc.ServerOption) *server {
	t.Helper()
	lis, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatalf("listen on %s: %v", ip, err)
	}
	opts = append([]grpcmgmt.Option{grpcmgmt.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))}, opts...)
	m, err := grpcmgmt.New(append([]grpcmgmt.Option{grpcmgmt.WithInsecure()}, opts...)...)
	if err != nil {
		t.Fatalf("grpcmgmt.New: %v", err)
	}
	srv := grpc.NewServer(append(m.ServerOptions(), extra...)...)
	svc(srv)
	if err := m.Register(srv); err != nil {
		t.Fatalf("Register: %v", err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = m.Shutdown(ctx)
	})
	return &server{addr: lis.Addr().String(), m: m, srv: srv}
}

// startReplica serves an internal/replica TestService whose CPU capacity
// is workers/work calls per second, with ORCA reporting that capacity. Each
// UnaryCall first waits downstream (a wall-clock wait outside the worker
// slots, as for a call to another service), so that a few calls are in
// flight at any time without burning more CPU: a moment's stall of this
// small, shared machine then stretches a small part of the time in flight
// instead of all of it.
func startReplica(t *testing.T, ip, name string, workers int, work, downstream time.Duration, orcaOn bool) *server {
	t.Helper()
	opts := []grpcmgmt.Option{grpcmgmt.WithLoad(testLoad), grpcmgmt.WithORCA(testORCA(workers))}
	if !orcaOn {
		opts = []grpcmgmt.Option{grpcmgmt.WithLoad(testLoad), grpcmgmt.Without("orca")}
	}
	rs := &waitingReplica{Service: replica.New(replica.Config{Name: name, Work: work, Workers: workers}), wait: downstream}
	return startServer(t, ip, func(r grpc.ServiceRegistrar) { testgrpc.RegisterTestServiceServer(r, rs) }, opts)
}

// waitingReplica is a replica.Service whose UnaryCall waits before its
// work.
type waitingReplica struct {
	*replica.Service
	wait time.Duration
}

func (w *waitingReplica) UnaryCall(ctx context.Context, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	if w.wait > 0 {
		t := time.NewTimer(w.wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}
	return w.Service.UnaryCall(ctx, req)
}

// dialWRR is a grpc-go client over a static address list.
func dialWRR(t *testing.T, serviceConfig string, addrs ...string) *grpc.ClientConn {
	t.Helper()
	r := manual.NewBuilderWithScheme("orcatest")
	var eps []resolver.Endpoint
	for _, a := range addrs {
		eps = append(eps, resolver.Endpoint{Addresses: []resolver.Address{{Addr: a}}})
	}
	r.InitialState(resolver.State{Endpoints: eps})
	cc, err := grpc.NewClient(r.Scheme()+":///replicas",
		grpc.WithResolvers(r),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(serviceConfig))
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// shares is what a load run observed: calls per replica in the warm-up
// (counts[0]) and in each measurement window (counts[1:]).
type shares struct {
	counts       []map[string]int
	sent, failed int
	errors       []string
}

// runGo sends UnaryCall at rate calls/s (open loop) for the warm-up and
// the windows, and counts the replica of each call by its x-replica header.
func runGo(cc *grpc.ClientConn, rate int, warmup time.Duration, windows int, window time.Duration) shares {
	client := testgrpc.NewTestServiceClient(cc)
	var (
		mu     sync.Mutex
		res    = shares{counts: make([]map[string]int, windows+1)}
		failed atomic.Int64
		wg     sync.WaitGroup
	)
	for i := range res.counts {
		res.counts[i] = map[string]int{}
	}
	start := time.Now()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	sent := 0
	for now := range tick.C {
		el := now.Sub(start)
		if el >= warmup+time.Duration(windows)*window {
			break
		}
		counts := res.counts[0]
		if el >= warmup {
			counts = res.counts[1+int((el-warmup)/window)]
		}
		for want := int(el.Seconds() * float64(rate)); sent < want; sent++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				var md metadata.MD
				if _, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{}, grpc.Header(&md)); err != nil {
					failed.Add(1)
					mu.Lock()
					if len(res.errors) < 5 {
						res.errors = append(res.errors, err.Error())
					}
					mu.Unlock()
					return
				}
				name := "(none)"
				if v := md.Get(replica.HeaderName); len(v) > 0 {
					name = v[0]
				}
				mu.Lock()
				counts[name]++
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	res.sent, res.failed = sent, int(failed.Load())
	return res
}

// oobReport reads the first out-of-band report a server sends.
func oobReport(t *testing.T, addr string) *v3orcapb.OrcaLoadReport {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := v3orcaservicegrpc.NewOpenRcaServiceClient(cc).StreamCoreMetrics(ctx, &v3orcaservicegrpc.OrcaLoadReportRequest{})
	if err != nil {
		t.Fatalf("StreamCoreMetrics: %v", err)
	}
	rep, err := st.Recv()
	if err != nil {
		t.Fatalf("StreamCoreMetrics Recv: %v", err)
	}
	return rep
}
