package orca

import (
	"sync/atomic"
	"time"
)

// Bit layout of callTracker.state: the low countBits hold the number of
// calls in flight, the high sumBits the sum of their start times (in
// microseconds since callTracker.base) modulo 2^sumBits.
const (
	countBits = 20 // up to MaxCapacity (about a million) calls in flight
	sumBits   = 64 - countBits
	countMask = 1<<countBits - 1
	sumMask   = 1<<sumBits - 1
)

// callTracker measures the time integral of the unary calls in flight (in
// call·microseconds) and counts the calls started, on the call path with
// atomics only.
//
// The integral up to time T is done + Σ (T − startᵢ) over the calls still in
// flight = done + n·T − Σ startᵢ. n and Σ startᵢ share one atomic word, so a
// reader always sees them consistent with each other (two separate atomics
// would let a reader see a call's count without its start time, an error of
// T itself). The sum is kept modulo 2^44 µs; the in-flight part of the
// integral, Σ (T − startᵢ), is computed in the same modulus and is exact as
// long as the calls in flight together are younger than 2^44 µs (203 days:
// 100,000 calls of 2.9 minutes each). A call ending between the reader's
// loads of done and state is missed in one reading and counted in the next:
// the error is one call's duration in one sample, never cumulative.
type callTracker struct {
	// Immutable:
	base time.Time
	// now returns microseconds since base; tests replace it.
	now func() int64

	state   atomic.Uint64 // count and start-time sum of the calls in flight
	done    atomic.Uint64 // µs spent by completed calls
	started atomic.Uint64 // calls started
}

func newCallTracker() *callTracker {
	t := &callTracker{base: time.Now()}
	t.now = t.sinceBase
	return t
}

func (t *callTracker) sinceBase() int64 { return int64(time.Since(t.base) / time.Microsecond) }

// begin records a call starting and returns its start time for end.
func (t *callTracker) begin() int64 {
	now := t.now()
	t.state.Add(uint64(now)<<countBits + 1)
	t.started.Add(1)
	return now
}

// end records the end of the call that begin returned start for.
func (t *callTracker) end(start int64) {
	now := t.now()
	t.state.Add(-(uint64(start)<<countBits + 1))
	t.done.Add(uint64(now - start))
}

// read returns the integral of calls in flight up to the returned time (µs)
// and the number of calls started.
func (t *callTracker) read() (at int64, integral, started uint64) {
	// Load done first, then the state, then read the clock. Every call in
	// the state started before at, so each T − startᵢ is ≥ 0; every call in
	// done ended before the state was loaded, so it is not in the state as
	// well (loaded the other way round, a call ending between the two loads
	// was counted twice, and one ending after the clock read, while this
	// goroutine was descheduled, added time past at: TestCallTrackerConcurrent
	// failed 2 in 200 under -race with "integral 4337 µs after 38 µs"). A
	// call ending between the loads of done and state is missed in this
	// reading and counted in the next.
	d := t.done.Load()
	s := t.state.Load()
	at = t.now()
	started = t.started.Load()
	n, sum := s&countMask, s>>countBits
	inFlight := (n*uint64(at) - sum) & sumMask
	return at, d + inFlight, started
}

// inFlight returns the number of unary calls in flight now.
func (t *callTracker) inFlight() int64 { return int64(t.state.Load() & countMask) }
