package orca_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	v3orcapb "github.com/cncf/xds/go/xds/data/orca/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	grpcorca "google.golang.org/grpc/orca"
	"google.golang.org/protobuf/proto"

	"github.com/grpcmgmt/grpcmgmt"
	"github.com/grpcmgmt/grpcmgmt/internal/replica"
	"github.com/grpcmgmt/grpcmgmt/load"
	"github.com/grpcmgmt/grpcmgmt/orca"
)

// trailerKey is where grpc-go and grpc-js read per-call reports.
const trailerKey = "endpoint-load-metrics-bin"

func dial(t *testing.T, addr string) testgrpc.TestServiceClient {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return testgrpc.NewTestServiceClient(cc)
}

// callReport makes one UnaryCall and returns the per-call report in its
// trailer, or nil when there is none.
func callReport(t *testing.T, c testgrpc.TestServiceClient) *v3orcapb.OrcaLoadReport {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var tr metadata.MD
	if _, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{}, grpc.Trailer(&tr)); err != nil {
		t.Fatalf("UnaryCall: %v", err)
	}
	return parseReport(t, tr)
}

func parseReport(t *testing.T, tr metadata.MD) *v3orcapb.OrcaLoadReport {
	t.Helper()
	v := tr.Get(trailerKey)
	switch len(v) {
	case 0:
		return nil
	case 1:
	default:
		t.Fatalf("%d %s values in the trailer, want 1 (clients discard the report otherwise)", len(v), trailerKey)
	}
	rep := &v3orcapb.OrcaLoadReport{}
	if err := proto.Unmarshal([]byte(v[0]), rep); err != nil {
		t.Fatalf("trailer %s: %v", trailerKey, err)
	}
	return rep
}

// eventually calls until check accepts a call's report, or fails after 5
// s. Calls without a report (not the first of their period on the
// connection) are skipped.
func eventually(t *testing.T, c testgrpc.TestServiceClient, what string, check func(*v3orcapb.OrcaLoadReport) bool) *v3orcapb.OrcaLoadReport {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	var rep *v3orcapb.OrcaLoadReport
	for time.Now().Before(deadline) {
		if r := callReport(t, c); r != nil {
			if rep = r; check(rep) {
				return rep
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no report with %s within 5s; last %v", what, rep)
	return nil
}

// The handler (internal/replica) never touches ORCA, yet calls, unary and
// streaming, carry a report with the server's load.
func TestPerCallReportWithoutHandlerCode(t *testing.T) {
	cpu := load.SourceFunc(func() (float64, error) { return 0.42, nil })
	rs := replica.New(replica.Config{Name: "r", Work: time.Millisecond, Workers: 1})
	s := startServer(t, "127.0.0.1", rs.Register, []grpcmgmt.Option{
		grpcmgmt.WithLoad(load.Config{Period: 20 * time.Millisecond, TimeConstant: 100 * time.Millisecond, CPU: cpu}),
		grpcmgmt.WithORCA(orca.Config{Capacity: 1, TimeConstant: 100 * time.Millisecond, PerCallInterval: 20 * time.Millisecond}),
	})
	c := dial(t, s.addr)
	if rep := callReport(t, c); rep == nil {
		t.Fatal("first call: no per-call report in the trailer")
	}
	rep := eventually(t, c, "qps, application and CPU utilization", func(r *v3orcapb.OrcaLoadReport) bool {
		return r.RpsFractional > 0 && r.ApplicationUtilization > 0 && r.CpuUtilization == 0.42
	})
	// One call of ≥1ms at a time, back to back with client overhead: the
	// single worker is busy part of the time, never more than all of it.
	if rep.ApplicationUtilization > 1.05 {
		t.Errorf("application_utilization = %v with one call at a time and capacity 1, want ≤ 1", rep.ApplicationUtilization)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := c.FullDuplexCall(ctx)
	if err != nil {
		t.Fatalf("FullDuplexCall: %v", err)
	}
	if err := st.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); err != io.EOF {
		t.Fatalf("stream Recv = %v, want EOF", err)
	}
	if r := parseReport(t, st.Trailer()); r == nil || r.RpsFractional == 0 {
		t.Errorf("stream trailer report = %v, want one with qps", r)
	}
}

// meteredService records its own per-call metrics, as an application may.
type meteredService struct {
	testgrpc.UnimplementedTestServiceServer
	app float64 // application_utilization the handler sets; 0: none
}

func (m *meteredService) UnaryCall(ctx context.Context, _ *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	rec := grpcorca.CallMetricsRecorderFromContext(ctx)
	rec.SetNamedMetric("rows", 42)
	rec.SetRequestCost("db_ms", 3)
	if m.app > 0 {
		rec.SetApplicationUtilization(m.app)
	}
	return &testgrpc.SimpleResponse{}, nil
}

// With HandlerMetrics, what the handler records is merged with the Reporter's values, not
// replaced by them, and the handler's own utilization wins.
func TestPerCallHandlerMetricsMerged(t *testing.T) {
	for _, app := range []float64{0, 0.9} {
		svc := &meteredService{app: app}
		s := startServer(t, "127.0.0.1", func(r grpc.ServiceRegistrar) { testgrpc.RegisterTestServiceServer(r, svc) },
			[]grpcmgmt.Option{
				grpcmgmt.WithLoad(load.Config{Period: 20 * time.Millisecond, TimeConstant: 100 * time.Millisecond}),
				grpcmgmt.WithORCA(orca.Config{Capacity: 100, TimeConstant: 100 * time.Millisecond, HandlerMetrics: true}),
			})
		rep := eventually(t, dial(t, s.addr), "qps", func(r *v3orcapb.OrcaLoadReport) bool { return r.RpsFractional > 0 })
		if rep.NamedMetrics["rows"] != 42 || rep.RequestCost["db_ms"] != 3 {
			t.Errorf("handler's metrics lost: named %v, cost %v", rep.NamedMetrics, rep.RequestCost)
		}
		if app > 0 && rep.ApplicationUtilization != app {
			t.Errorf("application_utilization = %v, want the handler's %v", rep.ApplicationUtilization, app)
		}
		if app == 0 && (rep.ApplicationUtilization <= 0 || rep.ApplicationUtilization >= 0.9) {
			t.Errorf("application_utilization = %v, want the Reporter's (in (0, 0.9))", rep.ApplicationUtilization)
		}
	}
}

// startStandalone serves internal/replica with a Reporter installed without
// the Manager, with the given server options, and returns its address.
func startStandalone(t *testing.T, r *orca.Reporter, opts ...grpc.ServerOption) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(opts...)
	replica.New(replica.Config{Name: "r"}).Register(srv)
	if err := r.Register(srv); err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

func newReporter(t *testing.T, lc load.Config, cfg orca.Config, opts ...orca.Option) (*orca.Reporter, *load.Sampler) {
	t.Helper()
	if lc.Logger == nil {
		lc.Logger = slog.New(slog.DiscardHandler)
	}
	s, err := load.NewSampler(lc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	opts = append([]orca.Option{orca.WithLogger(slog.New(slog.DiscardHandler))}, opts...)
	r, err := orca.New(s, cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r, s
}

// grpc-go's option alone sends no report for a handler that does not ask
// for the recorder; with the Reporter's interceptors it does. Shows the
// interceptor is what makes reports independent of handler code.
func TestStandaloneServerOptions(t *testing.T) {
	r, _ := newReporter(t, load.Config{}, orca.Config{})
	if rep := callReport(t, dial(t, startStandalone(t, r, r.CallMetricsServerOption()))); rep != nil {
		t.Errorf("grpc-go's CallMetricsServerOption alone sent a report (%v); the premise of the interceptor is gone", rep)
	}
	if rep := callReport(t, dial(t, startStandalone(t, r, r.ServerOptions()...))); rep == nil {
		t.Error("Reporter.ServerOptions: no per-call report")
	}
}

func TestDisablePerCall(t *testing.T) {
	rs := replica.New(replica.Config{Name: "r"})
	s := startServer(t, "127.0.0.1", rs.Register, []grpcmgmt.Option{
		grpcmgmt.WithLoad(load.Config{Period: 20 * time.Millisecond}),
		grpcmgmt.WithORCA(orca.Config{DisablePerCall: true, MinReportingInterval: 20 * time.Millisecond}),
	})
	if rep := callReport(t, dial(t, s.addr)); rep != nil {
		t.Errorf("DisablePerCall: got a per-call report %v", rep)
	}
	if rep := oobReport(t, s.addr); rep == nil {
		t.Error("DisablePerCall: out-of-band report missing")
	}
}

// Each client connection's first unary call carries the report, and its
// other calls in the same interval do not, however the calls are spread
// over the connections: a client with few calls gets a report as soon as
// one with many.
func TestPerCallPerConnection(t *testing.T) {
	rs := replica.New(replica.Config{Name: "r"})
	s := startServer(t, "127.0.0.1", rs.Register, []grpcmgmt.Option{
		// No sample, so no new interval, while the calls run (the first
		// comes one Period after the start).
		grpcmgmt.WithLoad(load.Config{Period: 10 * time.Second}),
	})
	busy, quiet := dial(t, s.addr), dial(t, s.addr) // two connections
	reports := func(c testgrpc.TestServiceClient, calls int) (first bool, later int) {
		first = callReport(t, c) != nil
		for range calls - 1 {
			if callReport(t, c) != nil {
				later++
			}
		}
		return first, later
	}
	if first, later := reports(busy, 40); !first || later != 0 {
		t.Errorf("busy connection: first call reported %v, %d of its 39 later calls did; want true, 0", first, later)
	}
	if first, later := reports(quiet, 2); !first || later != 0 {
		t.Errorf("quiet connection: first call reported %v, %d of its later calls did; want true, 0", first, later)
	}
}

// After each interval, the first unary call of a connection carries the
// report again, and the next does not; an interval of several sampler
// periods takes that many samples.
func TestPerCallInterval(t *testing.T) {
	for _, tc := range []struct {
		period, interval time.Duration
		samples          int // the test's loop waits for at least this many
		every            int // samples in an interval
	}{
		{100 * time.Millisecond, 100 * time.Millisecond, 3, 1},  // every sample: a report after each
		{100 * time.Millisecond, 400 * time.Millisecond, 12, 4}, // every fourth
	} {
		t.Run(tc.interval.String(), func(t *testing.T) {
			r, s := newReporter(t, load.Config{Period: tc.period}, orca.Config{Capacity: 1, PerCallInterval: tc.interval})
			samples := make(chan struct{}, 1)
			var n atomic.Int64
			cancel := s.OnSample(func(load.Snapshot) { // after the Reporter's: registered later
				n.Add(1)
				select {
				case samples <- struct{}{}:
				default:
				}
			})
			t.Cleanup(cancel)
			c := dial(t, startStandalone(t, r, r.ServerOptions()...))
			if callReport(t, c) == nil {
				t.Fatal("the connection's first call carried no report")
			}
			first := 0
			for i := range tc.samples {
				// A sample after the calls so far (not one whose
				// notification waits in the channel from between the last
				// two calls, which the second of them took).
				for k := n.Load(); n.Load() <= k; {
					select {
					case <-samples:
					case <-time.After(10 * time.Second):
						t.Fatal("no sample within 10s")
					}
				}
				before := n.Load()
				if callReport(t, c) != nil {
					first++
				}
				if rep := callReport(t, c); n.Load() == before && rep != nil {
					t.Errorf("sample %d: the second call after it carried a report too", i+1)
				}
			}
			// At most one report for each interval that ended (the
			// Reporter's samples may run one ahead of the hook's count), at
			// least one in all; with one sample an interval, every
			// iteration follows the end of one, so each reports.
			seen := int(n.Load())
			most, least := (seen+1)/tc.every, 1
			if tc.every == 1 {
				least = tc.samples
			}
			if first < least || first > most {
				t.Errorf("%d of the calls after %d samples %v apart (%d seen) carried a report with PerCallInterval %v, want %d..%d",
					first, tc.samples, tc.period, seen, tc.interval, least, most)
			}
		})
	}
}

// ORCA is on by default in the Manager; Without("orca") turns it off.
func TestManagerDefaultAndWithout(t *testing.T) {
	rs := replica.New(replica.Config{Name: "r"})
	on := startServer(t, "127.0.0.1", rs.Register, nil)
	if rep := callReport(t, dial(t, on.addr)); rep == nil {
		t.Error("default Manager: no per-call report")
	}
	off := startServer(t, "127.0.0.1", rs.Register, []grpcmgmt.Option{grpcmgmt.Without("orca")})
	if rep := callReport(t, dial(t, off.addr)); rep != nil {
		t.Errorf("Without(\"orca\"): got a per-call report %v", rep)
	}
}
