package goaway_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/grpcmgmt/grpcmgmt"
	"github.com/grpcmgmt/grpcmgmt/goaway"
	"github.com/grpcmgmt/grpcmgmt/load"
)

// startManaged serves the replica test service through a grpcmgmt Manager
// with default features (so goaway comes from the root wiring) and the
// given credentials.
func startManaged(t *testing.T, tp transport, opts ...grpcmgmt.Option) (string, *grpcmgmt.Manager) {
	t.Helper()
	m, err := grpcmgmt.New(append([]grpcmgmt.Option{
		grpcmgmt.WithCredentials(tp.server),
		grpcmgmt.WithLogger(slog.New(slog.DiscardHandler)),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	opts2 := m.ServerOptions()
	// The Manager's services (health, ORCA) are not needed here, so the
	// server is not registered: Register must come before Serve.
	addr, _ := startServer(t, opts2...)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = m.Shutdown(ctx)
	})
	return addr, m
}

// TestSoakGoAwayEvery200ms: every connection receives a GOAWAY every
// 200 ms for 10 s while 32 callers make unary calls and bidi streams with
// messages from 0 B to 256 KiB; no call may fail. Insecure and TLS run in
// parallel.
func TestSoakGoAwayEvery200ms(t *testing.T) {
	const (
		soak    = 10 * time.Second
		every   = 200 * time.Millisecond
		callers = 32
	)
	for _, tp := range transports(t)[:2] {
		t.Run(tp.name, func(t *testing.T) {
			t.Parallel()
			addr, m := startManaged(t, tp)
			tr := m.GoAwayTracker()
			if tr == nil {
				t.Fatal("goaway is not on by default")
			}
			g := startLoad(dialN(t, 4, addr, tp), callers, 256<<10)
			tick := time.NewTicker(every)
			end := time.Now().Add(soak)
			sent := 0
			for time.Now().Before(end) {
				<-tick.C
				sent += tr.GoAwayAll(goaway.ReasonManual)
			}
			tick.Stop()
			g.Stop()
			t.Logf("%s: %d calls, %d failed, %d GOAWAYs sent", tp.name, g.calls.Load(), g.failed.Load(), sent)
			if g.failed.Load() != 0 {
				t.Fatalf("%d of %d calls failed: %v", g.failed.Load(), g.calls.Load(), g.firstErrs())
			}
			if g.calls.Load() < 200 || sent < 40 {
				t.Fatalf("soak not exercised: %d calls, %d GOAWAYs", g.calls.Load(), sent)
			}
		})
	}
}

// TestManagerWiring: the Manager wraps the credentials by default, and
// Without("goaway") leaves them alone.
func TestManagerWiring(t *testing.T) {
	tp := transports(t)[0]
	addr, m := startManaged(t, tp)
	cc := dial(t, addr, tp.client)
	cc.Connect()
	waitFor(t, 5*time.Second, "the Manager's tracker to see the connection", func() bool { return m.GoAwayTracker().Len() == 1 })
	m2, err := grpcmgmt.New(grpcmgmt.WithInsecure(), grpcmgmt.Without("goaway"))
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Shutdown(context.Background())
	if m2.GoAwayTracker() != nil {
		t.Fatal("Without(goaway) still has a tracker")
	}
	if _, err := grpcmgmt.New(grpcmgmt.WithInsecure(), grpcmgmt.WithGoAway(goaway.Config{Grace: -1}, goaway.PolicyConfig{})); err == nil {
		t.Fatal("New accepted Grace -1")
	}
}

// TestManagerPolicy: through the Manager, the default load policy moves
// connections when the shared sampler's CPU reading (injected) crosses the
// default enter threshold, counted with reason "load".
func TestManagerPolicy(t *testing.T) {
	cpu := &cpuReading{}
	m := newMeter()
	tp := transports(t)[0]
	addr, mgr := startManaged(t, tp,
		grpcmgmt.WithMeterProvider(m),
		grpcmgmt.WithLoad(load.Config{Period: 10 * time.Millisecond, TimeConstant: 10 * time.Millisecond, CPU: cpu}),
		grpcmgmt.WithGoAway(goaway.Config{}, goaway.PolicyConfig{Interval: 20 * time.Millisecond, MinAge: time.Millisecond}))
	for range 5 {
		dial(t, addr, tp.client).Connect()
	}
	tr := mgr.GoAwayTracker()
	waitFor(t, 5*time.Second, "connections", func() bool { return tr.Len() == 5 })
	cpu.set(0.5)
	time.Sleep(50 * time.Millisecond)
	if got := m.sum(t, "grpcmgmt.goaway.sent"); got != 0 {
		t.Fatalf("%d GOAWAYs sent at CPU 0.5", got)
	}
	cpu.set(0.97)
	waitFor(t, 5*time.Second, "the policy to move every connection", func() bool { return tr.Active() == 0 })
	// A GOAWAY is counted when it is written, on an idle connection from its
	// own goroutine: the last one may be counted just after Active drops.
	load := func() int64 { return m.sum(t, "grpcmgmt.goaway.sent", attribute.String("reason", "load")) }
	waitFor(t, 5*time.Second, "5 GOAWAYs counted", func() bool { return load() >= 5 })
	if got := load(); got != 5 {
		t.Fatalf("sent{load} = %d, want 5", got)
	}
}
