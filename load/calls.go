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
// ran alone); in-flight counts of all calls and of timed calls share one
// word. Up to 2^32-1 calls may be in flight at once. This is the one place a call's latency is measured for the
// load signal: a lever that needs it reads the Snapshot, never a clock of
// its own.
type Calls struct {
	_       cpu.CacheLinePad
	flight  atomic.Uint64 // calls in flight in the low 32 bits, timed ones among them in the high 32
	started atomic.Uint64
	failed  atomic.Uint64
	lat     atomic.Uint64 // timed calls ended since the last sample: count<<latShift | µs
	alone   atomic.Uint64 // the same, for those that began with no other timed call in flight
	_       cpu.CacheLinePad
}

// flight counts: one call, and one timed call (which is also a call).
const (
	oneCall  = 1
	oneTimed = 1<<32 + 1
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
// lifetime is not a latency. It counts in InFlight and QPS.
func (c *Calls) Begin() {
	c.flight.Add(oneCall)
	c.started.Add(1)
}

// End records the end of a call begun with Begin; failed counts it towards
// EPS.
func (c *Calls) End(failed bool) { c.end(oneCall, failed) }

func (c *Calls) end(kind uint64, failed bool) {
	c.flight.Add(-kind)
	if failed {
		c.failed.Add(1)
	}
}

// BeginUnary records a unary call starting and returns the Call that ends
// it. Its latency (from BeginUnary to Call.End) feeds the queueing signal.
func (c *Calls) BeginUnary() Call {
	alone := c.flight.Add(oneTimed)>>32 == 1
	c.started.Add(1)
	return Call{c: c, start: nanotime(), alone: alone}
}

// Call is a unary call in flight, returned by Calls.BeginUnary: a value,
// so timing a call allocates nothing. End it exactly once.
type Call struct {
	c     *Calls
	start int64 // ns on the monotonic clock
	alone bool  // no other timed call was in flight when it began
}

// End records the call's end and its latency; failed counts it towards
// EPS. Ending the zero Call does nothing.
func (k Call) End(failed bool) {
	if k.c == nil {
		return
	}
	k.c.end(oneTimed, failed)
	k.c.record(nanotime()-k.start, k.alone)
}

// record adds one latency sample (ns).
func (c *Calls) record(ns int64, alone bool) {
	sample := 1<<latShift | uint64(max(ns/1000, 1))
	c.lat.Add(sample)
	if alone {
		c.alone.Add(sample)
	}
}

// InFlight returns the calls in flight now (begun and not yet ended).
func (c *Calls) InFlight() int64 { return int64(uint32(c.flight.Load())) }

// timedInFlight returns the timed calls in flight now.
func (c *Calls) timedInFlight() int64 { return int64(c.flight.Load() >> 32) }

// Started returns the calls begun since c was created.
func (c *Calls) Started() uint64 { return c.started.Load() }

// Failed returns the calls ended with failed set since c was created.
func (c *Calls) Failed() uint64 { return c.failed.Load() }
