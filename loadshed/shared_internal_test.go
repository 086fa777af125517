package loadshed

import (
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"go.opentelemetry.io/otel/metric/noop"

	"github.com/grpcmgmt/grpcmgmt/load"
)

// halfSampler returns a load sampler whose CPU and memory readings are
// 0.5, closed when tb ends.
func halfSampler(tb testing.TB) *load.Sampler {
	tb.Helper()
	half := load.SourceFunc(func() (float64, error) { return 0.5, nil })
	smp, err := load.NewSampler(load.Config{CPU: half, Memory: half, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = smp.Close() })
	return smp
}

// holdSlot counts one call holding a slot in cur (and its peak in peak)
// while other goroutines run, then no more.
func holdSlot(cur, peak *atomic.Int64) {
	n := cur.Add(1)
	for {
		p := peak.Load()
		if n <= p || peak.CompareAndSwap(p, n) {
			break
		}
	}
	runtime.Gosched() // hold the slot while others try
	cur.Add(-1)
}

// newSharedShedder returns a Shedder with SharedCount on a sampler whose
// readings are fixed, and the sampler.
func newSharedShedder(t *testing.T, cfg Config) (*Shedder, *load.Sampler) {
	t.Helper()
	smp := halfSampler(t)
	cfg.Load, cfg.SharedCount = smp, true
	cfg.CPUThreshold, cfg.QueueingThreshold = Off, Off
	cfg.MeterProvider, cfg.Logger = noop.NewMeterProvider(), slog.New(slog.DiscardHandler)
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, smp
}

// TestSharedCountNeverExceedsLimit hammers admit and done with unary calls
// (counted in the sampler's word) and streams (in the Shedder's own) at
// once: the calls holding a slot never exceed the limit, whatever mix
// takes them, and every slot comes back. This is the two-word check of
// take: each call writes its own word and then reads the other.
func TestSharedCountNeverExceedsLimit(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"static", Config{MaxInFlight: 3}},
		{"adaptive", Config{MaxInFlight: 3, Adaptive: &AdaptiveConfig{InitialLimit: 1000, MaxLimit: 1000}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const L = 3
			s, smp := newSharedShedder(t, tc.cfg)
			var cur, peak, unaryN, streamN, shedN atomic.Int64
			var wg sync.WaitGroup
			for g := range 8 {
				unary := g%2 == 0
				wg.Add(1)
				go func() {
					defer wg.Done()
					// Until admitted 1000 times, yielding after each shed:
					// a goroutine that retried without yielding could spend
					// all its tries while the others hold every slot, and
					// one kind would then never be admitted (seen under
					// -race on 2 CPUs, with 4000 tries a goroutine).
					for n := 0; n < 1000; {
						var tok token
						if r := s.admitInto(&tok, Critical, unary, true); r != admitted {
							shedN.Add(1)
							runtime.Gosched()
							continue
						}
						n++
						if unary {
							unaryN.Add(1)
						} else {
							streamN.Add(1)
						}
						// Until the first shed, every admitted call holds
						// its slot: with 8 callers and 3 slots the 4th
						// caller is then refused, whatever the scheduler
						// does (yielding alone let a run on 2 CPUs admit
						// all 8000 calls without ever filling the limit).
						for shedN.Load() == 0 {
							runtime.Gosched()
						}
						holdSlot(&cur, &peak)
						s.done(tok, false)
					}
				}()
			}
			wg.Wait()
			t.Logf("%d unary and %d streams admitted, %d shed, peak %d", unaryN.Load(), streamN.Load(), shedN.Load(), peak.Load())
			if p := peak.Load(); p > L {
				t.Fatalf("%d calls held a slot at once, limit %d", p, L)
			}
			if shedN.Load() == 0 {
				t.Fatal("no call was shed: the limit was never reached")
			}
			if n := s.InFlight(); n != 0 {
				t.Fatalf("InFlight() = %d after every call ended, want 0", n)
			}
			calls := smp.Calls()
			if n := calls.UnaryInFlight(); n != 0 {
				t.Fatalf("the sampler's unary calls in flight = %d after every call ended, want 0", n)
			}
			// The admitted count is derived from the two words: the
			// sampler's started unary calls and the Shedder's streams.
			if got, want := calls.UnaryStarted(), uint64(unaryN.Load()); got != want {
				t.Errorf("the sampler counted %d unary calls started, want the %d admitted (refused ones leave no trace)", got, want)
			}
			if adm, _ := s.admittedAll(); adm != uint64(unaryN.Load()+streamN.Load()) {
				t.Errorf("admitted %d, want %d", adm, unaryN.Load()+streamN.Load())
			}
			// A full limit fits again, in any mix.
			var toks []token
			for i := range L {
				var tok token
				if r := s.admitInto(&tok, Critical, i != 1, true); r != admitted {
					t.Fatalf("call %d of %d refused with no other call in flight", i+1, L)
				}
				toks = append(toks, tok)
			}
			for _, unary := range []bool{true, false} {
				var tok token
				if r := s.admitInto(&tok, Critical, unary, true); r != reasonStatic {
					t.Fatalf("call over the limit (unary %v): reason %v, want static", unary, r)
				}
			}
			if n, u := s.InFlight(), calls.UnaryInFlight(); n != L || u != L-1 {
				t.Fatalf("InFlight() = %d, the sampler's unary in flight %d; want %d and %d", n, u, L, L-1)
			}
			for _, tok := range toks {
				s.done(tok, false)
			}
			if n := s.InFlight(); n != 0 {
				t.Fatalf("InFlight() = %d, want 0", n)
			}
		})
	}
}

// TestSharedCountFinish: with SharedCount a unary call's outcome reaches
// the sampler's error count through Ticket.Finish, and an exempt unary call
// is counted there (in flight, untimed) without taking a slot.
func TestSharedCountFinish(t *testing.T) {
	s, smp := newSharedShedder(t, Config{MaxInFlight: 1, Exempt: []string{"/pkg.Admin/"}})
	calls := smp.Calls()
	tk, err := s.AdmitUnary(t.Context(), "/pkg.Svc/Get")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AdmitUnary(t.Context(), "/pkg.Svc/Get"); err == nil {
		t.Fatal("second call admitted over MaxInFlight 1")
	}
	ex, err := s.AdmitUnary(t.Context(), "/pkg.Admin/Ping")
	if err != nil {
		t.Fatalf("exempt call: %v", err)
	}
	if got := calls.InFlight(); got != 2 {
		t.Errorf("the sampler's calls in flight = %d, want 2 (the admitted call and the exempt one)", got)
	}
	if got := s.InFlight(); got != 1 {
		t.Errorf("InFlight() = %d, want 1 (an exempt call holds no slot)", got)
	}
	tk.Finish(true)
	ex.Finish(false)
	if got := calls.Failed(); got != 1 {
		t.Errorf("the sampler counted %d failed calls, want 1", got)
	}
	if got := calls.InFlight(); got != 0 {
		t.Errorf("the sampler's calls in flight = %d after both ended, want 0", got)
	}
	if got := calls.Started(); got != 2 {
		t.Errorf("the sampler counted %d calls started, want 2 (the refused call is not one)", got)
	}
}
