package load_test

import (
	"sync"
	"testing"
	"time"

	"github.com/grpcmgmt/grpcmgmt/load"
)

// TestCallsExactUnderContention: 64 goroutines begin and end calls at once
// (every seventh one failed) while others read; the counters are exact, and
// with every goroutine holding one call open, InFlight is exactly 64.
func TestCallsExactUnderContention(t *testing.T) {
	const (
		goroutines = 64
		perG       = 2000
	)
	s := newSampler(t, load.Config{})
	c := s.Calls()
	var (
		start, holding, release sync.WaitGroup
		wg                      sync.WaitGroup
	)
	start.Add(1)
	holding.Add(goroutines)
	release.Add(1)
	for g := range goroutines {
		wg.Go(func() {
			start.Wait()
			for i := range perG {
				c.Begin()
				_ = s.Snapshot().InFlight // readers race with writers
				c.End((g*perG+i)%7 == 0)
			}
			c.Begin()
			holding.Done()
			release.Wait()
			c.End(false)
		})
	}
	start.Done()
	holding.Wait()
	if got := c.InFlight(); got != goroutines {
		t.Errorf("InFlight with every goroutine holding one call = %d, want %d", got, goroutines)
	}
	release.Done()
	wg.Wait()
	total := goroutines * (perG + 1)
	wantFailed := 0
	for k := range goroutines * perG {
		if k%7 == 0 {
			wantFailed++
		}
	}
	if got := c.InFlight(); got != 0 {
		t.Errorf("InFlight after every call ended = %d, want 0", got)
	}
	if got := c.Started(); got != uint64(total) {
		t.Errorf("Started = %d, want %d", got, total)
	}
	if got := c.Failed(); got != uint64(wantFailed) {
		t.Errorf("Failed = %d, want %d", got, wantFailed)
	}
	// The sampler sees the same counts: its next snapshot has no call in
	// flight.
	waitFor(t, "a snapshot with no call in flight", 5*time.Second, func() bool {
		sn := s.Snapshot()
		return !sn.At.IsZero() && sn.InFlight == 0
	})
}

// TestCallPathAllocatesNothing: Begin, End, BeginUnary, Call.End, InFlight
// and Snapshot are free
// of allocations.
func TestCallPathAllocatesNothing(t *testing.T) {
	s := newSampler(t, load.Config{})
	c := s.Calls()
	var sink float64
	if n := testing.AllocsPerRun(1000, func() {
		c.Begin()
		call := c.BeginUnary()
		sink += s.Snapshot().CPU + float64(c.InFlight())
		call.End(false)
		c.End(true)
	}); n != 0 {
		t.Errorf("call path allocates %v times per call, want 0", n)
	}
	_ = sink
}

func TestCallsZeroValue(t *testing.T) {
	var c load.Calls
	c.Begin()
	c.Begin()
	c.End(true)
	if c.InFlight() != 1 || c.Started() != 2 || c.Failed() != 1 {
		t.Errorf("InFlight %d Started %d Failed %d, want 1 2 1", c.InFlight(), c.Started(), c.Failed())
	}
}
