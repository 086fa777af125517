package load

import (
	"math"
	"time"
)

// Snapshot is one sample of every signal. A published Snapshot is never
// modified: read it freely from any goroutine, and do not modify it (nor
// its Custom map) yourself.
//
// Smoothed values are exponentially weighted moving averages with
// Config.TimeConstant; Raw values are the last period's.
type Snapshot struct {
	// At is when the sample was taken; zero before the first sample, when
	// every other field is zero too.
	At time.Time
	// CPU is the smoothed CPU utilization of this process's allowance, in
	// 0..1 (1 = the whole allowance is in use; a raw reading can exceed 1 a
	// little where the sample period and the kernel's quota period do not
	// line up). CPURaw is the last period's.
	CPU, CPURaw float64
	// Memory is the smoothed memory utilization of the process's allowance
	// (cgroup memory.max) or of the host's memory, in 0..1. MemoryRaw is the
	// last reading.
	Memory, MemoryRaw float64
	// InFlight is the number of calls in flight when the sample was taken;
	// InFlightAvg its smoothed value.
	InFlight    int64
	InFlightAvg float64
	// UnaryInFlightMean is the mean number of unary calls (those begun with
	// Calls.BeginUnary) in flight over the last sample period: the exact
	// time integral of the calls in flight divided by the period's length,
	// not a sample of it (a call ending while the sample is taken may move
	// its time into the next period). The ORCA reports divide it by the
	// concurrency limit for application_utilization.
	UnaryInFlightMean float64
	// QPS and EPS are smoothed calls started and calls failed per second;
	// QPSRaw and EPSRaw are the last period's rates.
	QPS, QPSRaw float64
	// UnaryQPSRaw is the last period's unary calls (begun with
	// Calls.BeginUnary) started per second: QPSRaw without the streams.
	UnaryQPSRaw float64
	EPS, EPSRaw float64
	// Shed and ShedRaw are calls refused for load per second (Calls.Refuse:
	// a load shedder's rejections), smoothed and the last period's. They
	// are not in QPS.
	Shed, ShedRaw float64
	// ShedRatio is the smoothed share of the arriving calls refused for
	// load: each period's refused ÷ (started + refused), 0 for a period
	// in which none arrived (an idle replica refuses nothing, so the share
	// falls when the calls stop instead of staying where it was). A
	// replica that keeps refusing a share of its calls while its peers do
	// not carries more than it can serve: the health lever reads it.
	ShedRatio float64
	// Latency is the smoothed mean latency of the unary calls that ended
	// (those begun with Calls.BeginUnary); LatencyRaw the last period's
	// mean, 0 when none ended. While no call is in flight and none ends,
	// Latency falls back towards NoLoadLatency (an idle replica has no
	// queue).
	Latency, LatencyRaw time.Duration
	// NoLoadLatency is the replica's own latency without queueing: the
	// mean latency of calls that began while no other unary call was in
	// flight, or, for a replica that is never idle, the lowest mean latency
	// of a batch of calls over Config.NoLoadWindow (see the package
	// documentation). 0 until measured.
	NoLoadLatency time.Duration
	// Queueing is the share of the calls' latency spent waiting,
	// 1 − NoLoadLatency/Latency, in 0..1 (0 while NoLoadLatency is
	// unknown): 0.5 means calls take twice their no-load latency. For a
	// single queue with random arrivals (M/M/1) it equals the server's
	// utilization.
	Queueing float64
	// QueueingHigh is Queueing past Config.QueueingEnter (and the queueing
	// delay past Config.QueueingMinDelay), with hysteresis: it stays on
	// until Queueing falls below Config.QueueingExit. The levers count the
	// replica as overloaded when its CPU is over their own threshold or
	// QueueingHigh is on.
	QueueingHigh bool
	// QueueingPastMinDelay is whether the queueing delay, Latency −
	// NoLoadLatency, is at least Config.QueueingMinDelay, the floor under
	// which QueueingHigh never turns on. The levers that act on Queueing
	// itself rather than on QueueingHigh (the Shedder's queueing limit,
	// health's excess, ORCA's application_utilization) act only while it
	// is set: a microsecond-scale service whose calls stalled for a few
	// hundred microseconds reads queueing 0.9 with no queue worth acting on.
	QueueingPastMinDelay bool
	// Custom holds the latest reading of each of Config.Sources by name (nil
	// if there are none; a source that has never read successfully is
	// absent).
	Custom map[string]float64
}

// ErrorRatio returns EPS/QPS (the share of calls that fail, smoothed), or 0
// when QPS is 0.
func (s *Snapshot) ErrorRatio() float64 {
	if s.QPS <= 0 {
		return 0
	}
	return s.EPS / s.QPS
}

// ewma is one step of an exponentially weighted moving average over a
// period of dt with time constant tau.
type ewma struct {
	alpha float64 // weight of the new value
	first bool    // no previous value: take the new one as it is
}

func newEWMA(dt, tau time.Duration, first bool) ewma {
	return ewma{alpha: 1 - math.Exp(-dt.Seconds()/tau.Seconds()), first: first}
}

func (e ewma) next(prev, v float64) float64 {
	if e.first {
		return v
	}
	return prev + e.alpha*(v-prev)
}
