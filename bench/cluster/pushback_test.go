package cluster

import (
	"context"
	"fmt"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"

	"github.com/grpcmgmt/grpcmgmt"
	"github.com/grpcmgmt/grpcmgmt/clientconfig"
	"github.com/grpcmgmt/grpcmgmt/load"
	"github.com/grpcmgmt/grpcmgmt/loadshed"
)

// pushbackWait is the retry pushback of the shedding replica in
// TestStacksHonourRetryPushback: far above the documented policy's backoff
// (at most 0.1 s), so that the two cannot be mistaken for each other.
const pushbackWait = 300 * time.Millisecond

// TestStacksHonourRetryPushback: each stack, with the documented service
// config (clientconfig.RoundRobin: five attempts, backoff at most 0.1 s) and
// a single replica that sheds every call with a retry pushback of 300 ms,
// retries each call four times and waits the pushback before each retry
// (gRFC A6): a call takes at least 1.2 s, so one caller makes at most 3
// calls in 3 s (the client's own count; the attempts are the replica's shed
// counter). A client that ignored the pushback would retry after its
// backoff (at most 0.1 s) and make ten calls or more.
func TestStacksHonourRetryPushback(t *testing.T) {
	c := newCluster(t)
	const ip = "127.0.0.2"
	for _, st := range append([]Stack{GoStack}, externalStacks...) {
		t.Run(st.Name(), func(t *testing.T) {
			if st != GoStack {
				needStack(t, st)
			}
			port, err := FreePort(ip)
			if err != nil {
				t.Fatal(err)
			}
			dns, err := c.StartDNS(fmt.Sprintf("svc.%s.pushback.test", st.Name()), 0, ip)
			if err != nil {
				t.Fatal(err)
			}
			reader := sdkmetric.NewManualReader()
			mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
			t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
			b := inProcessReplica(t, "b", ip, port, grpcmgmt.WithMeterProvider(mp),
				grpcmgmt.WithLoadShed(loadshed.Config{Pushback: pushbackWait}),
				grpcmgmt.WithLoad(load.Config{Period: 10 * time.Millisecond, CPU: load.SourceFunc(func() (float64, error) { return 1, nil })}))
			for deadline := time.Now().Add(5 * time.Second); b.Load().Snapshot().CPU < 1; time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("the replica's sampler never read the injected CPU")
				}
			}
			const runFor = 3 * time.Second
			calls := 0
			start := time.Now()
			if st == GoStack {
				cc, err := grpc.NewClient(fmt.Sprintf("dns://%s/%s:%d", dns.Addr, dns.Name, port),
					grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDefaultServiceConfig(clientconfig.RoundRobin))
				if err != nil {
					t.Fatal(err)
				}
				defer cc.Close()
				client := testgrpc.NewTestServiceClient(cc)
				for time.Since(start) < runFor {
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					_, _ = client.EmptyCall(ctx, &testgrpc.Empty{})
					cancel()
					calls++
				}
			} else {
				l := dnsLoad(st, dns, port)
				l.ServiceConfig, l.Channels, l.Callers, l.CallTimeout, l.For = clientconfig.RoundRobin, 1, 1, 5*time.Second, runFor
				r, err := c.StartExternal(context.Background(), l)
				if err != nil {
					t.Fatal(err)
				}
				out, err := r.Wait(NewRecorder())
				if err != nil {
					t.Fatal(err)
				}
				calls = out.Calls
			}
			took := time.Since(start)
			attempts := shedCount(t, reader)
			retries := attempts - int64(calls)
			t.Logf("%s: %d calls, %d attempts (all shed) in %v: %.1f retries a second", st.Name(), calls, attempts, took.Round(time.Millisecond), float64(retries)/took.Seconds())
			if calls == 0 || retries < 3*int64(calls) {
				t.Fatalf("%s: %d retries of %d calls, want at least 3 a call (5 attempts): the client did not retry UNAVAILABLE", st.Name(), retries, calls)
			}
			if most := int(runFor/(4*pushbackWait)) + 1; calls > most {
				t.Errorf("%s: %d calls of five attempts in %v, want at most %d (four waits of %v each): the pushback was not honoured", st.Name(), calls, runFor, most, pushbackWait)
			}
		})
	}
}
