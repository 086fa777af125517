package loadshed_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/grpcmgmt/grpcmgmt/internal/replica"
	"github.com/grpcmgmt/grpcmgmt/load"
	"github.com/grpcmgmt/grpcmgmt/loadshed"
)

// timed counts and times the calls the Shedder admits in the sampler, as
// the grpcmgmt Manager's call counter does.
func timed(s *load.Sampler) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		call := s.Calls().BeginUnary()
		resp, err := h(ctx, req)
		call.End(err != nil)
		return resp, err
	}
}

// TestQueueingLimit: with only the default CPU and queueing limits (no
// concurrency limit), a replica whose calls queue behind its one worker
// while its CPU reads 10 % sheds calls for queueing, with a status that
// names the limit, and stops once the queue is gone.
func TestQueueingLimit(t *testing.T) {
	sampler, err := load.NewSampler(load.Config{Period: 10 * time.Millisecond, TimeConstant: 200 * time.Millisecond,
		CPU: load.SourceFunc(func() (float64, error) { return 0.1, nil }), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer sampler.Close()
	s := newShedder(t, loadshed.Config{Load: sampler})
	c := dial(t, serve(t, replica.New(replica.Config{Name: "q", Work: 5 * time.Millisecond, Workers: 1}),
		shedOpts(s, nil, []grpc.UnaryServerInterceptor{timed(sampler)})...))
	// One at a time: the no-load latency. (A stall of the machine can make
	// one of them slow enough to be shed: retried, not counted.)
	waitUntil(t, 10*time.Second, "the no-load latency", func() bool {
		_, _ = c.UnaryCall(t.Context(), &testpb.SimpleRequest{})
		return sampler.Snapshot().NoLoadLatency > 0
	})
	ctx, cancel := context.WithCancel(t.Context())
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		msg string
	)
	for range 8 { // eight callers, one worker: each call waits for seven
		wg.Go(func() {
			for ctx.Err() == nil {
				_, err := c.UnaryCall(ctx, &testpb.SimpleRequest{})
				if status.Code(err) == codes.Unavailable {
					mu.Lock()
					msg = status.Convert(err).Message()
					mu.Unlock()
				}
			}
		})
	}
	waitUntil(t, 10*time.Second, "a call shed", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return msg != ""
	})
	cancel()
	wg.Wait()
	if !strings.Contains(msg, "QueueingThreshold") {
		t.Errorf("shed call's message %q does not name QueueingThreshold", msg)
	}
	if n := metricSum(t, s, "grpcmgmt.loadshed.shed", "reason", "queueing"); n == 0 {
		t.Errorf("no call counted as shed for queueing")
	}
	if n := metricSum(t, s, "grpcmgmt.loadshed.shed", "reason", "cpu"); n != 0 {
		t.Errorf("%d calls shed for CPU at a CPU of 10 %%", n)
	}
	waitUntil(t, 10*time.Second, "queueing back to normal", func() bool { return sampler.Snapshot().Queueing < 0.1 })
	if _, err := c.UnaryCall(t.Context(), &testpb.SimpleRequest{}); err != nil {
		t.Errorf("a call once the queue was gone: %v", err)
	}
}

// TestQueueingUnderMinDelayNotShed: a microsecond-scale service measured
// idle at 20 µs a call whose calls then take 400 µs (a GC pause, a
// descheduled thread) reads as queueing 0.95, over the threshold, but the
// 380 µs delay is under the sampler's QueueingMinDelay (1 ms): no call is
// shed. With QueueingMinDelay 100 µs the same trace is shed. Run in a
// testing/synctest bubble: the calls' durations are sleeps on the bubble's
// clock, which the sampler and the Shedder read, so the latencies are exact
// whatever the machine's load.
func TestQueueingUnderMinDelayNotShed(t *testing.T) {
	run := func(minDelay time.Duration) (shed int) {
		synctest.Test(t, func(t *testing.T) {
			sampler, err := load.NewSampler(load.Config{Period: 10 * time.Millisecond, TimeConstant: 10 * time.Millisecond,
				QueueingMinDelay: minDelay, CPU: load.SourceFunc(func() (float64, error) { return 0, nil }),
				Memory: load.SourceFunc(func() (float64, error) { return 0, nil }), Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			defer sampler.Close()
			s := newShedder(t, loadshed.Config{Load: sampler})
			defer s.Close()
			intercept, count := s.UnaryServerInterceptor(), timed(sampler)
			info := &grpc.UnaryServerInfo{FullMethod: "/grpc.testing.TestService/UnaryCall"}
			call := func(d time.Duration) error {
				_, err := intercept(context.Background(), struct{}{}, info, func(ctx context.Context, req any) (any, error) {
					return count(ctx, req, info, func(context.Context, any) (any, error) {
						time.Sleep(d)
						return req, nil
					})
				})
				return err
			}
			// One at a time at 20 µs, with a pause every ten calls so that
			// each sample sees some: the no-load latency.
			for i := 0; sampler.Snapshot().NoLoadLatency == 0; i++ {
				if i > 10_000 {
					t.Fatal("no no-load latency after 10 000 calls")
				}
				if err := call(20 * time.Microsecond); err != nil {
					t.Fatalf("a call at no load: %v", err)
				}
				if i%10 == 9 {
					time.Sleep(time.Millisecond)
				}
			}
			// Then 400 µs a call for a second, from two callers at once
			// half a call apart (so that no call runs alone).
			var (
				wg sync.WaitGroup
				n  atomic.Int64
			)
			end := time.Now().Add(time.Second)
			for i := range 2 {
				wg.Go(func() {
					time.Sleep(time.Duration(i) * 200 * time.Microsecond)
					for time.Now().Before(end) {
						if status.Code(call(400*time.Microsecond)) == codes.Unavailable {
							n.Add(1)
						}
					}
				})
			}
			wg.Wait()
			shed = int(n.Load())
			if q := sampler.Snapshot().Queueing; q < 0.9 {
				t.Fatalf("queueing %.2f at 400 µs against 20 µs, want about 0.95", q)
			}
		})
		return shed
	}
	if n := run(0); n != 0 {
		t.Errorf("%d calls shed for a queueing delay of 380 µs, under QueueingMinDelay (1 ms)", n)
	}
	if n := run(100 * time.Microsecond); n == 0 {
		t.Errorf("no call shed for a queueing delay of 380 µs with QueueingMinDelay 100 µs")
	}
}
