package loadshed

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"

	"go.opentelemetry.io/otel/metric/noop"
)

// TestAdmitNeverExceedsLimit hammers admit and done from many goroutines:
// the calls holding a slot never exceed the limit, every slot comes back,
// and with every caller gone a full limit of calls is admitted again.
func TestAdmitNeverExceedsLimit(t *testing.T) {
	const L = 3
	s, err := New(Config{MaxInFlight: L, MeterProvider: noop.NewMeterProvider(), Logger: slog.New(slog.DiscardHandler),
		Adaptive: &AdaptiveConfig{InitialLimit: 1000, MaxLimit: 1000}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var cur, peak, admittedN, shedN atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 5000; i++ {
				tok, r := s.admit(Critical, true, true)
				if r != admitted {
					shedN.Add(1)
					continue
				}
				admittedN.Add(1)
				holdSlot(&cur, &peak)
				s.done(tok, false)
			}
		}()
	}
	wg.Wait()
	t.Logf("%d admitted, %d shed, peak %d", admittedN.Load(), shedN.Load(), peak.Load())
	if p := peak.Load(); p > L {
		t.Fatalf("%d calls held a slot at once, limit %d", p, L)
	}
	if n := s.InFlight(); n != 0 {
		t.Fatalf("InFlight() = %d after every call ended, want 0", n)
	}
	var toks []token
	for i := 0; i < L; i++ {
		tok, r := s.admit(Critical, true, true)
		if r != admitted {
			t.Fatalf("call %d of %d refused with no other call in flight", i+1, L)
		}
		toks = append(toks, tok)
	}
	if _, r := s.admit(Critical, true, true); r != reasonStatic {
		t.Fatalf("call over the limit: reason %v, want static", r)
	}
	for _, tok := range toks {
		s.done(tok, false)
	}
}

// TestAdmittedDerived: the admitted counts are derived from the one word
// that counts calls in flight and calls done (plus a count for each
// priority other than the default), exactly, across the done count's wrap.
func TestAdmittedDerived(t *testing.T) {
	s, err := New(Config{MaxInFlight: 100, MeterProvider: noop.NewMeterProvider(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Start just below the wrap of the done count.
	s.state.Store((1<<doneBits - 3) << flightBits)
	base := uint64(1<<doneBits - 3)
	var held []token
	for i := range 10 {
		p := Critical
		if i%5 == 0 {
			p = Sheddable
		}
		tok, r := s.admit(p, true, true)
		if r != admitted {
			t.Fatalf("call %d shed", i)
		}
		if i < 7 {
			s.done(tok, false)
		} else {
			held = append(held, tok)
		}
	}
	adm, _, inFlight := s.counts()
	if adm != base+10 || inFlight != 3 {
		t.Errorf("counts: admitted %d, in flight %d; want %d, 3", adm, inFlight, base+10)
	}
	by := s.admittedBy()
	if by[Sheddable] != 2 || by[Critical] != base+8 {
		t.Errorf("admitted by priority %v, want sheddable 2, critical %d", by, base+8)
	}
	for _, tok := range held {
		s.done(tok, false)
	}
	if adm, _, inFlight := s.counts(); adm != base+10 || inFlight != 0 {
		t.Errorf("after the wrap: admitted %d, in flight %d; want %d, 0", adm, inFlight, base+10)
	}
	if w := s.doneWraps.Load(); w != 1 {
		t.Errorf("done count wraps = %d, want 1", w)
	}
}
