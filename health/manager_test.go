package health_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthgrpc "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/grpcmgmt/grpcmgmt"
	"github.com/grpcmgmt/grpcmgmt/health"
	"github.com/grpcmgmt/grpcmgmt/internal/replica"
	"github.com/grpcmgmt/grpcmgmt/load"
	"github.com/grpcmgmt/grpcmgmt/loadshed"
)

// syncBuffer is a bytes.Buffer safe for the Manager's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestManagerRegistersHealthByDefault(t *testing.T) {
	m, err := grpcmgmt.New(grpcmgmt.WithInsecure(), grpcmgmt.WithHealth(health.Config{PropagationDelay: time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Shutdown(context.Background())
	if m.Health() == nil {
		t.Fatal("Health() is nil with the default features")
	}
	srv := grpc.NewServer(m.ServerOptions()...)
	if err := m.Register(srv); err != nil {
		t.Fatal(err)
	}
	if _, ok := srv.GetServiceInfo()[healthgrpc.Health_ServiceDesc.ServiceName]; !ok {
		t.Error("Manager.Register did not register grpc.health.v1.Health")
	}
}

func TestManagerRegisterRejectsDuplicateHealth(t *testing.T) {
	m, err := grpcmgmt.New(grpcmgmt.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Shutdown(context.Background())
	srv := grpc.NewServer(m.ServerOptions()...)
	healthgrpc.RegisterHealthServer(srv, healthgrpc.UnimplementedHealthServer{})
	err = m.Register(srv)
	if !errors.Is(err, health.ErrAlreadyRegistered) || !strings.Contains(err.Error(), "health.Config.Server") {
		t.Errorf("Register on a server with its own health service = %v, want ErrAlreadyRegistered saying what to do", err)
	}
}

func TestManagerWithoutHealth(t *testing.T) {
	m, err := grpcmgmt.New(grpcmgmt.WithInsecure(), grpcmgmt.Without("health"))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Shutdown(context.Background())
	if m.Health() != nil {
		t.Error("Health() is not nil with Without(\"health\")")
	}
	srv := grpc.NewServer(m.ServerOptions()...)
	if err := m.Register(srv); err != nil {
		t.Fatal(err)
	}
	if _, ok := srv.GetServiceInfo()[healthgrpc.Health_ServiceDesc.ServiceName]; ok {
		t.Error("grpc.health.v1.Health registered with Without(\"health\")")
	}
}

func TestManagerRejectsInvalidHealthConfig(t *testing.T) {
	_, err := grpcmgmt.New(grpcmgmt.WithInsecure(), grpcmgmt.WithHealth(health.Config{Hold: -time.Second}))
	if err == nil || !strings.Contains(err.Error(), "Hold must be within") {
		t.Errorf("New(WithHealth(Hold: -1s)) = %v, want an error naming Hold and its range", err)
	}
}

// Manager.Shutdown turns the server NOT_SERVING, waits the propagation
// delay, then stops it, and logs each step in that order.
func TestManagerShutdownLameDuck(t *testing.T) {
	logs := &syncBuffer{}
	const delay = 300 * time.Millisecond
	cpu := &signal{}
	n := startNode(t, nodeConfig{
		addr: "127.0.0.1:0", load: fastLoad(cpu),
		health: health.Config{PropagationDelay: delay, Logger: slog.New(slog.NewTextHandler(logs, nil))},
	})
	w := healthWatch(t, n.addr)
	w.waitFor(t, 1, 5*time.Second)
	begin := time.Now()
	stopped := make(chan time.Time)
	go func() { n.stop(t); stopped <- time.Now() }()
	down := w.waitFor(t, 2, time.Second)
	if down.st != notServing {
		t.Fatalf("status on Shutdown %v, want NOT_SERVING", down.st)
	}
	if d := down.at.Sub(begin); d > delay/2 {
		t.Errorf("NOT_SERVING %v after Shutdown began, want at once (well within the %v delay)", d, delay)
	}
	// A Watch stream is a call in flight: GracefulStop waits for it. A
	// health-checking client ends its own on the GOAWAY; this one is ended
	// by hand.
	w.stop()
	if d := (<-stopped).Sub(begin); d < delay || d > delay+5*time.Second {
		t.Errorf("Shutdown returned after %v, want the propagation delay %v and a prompt GracefulStop", d, delay)
	}
	if !strings.Contains(logs.String(), "lame duck") {
		t.Errorf("logs do not say the lame duck began:\n%s", logs)
	}
}

// Calls in flight, counted by the Manager on real calls, turn the server
// NOT_SERVING above InFlightEnter and SERVING again below InFlightExit.
func TestInFlightFlip(t *testing.T) {
	cpu := &signal{}
	cpu.Set(0.1)
	n := startNode(t, nodeConfig{
		addr:    "127.0.0.1:0",
		replica: replica.Config{Name: "a", Work: 20 * time.Millisecond, Workers: 1},
		load:    fastLoad(cpu),
		health: health.Config{
			InFlightEnter: 4, InFlightExit: 2,
			Hold: 50 * time.Millisecond, MinDwell: 50 * time.Millisecond, MaxNotServing: time.Minute,
			PropagationDelay: 10 * time.Millisecond,
		},
	})
	w := healthWatch(t, n.addr)
	w.waitFor(t, 1, 5*time.Second)
	// A plain client (no health checking) keeps six calls in flight against
	// one worker: calls queue, in-flight stays at 6.
	cc, err := grpc.NewClient(n.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	rec := &recorder{}
	stop := closedLoop(cc, 6, 0, rec)
	down := w.waitFor(t, 2, 5*time.Second)
	stop()
	if down.st != notServing {
		t.Fatalf("status with 6 calls in flight %v, want NOT_SERVING", down.st)
	}
	if up := w.waitFor(t, 3, 5*time.Second); up.st != serving {
		t.Fatalf("status once the calls ended %v, want SERVING", up.st)
	}
	if f := failed(rec.results()); len(f) > 0 {
		t.Errorf("%d calls failed: %v (NOT_SERVING must not fail calls of clients that do not check health)", len(f), f[0].err)
	}
}

// A replica whose calls queue behind one worker while its CPU reads 10 %
// turns NOT_SERVING on the queueing signal alone (the default thresholds:
// calls take twice their no-load latency), and SERVING again once the
// queue is gone. The no-load latency is measured first from calls that
// ran alone.
func TestQueueingFlip(t *testing.T) {
	cpu := &signal{}
	cpu.Set(0.1)
	n := startNode(t, nodeConfig{
		addr:    "127.0.0.1:0",
		replica: replica.Config{Name: "a", Work: 5 * time.Millisecond, Workers: 1},
		load:    fastLoad(cpu),
		health: health.Config{
			Hold: 50 * time.Millisecond, MinDwell: 50 * time.Millisecond, MaxNotServing: time.Minute,
			PropagationDelay: 10 * time.Millisecond,
		},
	})
	w := healthWatch(t, n.addr)
	w.waitFor(t, 1, 5*time.Second)
	cc, err := grpc.NewClient(n.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	rec := &recorder{}
	c := testpb.NewTestServiceClient(cc)
	for range 40 { // one at a time: the no-load latency
		call(context.Background(), c, rec, 5*time.Second)
	}
	// Six callers against one worker: each call waits for five others.
	stop := closedLoop(cc, 6, 0, rec)
	down := w.waitFor(t, 2, 10*time.Second)
	stop()
	if down.st != notServing {
		t.Fatalf("status with calls queueing at CPU 0.1: %v, want NOT_SERVING", down.st)
	}
	if up := w.waitFor(t, 3, 10*time.Second); up.st != serving {
		t.Fatalf("status once the queue was gone %v, want SERVING", up.st)
	}
	if f := failed(rec.results()); len(f) > 0 {
		t.Errorf("%d calls failed: %v", len(f), f[0].err)
	}
}

// A replica whose shedder keeps refusing calls turns NOT_SERVING on that
// alone: its CPU reads 10 %, and the shedder's limit (one call in flight
// on one worker) leaves nothing to queue. Once the calls stop it is SERVING again. Refused
// calls fail (that is the shedder's job); no admitted call may.
func TestShedFlip(t *testing.T) {
	cpu := &signal{}
	cpu.Set(0.1)
	// The queueing signal off: on a busy machine the one admitted call can
	// still take several times its no-load latency, and health would then
	// follow queueing, not the refusals.
	noQueueing := fastLoad(cpu)
	noQueueing.QueueingEnter = load.Off
	n := startNode(t, nodeConfig{
		addr:    "127.0.0.1:0",
		replica: replica.Config{Name: "a", Work: 5 * time.Millisecond, Workers: 1},
		load:    noQueueing,
		health: health.Config{
			Hold: 50 * time.Millisecond, MinDwell: 50 * time.Millisecond, MaxNotServing: time.Minute,
			PropagationDelay: 10 * time.Millisecond,
		},
		opts: []grpcmgmt.Option{grpcmgmt.WithLoadShed(loadshed.Config{MaxInFlight: 1})},
	})
	w := healthWatch(t, n.addr)
	w.waitFor(t, 1, 5*time.Second)
	cc, err := grpc.NewClient(n.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	rec := &recorder{}
	stop := closedLoop(cc, 8, 0, rec)
	down := w.waitFor(t, 2, 10*time.Second)
	stop()
	if down.st != notServing {
		t.Fatalf("status while the shedder refused calls at CPU 0.1: %v, want NOT_SERVING", down.st)
	}
	if up := w.waitFor(t, 3, 10*time.Second); up.st != serving {
		t.Fatalf("status once the calls stopped %v, want SERVING", up.st)
	}
	shed := 0
	for _, r := range failed(rec.results()) {
		if status.Code(r.err) != codes.ResourceExhausted && status.Code(r.err) != codes.Unavailable {
			t.Fatalf("a call failed with %v; only refused calls may fail", r.err)
		}
		shed++
	}
	if shed == 0 {
		t.Fatal("no call was refused: the test did not overload the shedder")
	}
}
