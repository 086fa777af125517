package orca_test

import (
	"context"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/grpcmgmt/grpcmgmt/load"
	"github.com/grpcmgmt/grpcmgmt/orca"
)

var fastLoad = load.Config{Period: 10 * time.Millisecond, TimeConstant: 50 * time.Millisecond}

// hold starts n unary calls through r's interceptor that stay in flight
// until the returned function is called.
func hold(t *testing.T, r *orca.Reporter, n int) (release func()) {
	t.Helper()
	unblock := make(chan struct{})
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = r.UnaryServerInterceptor()(context.Background(), nil, &grpc.UnaryServerInfo{},
				func(context.Context, any) (any, error) { <-unblock; return nil, nil })
		}()
	}
	waitFor(t, "calls in flight", func() bool { return r.InFlight() == int64(n) })
	var once sync.Once
	release = func() { once.Do(func() { close(unblock); wg.Wait() }) }
	t.Cleanup(release)
	return release
}

func waitApp(t *testing.T, r *orca.Reporter, want float64) {
	t.Helper()
	waitFor(t, "application_utilization ≈ "+strconv.FormatFloat(want, 'g', 3, 64), func() bool {
		return math.Abs(r.ServerMetrics().AppUtilization-want) < 0.02
	})
}

// application_utilization is the mean of calls in flight ÷ the limit:
// Config.Limit when it reports one, else Capacity; with neither, the CPU.
func TestApplicationUtilizationSources(t *testing.T) {
	var limit atomic.Int64
	cpu := load.SourceFunc(func() (float64, error) { return 0.33, nil })
	lc := fastLoad
	lc.CPU = cpu
	r, _ := newReporter(t, lc, orca.Config{
		Capacity:     4,
		Limit:        orca.LimitFunc(func() int { return int(limit.Load()) }),
		TimeConstant: 50 * time.Millisecond,
	})
	release := hold(t, r, 3)
	waitApp(t, r, 3.0/4) // Limit reports 0: Capacity
	limit.Store(6)
	waitApp(t, r, 3.0/6) // Limit wins
	limit.Store(0)
	waitApp(t, r, 3.0/4)
	release()
	waitFor(t, "application_utilization decays once the calls end", func() bool {
		return r.ServerMetrics().AppUtilization < 0.01
	})
	if sm := r.ServerMetrics(); sm.CPUUtilization != 0.33 {
		t.Errorf("cpu_utilization = %v, want 0.33", sm.CPUUtilization)
	}

	// No limit at all: application_utilization is the CPU's, so clients
	// that read only it (grpc-js) still weigh.
	r2, _ := newReporter(t, lc, orca.Config{TimeConstant: 50 * time.Millisecond})
	hold(t, r2, 2)
	waitApp(t, r2, 0.33)
}

// Memory is clamped to ORCA's 0..1 and custom sources become named
// utilizations.
func TestReportedFields(t *testing.T) {
	s, err := load.NewSampler(load.Config{
		Period:  10 * time.Millisecond,
		Logger:  slog.New(slog.DiscardHandler),
		Memory:  load.SourceFunc(func() (float64, error) { return 1.5, nil }),
		Sources: map[string]load.Source{"queue": load.SourceFunc(func() (float64, error) { return 0.4, nil })},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r, err := orca.New(s, orca.Config{}, orca.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	waitFor(t, "a sample", func() bool { return r.ServerMetrics().MemUtilization != -1 })
	sm := r.ServerMetrics()
	if sm.MemUtilization != 1 || sm.Utilization["queue"] != 0.4 {
		t.Errorf("mem_utilization %v (want 1), utilization %v (want queue 0.4)", sm.MemUtilization, sm.Utilization)
	}
	// The copy is the caller's: changing it changes nothing in r.
	sm.Utilization["queue"] = 9
	sm.NamedMetrics["x"] = 1
	if got := r.ServerMetrics(); got.Utilization["queue"] == 9 || len(got.NamedMetrics) != 0 {
		t.Errorf("ServerMetrics returned shared maps: %v %v", got.Utilization, got.NamedMetrics)
	}
}
