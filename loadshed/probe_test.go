package loadshed_test

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/grpcmgmt/grpcmgmt/load"
	"github.com/grpcmgmt/grpcmgmt/loadshed"
)

// TestProbesAreNotOverload: the calls the adaptive limit sheds while it
// measures the no-load latency (its first measurement, and a probe every
// ProbeInterval under sustained load) are not reported to the load
// sampler as refused for load, so the shed ratio health reads
// (load.Snapshot.ShedRatio against health.Config.ShedEnter, 1 %) stays
// under it for a replica that serves all its load: four callers on four
// workers. The probes do shed calls (else the test would prove nothing).
// With thirty callers on the four workers, the refusals for load still
// count. The sampler's period and time constant are the defaults
// (synctest: virtual time).
func TestProbesAreNotOverload(t *testing.T) {
	run := func(callers int, probeEvery time.Duration) (shed int64, maxRatio float64) {
		synctest.Test(t, func(t *testing.T) {
			zero := load.SourceFunc(func() (float64, error) { return 0, nil })
			sampler, err := load.NewSampler(load.Config{CPU: zero, Memory: zero, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			defer sampler.Close()
			var mu sync.Mutex
			cancel := sampler.OnSample(func(s load.Snapshot) {
				mu.Lock()
				maxRatio = max(maxRatio, s.ShedRatio)
				mu.Unlock()
			})
			defer cancel()
			s := newShedder(t, loadshed.Config{Load: sampler, CPUThreshold: loadshed.Off, QueueingThreshold: loadshed.Off,
				Adaptive: &loadshed.AdaptiveConfig{ProbeInterval: probeEvery}})
			defer s.Close()
			intercept, count := s.UnaryServerInterceptor(), timed(sampler)
			info := &grpc.UnaryServerInfo{FullMethod: "/grpc.testing.TestService/UnaryCall"}
			workers := make(chan struct{}, 4)
			call := func() error {
				_, err := intercept(context.Background(), struct{}{}, info, func(ctx context.Context, req any) (any, error) {
					return count(ctx, req, info, func(context.Context, any) (any, error) {
						workers <- struct{}{}
						time.Sleep(40 * time.Millisecond)
						<-workers
						return req, nil
					})
				})
				return err
			}
			var (
				wg sync.WaitGroup
				n  atomic.Int64
			)
			end := time.Now().Add(8 * time.Second)
			for i := range callers {
				wg.Go(func() {
					time.Sleep(time.Duration(i) * 7 * time.Millisecond)
					for time.Now().Before(end) {
						if status.Code(call()) == codes.Unavailable {
							n.Add(1)
							time.Sleep(10 * time.Millisecond) // the pushback
						}
					}
				})
			}
			wg.Wait()
			shed = n.Load()
		})
		return shed, maxRatio
	}
	shed, ratio := run(4, time.Second)
	t.Logf("4 callers on 4 workers: %d calls shed while the limit measured, shed ratio at most %.4f", shed, ratio)
	if shed == 0 {
		t.Errorf("no call shed in 8 s with a probe every second: the test measures nothing")
	}
	if ratio >= 0.01 {
		t.Errorf("shed ratio %.4f with 4 callers on 4 workers: the probes' cost reads as overload (health's ShedEnter is 0.01)", ratio)
	}
	shed, ratio = run(30, 30*time.Second)
	t.Logf("30 callers on 4 workers: %d calls shed, shed ratio at most %.4f", shed, ratio)
	if ratio < 0.01 {
		t.Errorf("shed ratio %.4f with 30 callers on 4 workers (%d shed): refusals for load must count", ratio, shed)
	}
}
