package load_test

import (
	"testing"

	"github.com/grpcmgmt/grpcmgmt/load"
)

// BenchmarkCallsBeginEnd is the cost the call counter adds to every call:
// Begin and End on one shared counter from all Ps at once.
func BenchmarkCallsBeginEnd(b *testing.B) {
	var c load.Calls
	b.ReportAllocs()
	b.SetParallelism(32) // 32 goroutines per P: 64 on this 2-CPU machine
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.Begin()
			c.End(false)
		}
	})
}

// BenchmarkCallsBeginUnaryEnd is the cost of a timed (unary) call: the
// counting of BenchmarkCallsBeginEnd plus two clock reads and the latency
// sample.
func BenchmarkCallsBeginUnaryEnd(b *testing.B) {
	var c load.Calls
	b.ReportAllocs()
	b.SetParallelism(32)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.BeginUnary().End(false)
		}
	})
}

// BenchmarkSnapshot is the cost of reading the latest sample on the call
// path, from all Ps at once, while the sampler publishes every 10ms.
func BenchmarkSnapshot(b *testing.B) {
	s, err := load.NewSampler(load.Config{Period: 10e6, CPU: constant(0.5), Memory: constant(0.5), Logger: quiet()})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var sink float64
		for pb.Next() {
			sink += s.Snapshot().CPU
		}
		_ = sink
	})
}

// BenchmarkCallPath is what a lever does per call: count the call and read
// the snapshot, against the Sampler's own counter (which sits on its own
// cache line, away from the snapshot pointer).
func BenchmarkCallPath(b *testing.B) {
	s, err := load.NewSampler(load.Config{Period: 10e6, CPU: constant(0.5), Memory: constant(0.5), Logger: quiet()})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	c := s.Calls()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var sink float64
		for pb.Next() {
			c.Begin()
			sink += s.Snapshot().CPU
			c.End(false)
		}
		_ = sink
	})
}
