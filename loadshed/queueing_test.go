package loadshed_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
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
