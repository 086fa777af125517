package loadshed

import (
	"log/slog"
	"testing"
	"time"

	"go.opentelemetry.io/otel/metric/noop"
)

// BenchmarkAdmit measures the admit+done fast path (a call admitted and
// released) on all cores, for the Shedder and its peers, in one run:
//
//	for i in 1 2 3 4 5; do go test -run '^$' -bench BenchmarkAdmit -benchtime 1000000x ./loadshed/; done
//
// Run the command several times to interleave the legs (-count repeats
// each leg in a row). Figures (BENCH.md): loadshed.admit_ns and
// loadshed.admit_allocs are the "all" leg (static, CPU and adaptive limits
// together; at this rate the adaptive limit times one call in 128);
// peer.semaphore.admit_ns a buffered-channel semaphore. peer.bbr.admit_ns,
// go-kratos/aegis ratelimit/bbr's Allow and done, is measured in the bench
// module (bench/peers), so that the library's go.mod does not list aegis. RunParallel on
// every core makes every counter contended: the worst case, since a server
// runs a handler between admit and done.
func BenchmarkAdmit(b *testing.B) {
	smp := halfSampler(b)
	shedder := func(b *testing.B, cfg Config) *Shedder {
		cfg.MeterProvider = noop.NewMeterProvider()
		cfg.Logger = slog.New(slog.DiscardHandler)
		s, err := New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = s.Close() })
		warmUp(b, s)
		return s
	}
	run := admitDone
	b.Run("loadshed/static", func(b *testing.B) {
		run(b, shedder(b, Config{MaxInFlight: 1 << 30}))
	})
	b.Run("loadshed/cpu", func(b *testing.B) {
		run(b, shedder(b, Config{Load: smp}))
	})
	b.Run("loadshed/adaptive", func(b *testing.B) {
		run(b, shedder(b, Config{Adaptive: &AdaptiveConfig{MaxLimit: 1 << 30, InitialLimit: 1 << 30}}))
	})
	b.Run("loadshed/all", func(b *testing.B) {
		run(b, shedder(b, Config{MaxInFlight: 1 << 30, Load: smp,
			Adaptive: &AdaptiveConfig{MaxLimit: 1 << 30, InitialLimit: 1 << 30}}))
	})
	b.Run("peer/semaphore", func(b *testing.B) {
		sem := make(chan struct{}, 1<<20)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				select {
				case sem <- struct{}{}:
					<-sem
				default:
					b.Fatal("full")
				}
			}
		})
	})
}

// warmUp runs calls through s until its adaptive limit has left its
// start-up mode (the first no-load latency measurement, and the first
// window that times every call) and its share of timed calls has settled
// for this rate (a window without a change), so the benchmark measures the
// path a busy server takes rather than its first few hundred milliseconds.
// The testing package calls a sub-benchmark once per b.N with a new
// Shedder, so without this every round would time every call.
func warmUp(b *testing.B, s *Shedder) {
	if s.adaptive == nil {
		return
	}
	a := s.adaptive
	deadline := time.Now().Add(5 * time.Second)
	calls := func(d time.Duration) { // at least 1000
		for end := time.Now().Add(d); ; {
			if time.Now().After(deadline) {
				b.Fatal("the adaptive limit did not settle in 5s")
			}
			for range 1000 {
				t, r := s.admit(Critical, true, true)
				if r != admitted {
					b.Fatal("shed during warm-up")
				}
				s.done(t, false)
			}
			if !time.Now().Before(end) {
				return
			}
		}
	}
	for a.sampleShift.Load() == 0 || a.gap.Load() == 0 {
		calls(0)
	}
	for {
		k := a.sampleShift.Load()
		calls(2 * a.cfg.Window)
		if a.sampleShift.Load() == k {
			break
		}
	}
	b.ResetTimer()
}

// BenchmarkSharedCount is what Config.SharedCount saves the grpcmgmt
// Manager on every unary call: the shedder's admit and done plus the
// sampler's count and timing of the call (load.Calls.BeginUnary and End),
// with the shedder counting in a word of its own ("separate", as before
// SharedCount) and in the sampler's ("shared": one add takes the slot and
// counts the call for both).
//
//	go test -run '^$' -bench BenchmarkSharedCount ./loadshed
func BenchmarkSharedCount(b *testing.B) {
	smp := halfSampler(b)
	shedder := func(b *testing.B, shared bool) *Shedder {
		s, err := New(Config{MaxInFlight: 1 << 19, Load: smp, CPUThreshold: Off, QueueingThreshold: Off, SharedCount: shared,
			MeterProvider: noop.NewMeterProvider(), Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = s.Close() })
		return s
	}
	b.Run("separate", func(b *testing.B) {
		s, calls := shedder(b, false), smp.Calls()
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				var t token
				if r := s.admitInto(&t, Critical, true, true); r != admitted {
					b.Fatal("shed")
				}
				call := calls.BeginUnary()
				call.End(false)
				s.done(t, false)
			}
		})
	})
	b.Run("shared", func(b *testing.B) { admitDone(b, shedder(b, true)) })
}

// admitDone admits and releases unary calls on every core, as the
// interceptors do (admitCall: the token is written where the caller keeps
// it).
func admitDone(b *testing.B, s *Shedder) {
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			var t token
			if r := s.admitInto(&t, Critical, true, true); r != admitted {
				b.Fatal("shed")
			}
			s.done(t, false)
		}
	})
}
