package loadshed_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"

	"github.com/grpcmgmt/grpcmgmt/clientconfig"
	"github.com/grpcmgmt/grpcmgmt/internal/replica"
	"github.com/grpcmgmt/grpcmgmt/loadshed"
)

// TestRetriedOnOtherReplica: two replicas, one held at its limit; a grpc-go
// client with clientconfig.RoundRobin sees zero failures, the shed calls being
// served by the other replica.
//
// The calls are sequential: round_robin advances once per attempt, so a
// retry then always lands on the other replica. With concurrent callers on
// one channel, attempts interleave and each lands on the shedding replica
// with probability 1/2 here (1/N with N replicas), so a call can spend all
// 5 attempts there (the package documentation gives the measured rate).
func TestRetriedOnOtherReplica(t *testing.T) {
	const L = 2
	sa := newShedder(t, loadshed.Config{MaxInFlight: L})
	ga := newGate()
	addrA := serve(t, replica.New(replica.Config{Name: "a"}), shedOpts(sa, nil, []grpc.UnaryServerInterceptor{ga.unary})...)
	sb := newShedder(t, loadshed.Config{MaxInFlight: 1000})
	addrB := serve(t, replica.New(replica.Config{Name: "b"}), shedOpts(sb, nil, nil)...)

	// Hold replica a at its limit with calls from another client.
	holder := dial(t, addrA)
	var held sync.WaitGroup
	for i := 0; i < L; i++ {
		held.Add(1)
		go func() {
			defer held.Done()
			_, _ = holder.EmptyCall(withTest(t.Context(), "block"), &testpb.Empty{})
		}()
	}
	waitUntil(t, 5*time.Second, "replica a at its limit", func() bool { return sa.InFlight() == L })

	r := manual.NewBuilderWithScheme("ls")
	r.InitialState(resolver.State{Addresses: []resolver.Address{{Addr: addrA}, {Addr: addrB}}})
	c := dial(t, r.Scheme()+":///replicas", grpc.WithResolvers(r), grpc.WithDefaultServiceConfig(clientconfig.RoundRobin))

	const calls = 200
	var failed, servedA, servedB atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 1; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < calls; i++ {
				var hdr metadata.MD
				_, err := c.UnaryCall(t.Context(), &testpb.SimpleRequest{}, grpc.Header(&hdr))
				if err != nil {
					failed.Add(1)
					t.Errorf("call failed: %s", describe(err))
					continue
				}
				switch v := hdr.Get(replica.HeaderName); {
				case len(v) == 1 && v[0] == "a":
					servedA.Add(1)
				case len(v) == 1 && v[0] == "b":
					servedB.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	close(ga.release)
	held.Wait()

	shedByA := shedCount(t, sa)
	t.Logf("%d calls: %d failed, served by a %d, by b %d; a shed %d attempts", calls, failed.Load(), servedA.Load(), servedB.Load(), shedByA)
	if failed.Load() != 0 {
		t.Fatalf("%d calls failed, want 0", failed.Load())
	}
	if servedA.Load() != 0 || servedB.Load() != calls {
		t.Errorf("served by a %d, by b %d; want every call on b (a was at its limit)", servedA.Load(), servedB.Load())
	}
	if shedByA == 0 {
		t.Errorf("replica a shed nothing: the client never tried it, so retries were not exercised")
	}
}

// TestWithoutRetryPolicyCallsFail is the control for TestRetriedOnOtherReplica:
// the same setup without the retry policy fails the calls that land on the
// replica at its limit, so the retry policy is what makes them succeed.
func TestWithoutRetryPolicyCallsFail(t *testing.T) {
	sa := newShedder(t, loadshed.Config{MaxInFlight: 1})
	ga := newGate()
	addrA := serve(t, replica.New(replica.Config{Name: "a"}), shedOpts(sa, nil, []grpc.UnaryServerInterceptor{ga.unary})...)
	addrB := serve(t, replica.New(replica.Config{Name: "b"}))
	holder := dial(t, addrA)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = holder.EmptyCall(withTest(t.Context(), "block"), &testpb.Empty{})
	}()
	waitUntil(t, 5*time.Second, "replica a at its limit", func() bool { return sa.InFlight() == 1 })
	r := manual.NewBuilderWithScheme("ls")
	r.InitialState(resolver.State{Addresses: []resolver.Address{{Addr: addrA}, {Addr: addrB}}})
	c := dial(t, r.Scheme()+":///replicas", grpc.WithResolvers(r),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`))
	// Calls until one fails: round_robin picks only connected replicas, and
	// b's connection may be ready well before a's (a fixed number of calls
	// could all go to b; seen once in CI, 40 calls in 20 ms).
	defer func() { close(ga.release); <-done }()
	waitUntil(t, 10*time.Second, "a call failing with Unavailable without a retry policy (on the replica at its limit)", func() bool {
		_, err := c.UnaryCall(t.Context(), &testpb.SimpleRequest{})
		return status.Code(err) == codes.Unavailable
	})
}
