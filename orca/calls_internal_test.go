package orca

import (
	"log/slog"
	"math"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/metric/noop"

	"github.com/grpcmgmt/grpcmgmt/load"
)

// fakeClock drives a callTracker's time by hand (µs).
type fakeClock struct {
	mu  sync.Mutex
	now int64
}

func (c *fakeClock) read() int64  { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) set(us int64) { c.mu.Lock(); c.now = us; c.mu.Unlock() }

func trackerAt(start int64) (*callTracker, *fakeClock) {
	c := &fakeClock{now: start}
	t := newCallTracker()
	t.now = c.read
	return t, c
}

// The integral counts calls still in flight up to the reading, and the
// completed ones exactly.
func TestCallTrackerIntegral(t *testing.T) {
	for _, base := range []int64{0, 1<<sumBits - 15} { // the second wraps the start-time sum
		tr, clk := trackerAt(base)
		a := tr.begin() // t=0
		clk.set(base + 10)
		b := tr.begin() // t=10
		clk.set(base + 30)
		if _, got, started := tr.read(); got != 30+20 || started != 2 {
			t.Errorf("base %d: at 30 with calls since 0 and 10: integral %d, started %d; want 50, 2", base, got, started)
		}
		clk.set(base + 40)
		tr.end(a) // 40
		clk.set(base + 50)
		tr.end(b) // 40
		clk.set(base + 60)
		if at, got, _ := tr.read(); got != 80 || at != base+60 {
			t.Errorf("base %d: after both ended: integral %d at %d, want 80 at %d", base, got, at, base+60)
		}
		if n := tr.inFlight(); n != 0 {
			t.Errorf("base %d: in flight %d, want 0", base, n)
		}
	}
}

// Under concurrent calls every reading is plausible (never more than
// elapsed time × calls in flight: an inconsistent read of count and start
// times would be off by the clock's whole value), and once every call ended
// the integral is exactly the completed calls' time.
func TestCallTrackerConcurrent(t *testing.T) {
	tr := newCallTracker()
	t0 := tr.now()
	const workers, calls = 8, 2000
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range calls {
				tr.end(tr.begin())
			}
		}()
	}
	stop := make(chan struct{})
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			at, got, _ := tr.read()
			if limit := uint64(at-t0+1) * workers; got > limit {
				t.Errorf("integral %d µs after %d µs with %d workers", got, at-t0, workers)
				return
			}
		}
	}()
	wg.Wait()
	close(stop)
	<-readerDone
	_, got, started := tr.read()
	if started != workers*calls || tr.inFlight() != 0 {
		t.Fatalf("started %d, in flight %d; want %d, 0", started, tr.inFlight(), workers*calls)
	}
	if done := tr.done.Load(); got != done {
		t.Errorf("integral %d with no call in flight, want the completed time %d", got, done)
	}
}

// Without a limit, application_utilization is the CPU, or, while queueing
// is high, the queueing share when higher; with a limit, the calls in flight
// over it.
func TestAppUtilizationQueueing(t *testing.T) {
	s, err := load.NewSampler(load.Config{CPU: load.SourceFunc(func() (float64, error) { return 0, nil }),
		Memory: load.SourceFunc(func() (float64, error) { return 0, nil }), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, c := range []struct {
		cfg  Config
		snap load.Snapshot
		want float64
	}{
		{Config{}, load.Snapshot{CPU: 0.3, Queueing: 0.1}, 0.3},
		{Config{}, load.Snapshot{CPU: 0.1, Queueing: 0.6}, 0.6}, // not high, but a queue all the same
		{Config{}, load.Snapshot{CPU: 0.1, Queueing: 0.8, QueueingHigh: true}, 0.8},
		{Config{}, load.Snapshot{CPU: 0.9, Queueing: 0.8, QueueingHigh: true}, 0.9},
		{Config{Capacity: 4}, load.Snapshot{CPU: 0.1, Queueing: 0.8, QueueingHigh: true}, 0}, // no call in flight
	} {
		r, err := New(s, c.cfg, WithLogger(slog.New(slog.DiscardHandler)), WithMeterProvider(noop.NewMeterProvider()))
		if err != nil {
			t.Fatal(err)
		}
		clk := &fakeClock{now: 1}
		r.calls.now = clk.read
		r.lastAt = 1
		clk.set(250_000)
		r.onSample(c.snap)
		if got := r.ServerMetrics().AppUtilization; math.Abs(got-c.want) > 1e-9 {
			t.Errorf("%+v, CPU %.1f queueing %.1f: application_utilization %v, want %v", c.cfg, c.snap.CPU, c.snap.Queueing, got, c.want)
		}
		_ = r.Close()
	}
}
