package load

import (
	"sync/atomic"
	"time"

	"golang.org/x/sys/cpu"
)

// Calls counts calls on the call path for InFlight, QPS and EPS, and times
// unary calls for the queueing signal (Snapshot.Latency, NoLoadLatency,
// Queueing): atomic integers only, no lock, no allocation. The zero value is
// ready to use.
//
// Every Begin must be paired with exactly one End, and every BeginUnary with
// exactly one Call.End, typically deferred, so a panicking handler does not
// leak an in-flight call.
//
// The counters sit on a cache line of their own: they are written by every
// call, and padding keeps those writes from invalidating the line that
// holds the Sampler's snapshot pointer, which code that counts nothing
// (ORCA reports, health checks) also reads. (On the 2-CPU machine this was
// written on, the effect is within the noise of a parallel benchmark.)
//
// A unary call costs two monotonic clock reads (about 25 ns each with the
// vDSO on the machine this was written on) and four atomic adds, as many
// as Begin and End plus one for the latency sample (five for a call that
// ran alone). The unary calls in flight and the sum of their start times
// share one word, so the sampler reads the exact time integral of the
// unary calls in flight (Snapshot.UnaryInFlightMean) from the same add
// that counts them: the ORCA reports and the queueing signal need no
// counter of their own, and neither does a concurrency limit that takes its
// slots in the same word (Enter; the loadshed package's Shedder with
// loadshed.Config.SharedCount, as the grpcmgmt Manager sets it). Up to
// 2^20-1 unary calls may be in flight at once (and any number of streams).
// This is the one place a call's latency is measured for the load signal:
// a lever that needs it reads the Snapshot, never a clock of its own.
type Calls struct {
	_              cpu.CacheLinePad
	flight         atomic.Uint64 // unary calls in flight (low countBits) and the sum of their start times in µs (high sumBits)
	streams        atomic.Int64  // streams (calls begun with Begin) in flight
	streamsStarted atomic.Uint64 // streams begun, of started
	started        atomic.Uint64
	failed         atomic.Uint64
	lat            atomic.Uint64 // timed calls ended since the last sample: count<<latShift | µs
	alone          atomic.Uint64 // the same, for those that began with no other timed call in flight
	refused        atomic.Uint64 // calls refused for load before they began (Refuse)
	_              cpu.CacheLinePad
}

// Bit layout of Calls.flight: the low countBits hold the number of unary
// calls in flight, the high sumBits the sum of their start times (µs on the
// monotonic clock) modulo 2^sumBits. n and Σ start share one word, so a
// reader always sees them consistent with each other; the in-flight part of
// the integral, Σ (T − startᵢ) = n·T − Σ startᵢ, is exact in that modulus as
// long as the calls in flight together are younger than 2^44 µs (203 days).
const (
	countBits = 20
	sumBits   = 64 - countBits
	countMask = 1<<countBits - 1
	sumMask   = 1<<sumBits - 1
)

// lat and alone pack a count and a sum of latencies in µs into one word, so
// that a call's sample is one atomic add and the sampler reads count and
// sum consistently with one swap: 24 bits of count (16M calls per sample
// period) and 40 bits of sum (12 days of latency per period).
const (
	latShift = 40
	latMask  = 1<<latShift - 1
)

func unpack(v uint64) (n, sumMicros uint64) { return v >> latShift, v & latMask }

// monoBase is the origin of the monotonic readings of Call.
var monoBase = time.Now()

// nanotime reads the monotonic clock: time.Since of a monotonic Time is one
// runtime nanotime call, and follows the fake clock inside a
// testing/synctest bubble.
func nanotime() int64 { return int64(time.Since(monoBase)) }

// Begin records a call starting that is not timed: a stream, whose
// lifetime is not a latency, or a unary call kept out of the latency
// signal (the loadshed package counts its exempt methods' calls so with
// loadshed.Config.SharedCount). It counts in InFlight and QPS.
func (c *Calls) Begin() {
	c.streams.Add(1)
	c.streamsStarted.Add(1)
	c.started.Add(1)
}

// End records the end of a call begun with Begin; failed counts it towards
// EPS.
func (c *Calls) End(failed bool) {
	c.streams.Add(-1)
	if failed {
		c.failed.Add(1)
	}
}

// Refuse records a call the server refused for load before it began (a
// load shedder's rejection): it counts in Snapshot.Shed, not in QPS or
// InFlight. The loadshed package's Shedder calls it for every call it
// sheds when it has a Sampler (loadshed.Config.Load).
func (c *Calls) Refuse() { c.refused.Add(1) }

// BeginUnary records a unary call starting and returns the Call that ends
// it. Its latency (from BeginUnary to Call.End) feeds the queueing signal.
func (c *Calls) BeginUnary() Call {
	start := nanotime() / 1000
	alone := c.flight.Add(uint64(start)<<countBits+1)&countMask == 1
	c.started.Add(1)
	return Call{c: c, start: start, alone: alone}
}

// Enter begins a unary call for a concurrency limit that counts in the
// same word as the sampler (the loadshed package's Shedder, with
// loadshed.Config.SharedCount): the call is in flight and timed from now, as
// with BeginUnary, and n is the unary calls in flight with it, itself
// included, which the limit compares. It is not yet counted as started:
// follow with Call.Admit if the limit lets it run (then End it as usual),
// or Call.Cancel if not, which leaves no trace. So one add counts a call
// for the limit, the in-flight figures and the queueing signal at once.
func (c *Calls) Enter() (k Call, n int64) {
	start := nanotime() / 1000
	n = int64(c.flight.Add(uint64(start)<<countBits+1) & countMask)
	return Call{c: c, start: start, alone: n == 1}, n
}

// EnterBelow is Enter only if the unary calls in flight, this one
// included, are then at most limit (a compare-and-swap: ok false, and
// nothing changed, when they would be more).
func (c *Calls) EnterBelow(limit int64) (k Call, n int64, ok bool) {
	start := nanotime() / 1000
	d := uint64(start)<<countBits + 1
	for {
		f := c.flight.Load()
		if n = int64(f&countMask) + 1; n > limit {
			return Call{}, n - 1, false
		}
		if c.flight.CompareAndSwap(f, f+d) {
			return Call{c: c, start: start, alone: n == 1}, n, true
		}
	}
}

// Admit counts a call begun with Enter or EnterBelow as started, and
// returns the calls started so far (unary and streams): a number no other
// call's Admit returns.
func (k Call) Admit() uint64 { return k.c.started.Add(1) }

// Cancel undoes Enter or EnterBelow for a call that is not run: it leaves
// the calls in flight and their time integral as they were, and counts
// nothing.
func (k Call) Cancel() { k.c.flight.Add(-(uint64(k.start)<<countBits + 1)) }

// Call is a unary call in flight, returned by Calls.BeginUnary: a value,
// so timing a call allocates nothing. End it exactly once.
type Call struct {
	c     *Calls
	start int64 // µs on the monotonic clock
	alone bool  // no other timed call was in flight when it began
}

// IsZero reports whether k is the zero Call, whose End does nothing.
func (k Call) IsZero() bool { return k.c == nil }

// End records the call's end and its latency; failed counts it towards
// EPS. Ending the zero Call does nothing.
func (k Call) End(failed bool) {
	if k.c == nil {
		return
	}
	end := nanotime() / 1000
	k.c.flight.Add(-(uint64(k.start)<<countBits + 1))
	if failed {
		k.c.failed.Add(1)
	}
	k.c.record(end-k.start, k.alone)
}

// record adds one latency sample (µs; at least 1 is counted, so that the
// sum of the samples is the calls' time in flight to within 1 µs a call).
func (c *Calls) record(us int64, alone bool) {
	sample := 1<<latShift | uint64(max(us, 1))
	c.lat.Add(sample)
	if alone {
		c.alone.Add(sample)
	}
}

// InFlight returns the calls in flight now (begun and not yet ended).
func (c *Calls) InFlight() int64 { return c.UnaryInFlight() + c.streams.Load() }

// UnaryInFlight returns the unary calls (begun with BeginUnary) in flight
// now.
func (c *Calls) UnaryInFlight() int64 { return int64(c.flight.Load() & countMask) }

// timedInFlight returns the timed calls in flight now.
func (c *Calls) timedInFlight() int64 { return c.UnaryInFlight() }

// unaryIntegral returns the time integral of the unary calls still in
// flight up to the returned time T (µs): Σ (T − startᵢ) over them. The
// completed calls' share of the integral is the sum of their latency
// samples (lat). The word is loaded before the clock is read, so every
// call in it started before T.
func (c *Calls) unaryIntegral() (at int64, inFlight uint64) {
	f := c.flight.Load()
	at = nanotime() / 1000
	n, sum := f&countMask, f>>countBits
	return at, (n*uint64(at) - sum) & sumMask
}

// UnaryStarted returns the unary calls (BeginUnary, or Enter and Admit)
// begun since c was created. It reads two counters one after the other: a
// stream beginning between the reads makes it one less for that reading.
func (c *Calls) UnaryStarted() uint64 {
	all := c.started.Load()
	return all - min(c.streamsStarted.Load(), all)
}

// Started returns the calls begun since c was created.
func (c *Calls) Started() uint64 { return c.started.Load() }

// Failed returns the calls ended with failed set since c was created.
func (c *Calls) Failed() uint64 { return c.failed.Load() }
