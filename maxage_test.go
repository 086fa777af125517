package grpcmgmt_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/keepalive"

	"github.com/grpcmgmt/grpcmgmt"
	"github.com/grpcmgmt/grpcmgmt/maxage"
)

// With an age of 1 s and a grace of 2 s, one client with 32 concurrent
// callers is moved to a new connection about every second, and no call
// fails.
func TestMaxAgeRotatesConnectionsWithoutFailures(t *testing.T) {
	t.Parallel()
	s := startServer(t, grpcmgmt.WithMaxAge(maxage.Config{
		MaxConnectionAge:      time.Second,
		MaxConnectionAgeGrace: 2 * time.Second,
	}))
	cc := dial(t, s.addr)
	client := testpb.NewTestServiceClient(cc)

	const callers = 32
	const window = 10 * time.Second
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	ctx, cancel := context.WithTimeout(context.Background(), window)
	defer cancel()
	var wg sync.WaitGroup
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				callCtx, c := context.WithTimeout(context.Background(), 5*time.Second)
				_, err := client.UnaryCall(callCtx, &testpb.SimpleRequest{ResponseSize: 512})
				c()
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Errorf("%d of %d calls failed; first: %v", n, n+ok.Load(), firstErr.Load())
	}
	if n := s.conns.began.Load(); n < 8 {
		t.Errorf("server saw %d connections from the client in %v, want >= 8 (age 1s)", n, window)
	}
	t.Logf("%d calls, %d connections", ok.Load(), s.conns.began.Load())
}

// A client that sends keepalive pings every 10 s (grpc-go's minimum), also
// while idle, is not closed for too many pings under the defaults. The
// control leg shows the test can fail: grpc-go's own enforcement policy
// closes the same client.
func TestKeepalivePingsOfStandardClientsAccepted(t *testing.T) {
	t.Parallel()
	// grpc-go closes at the third strike; pings go out at 10, 20, 30 s.
	const window = 33 * time.Second
	legs := []struct {
		name       string
		opts       []grpcmgmt.Option
		wantClosed bool
	}{
		{name: "defaults", wantClosed: false},
		{name: "grpc-go enforcement (control)", opts: []grpcmgmt.Option{grpcmgmt.Without("maxage")}, wantClosed: true},
	}
	var wg sync.WaitGroup
	for _, leg := range legs {
		s := startServer(t, leg.opts...)
		cc := dial(t, s.addr, grpc.WithKeepaliveParams(keepalive.ClientParameters{
			Time:                10 * time.Second,
			Timeout:             5 * time.Second,
			PermitWithoutStream: true,
		}))
		// One call to connect, then idle: only pings flow.
		if _, err := testpb.NewTestServiceClient(cc).EmptyCall(context.Background(), &testpb.Empty{}); err != nil {
			t.Fatalf("%s: first call: %v", leg.name, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), window)
			defer cancel()
			// Wait for the connection to leave READY (closed by the server)
			// or for the window to pass.
			for cc.GetState() == connectivity.Ready && cc.WaitForStateChange(ctx, connectivity.Ready) {
			}
			closed := false
			if cc.GetState() != connectivity.Ready {
				// The server's ConnEnd follows the client's view shortly.
				deadline := time.Now().Add(5 * time.Second)
				for !closed && time.Now().Before(deadline) {
					closed = s.conns.ended.Load() > 0
					time.Sleep(10 * time.Millisecond)
				}
			}
			if closed != leg.wantClosed {
				t.Errorf("%s: connection closed by server = %v after %v of 10 s pings, want %v", leg.name, closed, window, leg.wantClosed)
			}
		}()
	}
	wg.Wait()
}
