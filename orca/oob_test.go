package orca_test

import (
	"context"
	"testing"
	"time"

	v3orcaservicegrpc "github.com/cncf/xds/go/xds/service/orca/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/grpcmgmt/grpcmgmt"
	"github.com/grpcmgmt/grpcmgmt/internal/replica"
	"github.com/grpcmgmt/grpcmgmt/load"
	"github.com/grpcmgmt/grpcmgmt/orca"
)

func orcaClient(t *testing.T, addr string) v3orcaservicegrpc.OpenRcaServiceClient {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return v3orcaservicegrpc.NewOpenRcaServiceClient(cc)
}

func openStream(t *testing.T, c v3orcaservicegrpc.OpenRcaServiceClient, interval time.Duration) (v3orcaservicegrpc.OpenRcaService_StreamCoreMetricsClient, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	req := &v3orcaservicegrpc.OrcaLoadReportRequest{}
	if interval > 0 {
		req.ReportInterval = durationpb.New(interval)
	}
	st, err := c.StreamCoreMetrics(ctx, req)
	if err != nil {
		cancel()
		t.Fatalf("StreamCoreMetrics: %v", err)
	}
	t.Cleanup(cancel)
	return st, cancel
}

// A minimum below grpc-go's 30 s is honoured, and a client asking for less
// than the minimum gets the minimum.
func TestOutOfBandShortInterval(t *testing.T) {
	const minInterval = 100 * time.Millisecond
	cpu := load.SourceFunc(func() (float64, error) { return 0.3, nil })
	rs := replica.New(replica.Config{Name: "r"})
	s := startServer(t, "127.0.0.1", rs.Register, []grpcmgmt.Option{
		grpcmgmt.WithLoad(load.Config{Period: 20 * time.Millisecond, CPU: cpu}),
		grpcmgmt.WithORCA(orca.Config{MinReportingInterval: minInterval}),
	})
	for _, asked := range []time.Duration{0, 10 * time.Millisecond, 3 * minInterval} {
		want := max(asked, minInterval)
		st, cancel := openStream(t, orcaClient(t, s.addr), asked)
		// Count the reports that arrive within 4 intervals: the first comes
		// at once, then one per interval. Counting over a span, not gap by
		// gap, keeps a report delayed by a busy machine from failing it.
		span := 4 * want
		start := time.Now()
		n := 0
		for {
			rep, err := st.Recv()
			if err != nil {
				t.Fatalf("Recv: %v", err)
			}
			if time.Since(start) > span {
				break
			}
			n++
			if n > 1 && rep.CpuUtilization != 0.3 {
				t.Errorf("report cpu_utilization = %v, want 0.3", rep.CpuUtilization)
			}
		}
		cancel()
		if n < 2 || n > 4+2 {
			t.Errorf("asked %v: %d reports in %v, want about %d (one per %v)", asked, n, span, 5, want)
		}
	}
}

// With the default minimum the stream is grpc-go's own orca.Service: the
// first report comes at once, the next not before 30 s.
func TestOutOfBandDefaultIntervalIsGRPCs(t *testing.T) {
	rs := replica.New(replica.Config{Name: "r"})
	s := startServer(t, "127.0.0.1", rs.Register, []grpcmgmt.Option{grpcmgmt.WithLoad(load.Config{Period: 20 * time.Millisecond})})
	st, cancel := openStream(t, orcaClient(t, s.addr), time.Second)
	defer cancel()
	if _, err := st.Recv(); err != nil {
		t.Fatalf("first report: %v", err)
	}
	got := make(chan error, 1)
	go func() { _, err := st.Recv(); got <- err }()
	select {
	case err := <-got:
		t.Fatalf("second report (err %v) within 300ms; the 30s minimum was not applied", err)
	case <-time.After(300 * time.Millisecond):
	}
	cancel()
	<-got
}

// Close ends the open streams (Unavailable), and the stream gauge follows.
func TestOutOfBandCloseEndsStreams(t *testing.T) {
	mp, reader := testMeter(t)
	r, _ := newReporter(t, load.Config{Period: 20 * time.Millisecond},
		orca.Config{MinReportingInterval: 20 * time.Millisecond}, orca.WithMeterProvider(mp))
	addr := startStandalone(t, r, r.ServerOptions()...)
	st, cancel := openStream(t, orcaClient(t, addr), 0)
	defer cancel()
	if _, err := st.Recv(); err != nil {
		t.Fatal(err)
	}
	if n := sumInt(t, reader, "grpcmgmt.orca.oob_streams"); n != 1 {
		t.Errorf("oob_streams = %d with one stream open, want 1", n)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	for {
		_, err := st.Recv()
		if err == nil {
			continue
		}
		if status.Code(err) != codes.Unavailable {
			t.Errorf("stream after Close: %v, want Unavailable", err)
		}
		break
	}
	waitFor(t, "oob_streams back to 0", func() bool { return sumInt(t, reader, "grpcmgmt.orca.oob_streams") == 0 })
	if n := sumInt(t, reader, "grpcmgmt.orca.oob_reports"); n < 1 {
		t.Errorf("oob_reports = %d, want ≥ 1", n)
	}
	if err := r.Register(grpc.NewServer()); err != orca.ErrClosed {
		t.Errorf("Register after Close = %v, want ErrClosed", err)
	}
}

func TestDisableOutOfBand(t *testing.T) {
	rs := replica.New(replica.Config{Name: "r"})
	s := startServer(t, "127.0.0.1", rs.Register, []grpcmgmt.Option{grpcmgmt.WithORCA(orca.Config{DisableOutOfBand: true})})
	st, cancel := openStream(t, orcaClient(t, s.addr), 0)
	defer cancel()
	if _, err := st.Recv(); status.Code(err) != codes.Unimplemented {
		t.Errorf("StreamCoreMetrics with DisableOutOfBand: %v, want Unimplemented", err)
	}
	if rep := callReport(t, dial(t, s.addr)); rep == nil {
		t.Error("DisableOutOfBand turned the per-call reports off too")
	}
}

func TestRegisterTwice(t *testing.T) {
	r, _ := newReporter(t, load.Config{}, orca.Config{})
	srv := grpc.NewServer()
	if err := r.Register(srv); err != nil {
		t.Fatal(err)
	}
	if err := r.Register(srv); err == nil {
		t.Error("second Register on the same server: nil error, want one (grpc-go would exit)")
	}
	if err := r.Register(nil); err == nil {
		t.Error("Register(nil): nil error")
	}
}
