package goaway_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/grpcmgmt/grpcmgmt/goaway"
)

// pushWatcher is a Watcher the test drives: each push is one lookup,
// reported synchronously, with the time the test chooses. It is injected
// through the same interface the DNS watcher implements.
type pushWatcher struct {
	mu     sync.Mutex
	report func(goaway.Lookup)
	closed bool
}

func (w *pushWatcher) Watch(report func(goaway.Lookup)) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.report = report
	return nil
}

func (w *pushWatcher) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	return nil
}

// push reports a lookup of n members (n == 0: an empty answer) at at.
func (w *pushWatcher) push(at time.Time, n int) {
	members := make([]string, n)
	for i := range members {
		members[i] = fmt.Sprintf("10.0.0.%d", i+1)
	}
	w.send(goaway.Lookup{At: at, Members: members})
}

func (w *pushWatcher) send(l goaway.Lookup) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.report(l)
	}
}

// rebalanceRig is a real server with a Tracker, n real client connections
// (separate channels, as n clients), and a Rebalancer fed by a pushWatcher.
type rebalanceRig struct {
	tr      *goaway.Tracker
	rb      *goaway.Rebalancer
	w       *pushWatcher
	m       *meter
	logs    *logRecorder
	clients []testpb.TestServiceClient
	t0      time.Time
}

func newRebalanceRig(t *testing.T, conns int, cfg goaway.RebalanceConfig) *rebalanceRig {
	t.Helper()
	r := &rebalanceRig{w: &pushWatcher{}, m: newMeter(), logs: &logRecorder{}, t0: time.Now()}
	r.tr = newTracker(t, goaway.Config{Logger: slog.New(r.logs), MeterProvider: r.m, Grace: 5 * time.Second})
	addr, _ := startServer(t, grpc.Creds(r.tr.WrapCredentials(insecure.NewCredentials())))
	for range conns {
		c := testpb.NewTestServiceClient(dial(t, addr, insecure.NewCredentials()))
		if _, err := c.EmptyCall(context.Background(), &testpb.Empty{}); err != nil {
			t.Fatal(err)
		}
		r.clients = append(r.clients, c)
	}
	waitFor(t, 5*time.Second, "connections", func() bool { return r.tr.Len() == conns })
	cfg.Watcher = r.w
	if cfg.Settle == 0 {
		cfg.Settle = 300 * time.Millisecond // episodes end soon after the target is reached
	}
	rb, err := goaway.NewRebalancer(r.tr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.rb = rb
	t.Cleanup(func() { _ = rb.Close() })
	return r
}

// at returns the rig's time zero plus d seconds.
func (r *rebalanceRig) at(secs float64) time.Time {
	return r.t0.Add(time.Duration(secs * float64(time.Second)))
}

func (r *rebalanceRig) sent(t *testing.T) int64 {
	return r.m.sum(t, "grpcmgmt.goaway.sent", attribute.String("reason", "rebalance"))
}

func (r *rebalanceRig) decisions(t *testing.T, decision string) int64 {
	return r.m.sum(t, "grpcmgmt.goaway.rebalance.decisions", attribute.String("decision", decision))
}

// TestRebalanceGrowth: 12 connections, the set grows from 3 to 4 and stays
// there: the server keeps 3/4 of its connections (9) and sends GOAWAY to
// the 3 oldest, once the growth has been stable for StableFor, and records
// why.
func TestRebalanceGrowth(t *testing.T) {
	r := newRebalanceRig(t, 12, goaway.RebalanceConfig{Window: 200 * time.Millisecond})
	r.w.push(r.at(-60), 3)
	r.w.push(r.at(1), 4)
	r.w.push(r.at(2), 4) // seen twice, but only 1 s of the 2 s StableFor
	time.Sleep(100 * time.Millisecond)
	if got := r.tr.Active(); got != 12 {
		t.Fatalf("acted before the growth was stable: %d active connections, want 12", got)
	}
	r.w.push(r.at(3), 4)
	waitFor(t, 5*time.Second, "3 GOAWAYs", func() bool { return r.sent(t) == 3 })
	waitFor(t, 5*time.Second, "episode end", func() bool { return len(r.logs.find("rebalance: done")) == 1 })
	if got := r.sent(t); got != 3 {
		t.Fatalf("sent %d GOAWAYs, want 3 (12 × (1 - 3/4)); clients did not reconnect, so no second round", got)
	}
	var ids []uint64
	for _, c := range r.tr.Conns() {
		if !c.Draining {
			ids = append(ids, c.ID)
		}
	}
	if len(ids) != 9 || ids[0] != 4 {
		t.Fatalf("connections left without GOAWAY: %v, want the 9 youngest (4..12)", ids)
	}
	if got := r.m.sum(t, "grpcmgmt.goaway.rebalance.decisions", attribute.String("decision", "rebalance"),
		attribute.Int("replicas.before", 3), attribute.Int("replicas.after", 4)); got != 1 {
		t.Fatalf("decisions{rebalance, 3 → 4} = %d, want 1", got)
	}
	grew := r.logs.find("rebalance: replica set grew; moving")
	if len(grew) != 1 || grew[0]["before"].Int64() != 3 || grew[0]["after"].Int64() != 4 || grew[0]["keep"].Int64() != 9 {
		t.Fatalf("info log of the decision = %v, want before 3, after 4, keep 9", grew)
	}
	if got := r.rb.ReplicaSetSize(); got != 4 {
		t.Fatalf("ReplicaSetSize = %d, want 4", got)
	}
}

// TestRebalanceReconnectingClients: clients that come straight back (DNS
// round_robin clients reconnect to the same address; a round-robin L4
// balancer sends most reconnections back) are sent GOAWAY again in later
// rounds, but never more than twice the connections held at the start, and
// never after the window; no call fails.
func TestRebalanceReconnectingClients(t *testing.T) {
	const conns = 12
	const window = 500 * time.Millisecond
	r := newRebalanceRig(t, conns, goaway.RebalanceConfig{Window: window})
	ctx, cancel := context.WithCancel(context.Background())
	var failed, calls atomic.Int64
	var wg sync.WaitGroup
	for _, c := range r.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
				_, err := c.EmptyCall(cctx, &testpb.Empty{}, grpc.WaitForReady(false))
				ccancel()
				if ctx.Err() == nil {
					calls.Add(1)
					if err != nil {
						failed.Add(1)
						t.Errorf("call failed: %v", err)
					}
				}
			}
		}()
	}
	r.w.push(r.at(-60), 3)
	r.w.push(r.at(1), 4)
	start := time.Now()
	r.w.push(r.at(3), 4)
	waitFor(t, 10*time.Second, "episode end", func() bool { return len(r.logs.find("rebalance: done")) == 1 })
	took := time.Since(start)
	// The metric counts GOAWAYs written, a moment after they are asked for.
	sent := r.logs.find("rebalance: done")[0]["sent"].Int64()
	waitFor(t, 5*time.Second, "the episode's GOAWAYs on the wire", func() bool { return r.sent(t) == sent })
	time.Sleep(window) // nothing more after the episode
	cancel()
	wg.Wait()
	if after := r.sent(t); after != sent {
		t.Fatalf("%d GOAWAYs after the episode ended", after-sent)
	}
	if sent <= 3 || sent > 2*conns {
		t.Fatalf("sent %d GOAWAYs to clients that reconnect, want more than the first round (3) and at most %d", sent, 2*conns)
	}
	if took > window+time.Second {
		t.Fatalf("episode took %v, window %v", took, window)
	}
	if failed.Load() != 0 || calls.Load() == 0 {
		t.Fatalf("%d of %d calls failed", failed.Load(), calls.Load())
	}
	t.Logf("sent %d GOAWAYs in %v to %d reconnecting clients, %d calls", sent, took, conns, calls.Load())
}

// TestRebalanceDoesNothing: a smaller set, a set that flaps faster than
// StableFor, lookups that fail or come back empty, and a set that grows
// back to a size seen recently send no GOAWAY. Each case ends with a real,
// stable growth, which must act: the rebalancer was listening all along.
func TestRebalanceDoesNothing(t *testing.T) {
	cases := []struct {
		name string
		// lookups are (seconds, size) pairs after a first answer of 3 at 0;
		// size 0 is an empty answer, -1 a failed lookup.
		lookups [][2]float64
	}{
		{"shrink", [][2]float64{{1, 2}, {2, 2}, {3, 2}, {4, 1}, {5, 1}, {6, 1}}},
		{"flap every second", [][2]float64{{1, 4}, {2, 3}, {3, 4}, {4, 3}, {5, 4}, {6, 3}, {7, 4}, {8, 3}}},
		{"flap every 1.5 s", [][2]float64{{1, 4}, {1.5, 4}, {2, 4}, {2.5, 3}, {3, 4}, {3.5, 4}, {4, 4}, {4.5, 3}}},
		{"errors and empty answers", [][2]float64{{1, -1}, {2, 0}, {3, -1}, {4, 0}, {5, -1}, {6, 0}, {7, -1}}},
		{"growth interrupted by the old size", [][2]float64{{1, 4}, {2, -1}, {2.5, 3}, {3, 4}, {4, 0}}},
		{"back to a size seen recently", [][2]float64{{1, 2}, {2, 2}, {3, 2}, {4, 3}, {5, 3}, {6, 3}, {7, 3}}},
		{"bigger answer after an empty one", [][2]float64{{1, 0}, {2, 5}, {3, 0}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRebalanceRig(t, 12, goaway.RebalanceConfig{Window: 200 * time.Millisecond})
			r.w.push(r.at(-60), 3)
			last := 0.0
			for _, l := range tc.lookups {
				switch l[1] {
				case -1:
					r.w.send(goaway.Lookup{At: r.at(l[0]), Err: errors.New("lookup svc.test: i/o timeout")})
				default:
					r.w.push(r.at(l[0]), int(l[1]))
				}
				last = l[0]
			}
			time.Sleep(100 * time.Millisecond) // a round would have run by now (every 10 ms)
			if got, active := r.sent(t), r.tr.Active(); got != 0 || active != 12 {
				t.Fatalf("sent %d GOAWAYs (%d of 12 connections active), want none", got, active)
			}
			if got := r.decisions(t, "rebalance"); got != 0 {
				t.Fatalf("decisions{rebalance} = %d, want 0", got)
			}
			// Control: the set grows to 6 and stays: the server keeps 3/6
			// (or, after the shrink, 3 was the largest recent set: the same).
			for _, d := range []float64{1, 2, 3, 4} {
				r.w.push(r.at(last+d), 6)
			}
			waitFor(t, 5*time.Second, "GOAWAYs after a stable growth", func() bool { return r.sent(t) == 6 })
		})
	}
}

// TestRebalanceMemory: after a growth and a shrink, growing back to the
// same size within Memory does nothing; after Memory it acts again.
func TestRebalanceMemory(t *testing.T) {
	r := newRebalanceRig(t, 12, goaway.RebalanceConfig{Window: 200 * time.Millisecond, Memory: 30 * time.Second})
	steps := []struct {
		at   float64
		size int
	}{{-60, 3}, {1, 4}, {2, 4}, {3, 4}} // grows: acts
	for _, s := range steps {
		r.w.push(r.at(s.at), s.size)
	}
	waitFor(t, 5*time.Second, "first episode", func() bool { return len(r.logs.find("rebalance: done")) == 1 })
	if got := r.logs.find("rebalance: done")[0]["sent"].Int64(); got != 3 {
		t.Fatalf("first growth sent %d GOAWAYs, want 3", got)
	}
	const first = 3
	waitFor(t, 5*time.Second, "3 GOAWAYs on the wire", func() bool { return r.sent(t) == first })
	for _, s := range []float64{4, 5, 6} { // shrinks
		r.w.push(r.at(s), 3)
	}
	for _, s := range []float64{7, 8, 9, 10} { // back within Memory: nothing
		r.w.push(r.at(s), 4)
	}
	time.Sleep(100 * time.Millisecond)
	if got := r.sent(t); got != first {
		t.Fatalf("growing back within Memory sent %d more GOAWAYs", got-first)
	}
	if got := r.decisions(t, "remembered"); got != 1 {
		t.Fatalf("decisions{remembered} = %d, want 1", got)
	}
	for _, s := range []float64{11, 12, 13} { // shrinks again
		r.w.push(r.at(s), 3)
	}
	for _, s := range []float64{50, 51, 52, 53} { // back after Memory: acts
		r.w.push(r.at(s), 4)
	}
	waitFor(t, 5*time.Second, "second episode", func() bool { return r.decisions(t, "rebalance") == 2 })
	waitFor(t, 5*time.Second, "GOAWAYs of the second episode", func() bool { return r.sent(t) > first })
}

func TestRebalanceConfigValidate(t *testing.T) {
	w := &pushWatcher{}
	bad := []struct {
		field string
		cfg   goaway.RebalanceConfig
	}{
		{"Name", goaway.RebalanceConfig{}},
		{"Watcher", goaway.RebalanceConfig{Name: "svc.test", Watcher: w}},
		{"Resolver", goaway.RebalanceConfig{Name: "svc.test", Resolver: "127.0.0.1"}},
		{"Interval", goaway.RebalanceConfig{Name: "svc.test", Interval: time.Millisecond}},
		{"StableFor", goaway.RebalanceConfig{Watcher: w, StableFor: -1}},
		{"Memory", goaway.RebalanceConfig{Watcher: w, Memory: 48 * time.Hour}},
		{"Window", goaway.RebalanceConfig{Watcher: w, Window: time.Millisecond}},
		{"Selector", goaway.RebalanceConfig{Watcher: w, Selector: 7}},
	}
	for _, b := range bad {
		err := b.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), b.field) {
			t.Errorf("Validate(%+v) = %v, want an error naming %s", b.cfg, err, b.field)
		}
	}
	for _, good := range []goaway.RebalanceConfig{{Name: "svc.test"}, {Watcher: w}, {Name: "svc.test", Resolver: "127.0.0.1:53"}} {
		if err := good.Validate(); err != nil {
			t.Errorf("Validate(%+v) = %v", good, err)
		}
	}
	if _, err := goaway.NewRebalancer(nil, goaway.RebalanceConfig{Watcher: w}); err == nil {
		t.Error("NewRebalancer(nil Tracker) did not fail")
	}
}
