package loadshed_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/grpcmgmt/grpcmgmt/internal/replica"
	"github.com/grpcmgmt/grpcmgmt/loadshed"
)

// profileRun offers rate calls/s to a replica protected by a fresh adaptive
// Shedder, in phases; phase i calls at[i] first (to change the service),
// and it returns per phase the limits read every 20 ms over its second
// half, the calls that succeeded and were shed, and the latencies of the
// successful ones.
type profilePhase struct {
	rate float64
	d    time.Duration
	at   func()
}

type profileResult struct {
	limits   []float64
	ok, shed int64
}

func (r profileResult) median() float64 {
	l := slices.Clone(r.limits)
	slices.Sort(l)
	return l[len(l)/2]
}

func runProfile(t *testing.T, svc *replica.Service, phases []profilePhase) []profileResult {
	t.Helper()
	s := newShedder(t, loadshed.Config{Adaptive: &loadshed.AdaptiveConfig{}})
	c := dial(t, serve(t, svc, shedOpts(s, nil, nil)...))
	var out []profileResult
	for _, ph := range phases {
		if ph.at != nil {
			ph.at()
		}
		var (
			res      profileResult
			mu       sync.Mutex
			ok, shed atomic.Int64
			wg       sync.WaitGroup
		)
		ctx, cancel := context.WithTimeout(t.Context(), ph.d)
		start := time.Now()
		wg.Go(func() {
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
					if time.Since(start) >= ph.d/2 {
						mu.Lock()
						res.limits = append(res.limits, float64(s.Limit()))
						mu.Unlock()
					}
				}
			}
		})
		// Open loop: calls due at rate, issued every 2 ms in batches.
		issued := 0
		tick := time.NewTicker(2 * time.Millisecond)
		for now := range tick.C {
			if ctx.Err() != nil {
				break
			}
			for due := int(now.Sub(start).Seconds() * ph.rate); issued < due; issued++ {
				wg.Go(func() {
					cctx, ccancel := context.WithTimeout(t.Context(), 2*time.Second)
					defer ccancel()
					_, err := c.UnaryCall(cctx, &testpb.SimpleRequest{})
					switch status.Code(err) {
					case codes.OK:
						ok.Add(1)
					case codes.Unavailable:
						shed.Add(1)
					default:
						// A deadline on a starved machine: neither served
						// nor shed; counted nowhere.
					}
				})
			}
		}
		tick.Stop()
		cancel()
		wg.Wait()
		res.ok, res.shed = ok.Load(), shed.Load()
		out = append(out, res)
	}
	return out
}

// attempts runs check up to three times and fails the test only if every
// attempt fails: these tests run real CPU work on a machine that other work
// may take over for seconds (measured here: a replica's capacity falling
// from 100 to 26 calls/s while other tests ran), and a limiter that is
// wrong is wrong on every attempt.
func attempts(t *testing.T, check func() string) {
	t.Helper()
	var why string
	for i := 1; i <= 3; i++ {
		if why = check(); why == "" {
			return
		}
		t.Logf("attempt %d: %s", i, why)
	}
	t.Errorf("every attempt failed; the last: %s", why)
}

// The adaptive limit on real servers, one profile each. The seeded
// simulations of sim_internal_test.go hold the figures (goodput, p99, time
// to follow); these check on a real grpc-go stack that the limit takes the
// shape of each service, with rates low enough and bounds loose enough for
// a busy two-core machine under the race detector (measured: 20 runs each
// with -race while other tests ran). Latency is not asserted: measured at
// a client in the same starved process it says more about the machine than
// about the limit.

// cpu1: one worker, 20 ms of CPU per call, offered about 3× its capacity:
// calls are shed and the limit falls to the knee, one call (two at most).
func TestProfileCPU1(t *testing.T) {
	attempts(t, func() string {
		r := runProfile(t, replica.New(replica.Config{Name: "cpu1", Work: 20 * time.Millisecond, Workers: 1}),
			[]profilePhase{{rate: 15, d: time.Second}, {rate: 150, d: 4 * time.Second}})[1]
		t.Logf("3×: %d ok, %d shed, limit median %.0f", r.ok, r.shed, r.median())
		if r.shed == 0 || r.median() > 2 {
			return fmt.Sprintf("3×: %d shed, limit median %.0f; want calls shed and a limit of 1 or 2", r.shed, r.median())
		}
		return ""
	})
}

// io: calls that wait 200 ms without CPU, any number at once, offered 200
// calls/s: 40 in flight. The limit must not starve it (a limit of 3 would
// shed nine calls in ten; the initial 20 half of them): after a start-up
// of 3 s (its no-load latency is measured by pinning the limit: no call
// ever runs alone) it stays above 30.
func TestProfileIO(t *testing.T) {
	attempts(t, func() string {
		r := runProfile(t, replica.New(replica.Config{Name: "io", Wait: 200 * time.Millisecond}),
			[]profilePhase{{rate: 200, d: 3 * time.Second}, {rate: 200, d: 3 * time.Second}})[1]
		t.Logf("%d ok, %d shed, limit median over the last 1.5s %.0f", r.ok, r.shed, r.median())
		if r.median() < 30 {
			return fmt.Sprintf("limit median %.0f (%d of %d calls shed); want at least 30", r.median(), r.shed, r.ok+r.shed)
		}
		return ""
	})
}

// drift: 40 ms downstream, then 10 ms of CPU in one worker (a knee of 5
// calls), offered 150 calls/s (1.5× its capacity); the CPU per call then
// doubles (a knee of 3): the limit falls with it. (That it rises again
// within 3 s is TestAdaptiveFollowsDrift's, on a simulated clock: on a
// starved machine 3 s are sometimes too few here.)
func TestProfileDrift(t *testing.T) {
	attempts(t, func() string {
		svc := replica.New(replica.Config{Name: "drift", Downstream: 40 * time.Millisecond, Work: 10 * time.Millisecond, Workers: 1})
		r := runProfile(t, svc, []profilePhase{
			{rate: 150, d: 3 * time.Second},
			{rate: 150, d: 3 * time.Second, at: func() { svc.SetWork(20 * time.Millisecond) }},
		})
		a, b := r[0].median(), r[1].median()
		t.Logf("limit medians: %.0f, then %.0f with the CPU per call doubled", a, b)
		if !(b < a) {
			return fmt.Sprintf("limit medians %.0f → %.0f; want it to fall when each call takes twice the CPU", a, b)
		}
		return ""
	})
}
