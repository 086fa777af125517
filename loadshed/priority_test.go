package loadshed_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/grpcmgmt/grpcmgmt/internal/replica"
	"github.com/grpcmgmt/grpcmgmt/load"
	"github.com/grpcmgmt/grpcmgmt/loadshed"
)

// slowUnary makes every handler wait d (a stand-in for a downstream call),
// so that calls overlap.
func slowUnary(d time.Duration) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		return h(ctx, req)
	}
}

// TestLowPriorityShedFirst: under overload of a static limit, sheddable
// calls are shed at a higher rate than critical ones, and health checks
// always pass.
func TestLowPriorityShedFirst(t *testing.T) {
	s := newShedder(t, loadshed.Config{MaxInFlight: 10, PriorityHeader: loadshed.DefaultPriorityHeader})
	addr := serve(t, replica.New(replica.Config{Name: "a"}),
		shedOpts(s, nil, []grpc.UnaryServerInterceptor{slowUnary(20 * time.Millisecond)})...)
	cc := dialConn(t, addr)
	c := dial(t, addr)
	hc := healthpb.NewHealthClient(cc)

	ctx, cancel := context.WithTimeout(t.Context(), 1500*time.Millisecond)
	defer cancel()
	var calls, shed, okCalls [2]atomic.Int64 // 0: sheddable, 1: critical
	var other atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			i, p := w%2, loadshed.Sheddable
			if i == 1 {
				p = loadshed.Critical
			}
			// Calls run under the test's context; ctx only says when to stop.
			cctx := withPriority(t.Context(), p)
			for ctx.Err() == nil {
				_, err := c.EmptyCall(cctx, &testpb.Empty{})
				switch {
				case err == nil:
					okCalls[i].Add(1)
				case status.Code(err) == codes.Unavailable:
					shed[i].Add(1)
					time.Sleep(2 * time.Millisecond) // a client backing off, not a wait for an event
				default:
					other.Add(1)
					t.Errorf("unexpected error: %s", describe(err))
				}
				calls[i].Add(1)
			}
		}()
	}
	var checks, healthy int
	for ctx.Err() == nil {
		resp, err := hc.Check(t.Context(), &healthpb.HealthCheckRequest{})
		checks++
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			healthy++
		} else {
			t.Errorf("health check under overload: %v, %s", resp.GetStatus(), describe(err))
		}
		time.Sleep(5 * time.Millisecond)
	}
	wg.Wait()
	rate := func(i int) float64 { return float64(shed[i].Load()) / float64(max(calls[i].Load(), 1)) }
	t.Logf("sheddable: %d calls, shed rate %.2f; critical: %d calls, shed rate %.2f; health %d/%d",
		calls[0].Load(), rate(0), calls[1].Load(), rate(1), healthy, checks)
	if shed[1].Load() == 0 {
		t.Fatalf("critical calls were never shed: the test did not overload the limit")
	}
	if !(rate(0) > rate(1)) {
		t.Errorf("sheddable shed rate %.2f not above critical %.2f", rate(0), rate(1))
	}
	if checks < 10 || healthy != checks {
		t.Errorf("health checks: %d of %d passed", healthy, checks)
	}
	// Metrics carry the priority of the shed calls.
	if got := metricSum(t, s, "grpcmgmt.loadshed.shed", "reason", "static", "priority", "sheddable"); got != shed[0].Load() {
		t.Errorf("shed{static,sheddable} = %d, clients saw %d", got, shed[0].Load())
	}
	if got := metricSum(t, s, "grpcmgmt.loadshed.shed", "priority", "critical"); got != shed[1].Load() {
		t.Errorf("shed{critical} = %d, clients saw %d", got, shed[1].Load())
	}
	admitted := metricSum(t, s, "grpcmgmt.loadshed.admitted")
	if want := okCalls[0].Load() + okCalls[1].Load(); admitted != want {
		t.Errorf("admitted = %d, want %d (calls that succeeded)", admitted, want)
	}
	waitUntil(t, 5*time.Second, "in-flight back to 0", func() bool { return s.InFlight() == 0 })
	if got := metricSum(t, s, "grpcmgmt.loadshed.in_flight"); got != 0 {
		t.Errorf("in_flight metric = %d after the load, want 0", got)
	}
	if got := metricSum(t, s, "grpcmgmt.loadshed.limit", "limit", "static"); got != 10 {
		t.Errorf("limit{static} = %d, want 10", got)
	}
}

// fixedCPU is a sampler whose CPU reading is v (a CPU at 95 % cannot be made
// real here); it is injected through load.Config.CPU as in production.
func fixedCPU(t *testing.T, v float64) *load.Sampler {
	t.Helper()
	smp, err := load.NewSampler(load.Config{Period: 10 * time.Millisecond, TimeConstant: 10 * time.Millisecond,
		CPU: load.SourceFunc(func() (float64, error) { return v, nil })})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = smp.Close() })
	waitUntil(t, 5*time.Second, "first CPU sample", func() bool { return smp.Snapshot().CPU == v })
	return smp
}

// TestCPUThresholdRamp: at 95 % CPU with the default threshold (90 %), the
// shed probability is (0.95−t)/(1−t) with t = 0.9 × the priority's share:
// 82 % of sheddable, 50 % of critical and no critical_plus call is shed,
// health checks pass, and per-method priorities apply where no header says
// otherwise.
func TestCPUThresholdRamp(t *testing.T) {
	s := newShedder(t, loadshed.Config{Load: fixedCPU(t, 0.95), PriorityHeader: loadshed.DefaultPriorityHeader,
		Methods: map[string]loadshed.Priority{"/grpc.testing.TestService/UnaryCall": loadshed.CriticalPlus}})
	addr := serve(t, replica.New(replica.Config{Name: "a"}), shedOpts(s, nil, nil)...)
	cc := dialConn(t, addr)
	c := dial(t, addr)
	const n = 300
	measure := func(name string, call func() error) float64 {
		shed := 0
		for i := 0; i < n; i++ {
			err := call()
			if err == nil {
				continue
			}
			if status.Code(err) != codes.Unavailable || !strings.Contains(status.Convert(err).Message(), "CPUThreshold") {
				t.Fatalf("%s: %s, want UNAVAILABLE naming CPUThreshold", name, describe(err))
			}
			shed++
		}
		return float64(shed) / n
	}
	cases := []struct {
		name string
		want float64
		call func() error
	}{
		{"sheddable header", (0.95 - 0.72) / (1 - 0.72), func() error {
			_, err := c.EmptyCall(withPriority(t.Context(), loadshed.Sheddable), &testpb.Empty{})
			return err
		}},
		{"default (critical)", 0.5, func() error { _, err := c.EmptyCall(t.Context(), &testpb.Empty{}); return err }},
		{"critical_plus by method", 0, func() error {
			_, err := c.UnaryCall(t.Context(), &testpb.SimpleRequest{})
			return err
		}},
		{"header over method", (0.95 - 0.81) / (1 - 0.81), func() error {
			_, err := c.UnaryCall(withPriority(t.Context(), loadshed.SheddablePlus), &testpb.SimpleRequest{})
			return err
		}},
		{"health", 0, func() error {
			_, err := healthpb.NewHealthClient(cc).Check(t.Context(), &healthpb.HealthCheckRequest{})
			return err
		}},
	}
	for _, tc := range cases {
		got := measure(tc.name, tc.call)
		// ±0.12 is four standard deviations of a binomial of 300 at p=0.5.
		if got < tc.want-0.12 || got > tc.want+0.12 {
			t.Errorf("%s: shed rate %.3f, want %.3f ± 0.12", tc.name, got, tc.want)
		} else {
			t.Logf("%s: shed rate %.3f (want %.3f)", tc.name, got, tc.want)
		}
	}
}

// TestPriorityHeaderWithAndWithoutTap: the priority header is read in the
// tap and passed on when TapHandle is installed, and from the incoming
// metadata when only the interceptors are: either way, with 8 of a static
// limit of 10 calls held, a sheddable call (limit 8) is shed, a call with
// an unknown value gets the default priority (critical, limit 10) and is
// admitted, as is a critical one; the admitted metric counts each by its
// priority.
func TestPriorityHeaderWithAndWithoutTap(t *testing.T) {
	for _, withTap := range []bool{true, false} {
		s := newShedder(t, loadshed.Config{MaxInFlight: 10, PriorityHeader: loadshed.DefaultPriorityHeader})
		c, g := gatedServer(t, s, withTap)
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _ = c.EmptyCall(withTest(withPriority(t.Context(), loadshed.CriticalPlus), "block"), &testpb.Empty{})
			}()
		}
		waitUntil(t, 10*time.Second, "8 calls held", func() bool { return g.entered.Load() == 8 })
		_, err := c.EmptyCall(withPriority(t.Context(), loadshed.Sheddable), &testpb.Empty{})
		if status.Code(err) != codes.Unavailable {
			t.Errorf("tap %v: sheddable call with 8 of 10 held: %v, want UNAVAILABLE", withTap, err)
		}
		unknown := metadata.AppendToOutgoingContext(t.Context(), loadshed.DefaultPriorityHeader, "urgent")
		if _, err := c.EmptyCall(unknown, &testpb.Empty{}); err != nil {
			t.Errorf("tap %v: call with an unknown priority value: %v, want admitted (default priority)", withTap, err)
		}
		if _, err := c.EmptyCall(withPriority(t.Context(), loadshed.Critical), &testpb.Empty{}); err != nil {
			t.Errorf("tap %v: critical call: %v, want admitted", withTap, err)
		}
		close(g.release)
		wg.Wait()
		for p, want := range map[string]int64{"critical_plus": 8, "critical": 2, "sheddable": 0} {
			if got := metricSum(t, s, "grpcmgmt.loadshed.admitted", "priority", p); got != want {
				t.Errorf("tap %v: admitted{priority=%s} = %d, want %d", withTap, p, got, want)
			}
		}
	}
}

// TestPriorityHeaderOnlyWhenSet: a client's priority header is its own
// claim, so it counts only where the server names the header. With 10 calls
// of the default priority (critical) held against a static limit of 10, a
// call whose header says critical_plus (limit 11) is shed by default and
// with NoHeader, and admitted when PriorityHeader is DefaultPriorityHeader;
// a call whose header says sheddable is shed in all three (with the header
// ignored it is critical, at its limit). Through the tap handle and through
// the interceptors alone alike.
func TestPriorityHeaderOnlyWhenSet(t *testing.T) {
	for _, tc := range []struct {
		name, header string
		plusAdmitted bool
	}{
		{"default", "", false},
		{"NoHeader", loadshed.NoHeader, false},
		{"DefaultPriorityHeader", loadshed.DefaultPriorityHeader, true},
	} {
		for _, withTap := range []bool{true, false} {
			c, g := gatedServer(t, newShedder(t, loadshed.Config{MaxInFlight: 10, PriorityHeader: tc.header}), withTap)
			var wg sync.WaitGroup
			for range 10 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, _ = c.EmptyCall(withTest(t.Context(), "block"), &testpb.Empty{})
				}()
			}
			waitUntil(t, 10*time.Second, "10 calls held", func() bool { return g.entered.Load() == 10 })
			_, err := c.EmptyCall(withPriority(t.Context(), loadshed.Sheddable), &testpb.Empty{})
			if status.Code(err) != codes.Unavailable {
				t.Errorf("%s, tap %v: sheddable header with 10 of 10 held: %v, want UNAVAILABLE", tc.name, withTap, err)
			}
			_, err = c.EmptyCall(withPriority(t.Context(), loadshed.CriticalPlus), &testpb.Empty{})
			switch {
			case tc.plusAdmitted && err != nil:
				t.Errorf("%s, tap %v: critical_plus header with 10 of 10 held: %v, want admitted (the header is read)", tc.name, withTap, err)
			case !tc.plusAdmitted && status.Code(err) != codes.Unavailable:
				t.Errorf("%s, tap %v: critical_plus header with 10 of 10 held: %v, want UNAVAILABLE (the header is not read)", tc.name, withTap, err)
			}
			close(g.release)
			wg.Wait()
		}
	}
}

// gatedServer serves a replica behind s and a gate that holds calls sent
// with withTest(ctx, "block"): through s's tap handle and interceptors, or,
// without withTap, through its interceptors alone (TapHandle never called).
func gatedServer(t *testing.T, s *loadshed.Shedder, withTap bool) (testpb.TestServiceClient, *gate) {
	t.Helper()
	g := newGate()
	var opts []grpc.ServerOption
	if withTap {
		opts = shedOpts(s, nil, []grpc.UnaryServerInterceptor{g.unary})
	} else {
		opts = []grpc.ServerOption{grpc.ChainUnaryInterceptor(s.UnaryServerInterceptor(), g.unary)}
	}
	return dial(t, serve(t, replica.New(replica.Config{Name: "a"}), opts...)), g
}
