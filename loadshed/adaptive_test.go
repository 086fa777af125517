package loadshed_test

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/grpcmgmt/grpcmgmt/loadshed"
)

// The replica of the adaptive test: each call waits 100 ms (a downstream
// call: concurrency is free) and then holds the one worker for 10 ms
// (capacity 100 calls/s). Its latency is flat up to the knee, 100/s ×
// 110 ms = 11 calls in flight, and grows in proportion beyond.
//
// The test runs in a testing/synctest bubble: the replica's waits and work
// are sleeps on the bubble's clock, which the Shedder reads too (it is
// created in the bubble), so the capacity and the knee are exact and do not
// move with the machine's load, and 10 s of load take a few hundred
// milliseconds. The calls go through the Shedder's unary interceptor, as
// grpc-go would call it, without a transport (real sockets do not block
// durably, so the bubble's clock could not advance past them).
const (
	kneeWait     = 100 * time.Millisecond
	kneeWork     = 10 * time.Millisecond
	kneeCapacity = float64(time.Second / kneeWork) // calls/s, one worker
	kneeInFlight = kneeCapacity * float64(kneeWait+kneeWork) / float64(time.Second)
)

// kneeReplica returns the replica's handler: the wait, then the worker.
func kneeReplica() grpc.UnaryHandler {
	worker := make(chan struct{}, 1)
	return func(ctx context.Context, req any) (any, error) {
		time.Sleep(kneeWait)
		worker <- struct{}{}
		time.Sleep(kneeWork)
		<-worker
		return req, nil
	}
}

// openLoop calls the interceptor rate times per second until ctx ends and
// counts the calls that succeeded and were shed.
func openLoop(ctx context.Context, t *testing.T, call func() error, rate float64, ok, shed *atomic.Int64) {
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		wg.Go(func() {
			switch err := call(); status.Code(err) {
			case codes.OK:
				ok.Add(1)
			case codes.Unavailable:
				shed.Add(1)
			default:
				t.Errorf("call: %v", err)
			}
		})
	}
}

// TestAdaptiveLimitFindsKnee: against a replica whose latency rises with
// concurrency past its knee, the adaptive limit settles within ±25 % of the
// knee under 2.5× overload; when the load drops to 30 % of capacity,
// shedding stops. The load starts light, as when a replica joins, so the
// no-load latency is measured without pinning the limit.
func TestAdaptiveLimitFindsKnee(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newShedder(t, loadshed.Config{Adaptive: &loadshed.AdaptiveConfig{MinLimit: 2, ProbeInterval: time.Minute}})
		intercept, handler := s.UnaryServerInterceptor(), kneeReplica()
		info := &grpc.UnaryServerInfo{FullMethod: "/grpc.testing.TestService/UnaryCall"}
		call := func() error {
			_, err := intercept(context.Background(), struct{}{}, info, handler)
			return err
		}

		// phase offers rate calls/s for d and returns the limits read
		// every 50 ms after skip, the calls that succeeded and were shed,
		// and the calls shed after skip.
		phase := func(rate float64, d, skip time.Duration) (limits []float64, ok, shed, shedLate int64) {
			ctx, cancel := context.WithTimeout(t.Context(), d)
			defer cancel()
			var nok, nshed atomic.Int64
			loadDone := make(chan struct{})
			go func() { openLoop(ctx, t, call, rate, &nok, &nshed); close(loadDone) }()
			start := time.Now()
			var shedAtSkip int64 = -1
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
		loop:
			for {
				select {
				case <-ctx.Done():
					break loop
				case <-tick.C:
					if time.Since(start) >= skip {
						if shedAtSkip < 0 {
							shedAtSkip = nshed.Load()
						}
						limits = append(limits, float64(s.Limit()))
					}
				}
			}
			<-loadDone
			slices.Sort(limits)
			return limits, nok.Load(), nshed.Load(), nshed.Load() - max(shedAtSkip, 0)
		}

		_, ok, shed, _ := phase(0.3*kneeCapacity, 1500*time.Millisecond, 0)
		t.Logf("warm-up at 30%%: %d ok, %d shed", ok, shed)

		limits, ok, shed, _ := phase(2.5*kneeCapacity, 6*time.Second, 3*time.Second)
		settled := limits[len(limits)/2]
		t.Logf("overload at 2.5×: %d ok, %d shed; limit over the last 3 s: median %.0f (min %.0f, max %.0f)",
			ok, shed, settled, limits[0], limits[len(limits)-1])
		if shed == 0 {
			t.Errorf("nothing was shed at 2.5× capacity")
		}
		if lo, hi := 0.75*kneeInFlight, 1.25*kneeInFlight; settled < lo || settled > hi {
			t.Errorf("adaptive limit settled at %.0f, want within ±25%% of the knee, %.0f (%.1f..%.1f)", settled, kneeInFlight, lo, hi)
		}

		limits, ok, shed, late := phase(0.3*kneeCapacity, 2500*time.Millisecond, time.Second)
		t.Logf("light load at 30%%: %d ok, %d shed (%d after the first second); limit median %.0f", ok, shed, late, limits[len(limits)/2])
		if late != 0 {
			t.Errorf("%d calls shed at 30%% of capacity a second after the load dropped, want 0", late)
		}
	})
}
