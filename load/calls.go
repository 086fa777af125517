package load

import (
	"sync/atomic"

	"golang.org/x/sys/cpu"
)

// Calls counts calls on the call path for InFlight, QPS and EPS: three
// atomic integers, no lock, no allocation. The zero value is ready to use.
//
// Every Begin must be paired with exactly one End, typically deferred, so a
// panicking handler does not leak an in-flight call.
//
// The counters sit on a cache line of their own: they are written by every
// call, and padding keeps those writes from invalidating the line that
// holds the Sampler's snapshot pointer, which code that counts nothing
// (ORCA reports, health checks) also reads. (On the 2-CPU machine this was
// written on, the effect is within the noise of a parallel benchmark.)
type Calls struct {
	_        cpu.CacheLinePad
	inFlight atomic.Int64
	started  atomic.Uint64
	failed   atomic.Uint64
	_        cpu.CacheLinePad
}

// Begin records a call starting.
func (c *Calls) Begin() {
	c.inFlight.Add(1)
	c.started.Add(1)
}

// End records a call ending; failed counts it towards EPS.
func (c *Calls) End(failed bool) {
	c.inFlight.Add(-1)
	if failed {
		c.failed.Add(1)
	}
}

// InFlight returns the calls in flight now (begun and not yet ended).
func (c *Calls) InFlight() int64 { return c.inFlight.Load() }

// Started returns the calls begun since c was created.
func (c *Calls) Started() uint64 { return c.started.Load() }

// Failed returns the calls ended with failed set since c was created.
func (c *Calls) Failed() uint64 { return c.failed.Load() }
