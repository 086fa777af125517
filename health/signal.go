package health

import "github.com/grpcmgmt/grpcmgmt/load"

// Load is what the health policy reads from one load sample: the seam
// between the load package's signals and the state machine in policy.go.
// Config.Signal produces it; the default reads CPU, calls in flight, calls
// refused for load and queueing against the Config's thresholds.
type Load struct {
	// Over is true when the server is at or above an enter threshold: it
	// counts as overloaded.
	Over bool
	// Clear is true when the server is below every exit threshold: it
	// counts as recovered.
	Clear bool
	// Excess is the load the server carries ÷ the load it should carry (its
	// exit level): 2 means twice as much, so that turning half of its
	// health-checking clients away brings it back. It sizes the share of
	// Watch streams that turn NOT_SERVING (see the package documentation).
	// Values up to 1 mean no excess; 0 means unknown.
	Excess float64
	// OverAt is the Excess at which the server counts as overloaded (the
	// enter threshold ÷ the exit threshold; 0: unknown). While it is known,
	// a replica out of rotation returns clients (a probe) only while the
	// excess it expects with them, Excess scaled by the clients it would
	// serve, stays below 1, the exit level: it does not step back above
	// its exit thresholds, where a queue can build for longer than a
	// probe watches. With OverAt 0 a probe foresees nothing.
	OverAt float64
}

// signal returns the policy's reading of s: cfg.Signal's, or the default.
func (c *Config) signal(s *load.Snapshot) Load {
	if c.Signal != nil {
		return c.Signal(*s) // by value: s does not escape, no allocation per sample
	}
	return c.defaultSignal(s)
}

// defaultSignal reads the smoothed CPU utilization and the calls in flight
// against the thresholds of c (WithDefaults applied). Excess is the larger
// of CPU ÷ CPUExit and in-flight ÷ InFlightExit: CPU cannot read above 1,
// so from CPU alone the excess is at most 1/CPUExit (1.43 with the default);
// calls in flight, which keep growing with the queue, measure a larger one
// (but not in proportion to the load: a queue grows much faster than the
// load near saturation, so a probe's foresight, OverAt, is weaker there and
// the dwell's doubling does the rest). OverAt is the lower of the two
// enter ÷ exit ratios.
//
// Calls refused for load (load.Snapshot.ShedRatio, from a shedder on the
// same sampler) count against ShedEnter and ShedExit: a replica that keeps
// refusing a share r of its calls is over, and carries 1/(1 − r) of what
// it serves. That excess is small (2 % shed reads 1.02); the share turned
// away then grows by its minimum step each Hold for as long as the
// shedding goes on.
//
// Queueing (load.Snapshot.QueueingHigh, with the sampler's own hysteresis)
// counts whatever the CPU: Over while it is high, Clear only once it is
// off. Its excess is the calls' latency over the latency at the exit
// threshold: Latency/NoLoadLatency = 1/(1 − Queueing), so
// (1 − exit)/(1 − Queueing); 2 when calls take twice as long as they do at
// the exit level. A queue's latency, like its calls in flight, grows faster
// than the load near saturation, so this overstates the excess there as
// in-flight does. It counts only while the queueing delay is past the
// sampler's QueueingMinDelay (Snapshot.QueueingPastMinDelay), the floor
// QueueingHigh has too: calls of 80 µs taking 160 µs read queueing 0.5
// with no queue worth acting on, and as an excess of 1 it would keep a
// replica taken out for its CPU from ever passing a probe (the probe
// foresees the excess with the clients back).
func (c *Config) defaultSignal(s *load.Snapshot) Load {
	l := Load{Clear: true}
	if !c.DisableCPU {
		l.Over = s.CPU >= c.CPUEnter
		l.Clear = s.CPU < c.CPUExit
		l.Excess = s.CPU / c.CPUExit
		l.OverAt = c.CPUEnter / c.CPUExit
	}
	if c.InFlightEnter > 0 {
		in := max(float64(s.InFlight), s.InFlightAvg)
		l.Over = l.Over || s.InFlight >= c.InFlightEnter
		l.Clear = l.Clear && s.InFlight < c.InFlightExit
		l.Excess = max(l.Excess, in/float64(c.InFlightExit))
		at := float64(c.InFlightEnter) / float64(c.InFlightExit)
		if l.OverAt == 0 || at < l.OverAt {
			l.OverAt = at
		}
	}
	if !c.DisableShed {
		r := s.ShedRatio
		l.Over = l.Over || r >= c.ShedEnter
		l.Clear = l.Clear && r < c.ShedExit
		if r > 0 && r < 1 {
			l.Excess = max(l.Excess, 1/(1-r))
		}
	}
	if s.QueueingHigh {
		l.Over, l.Clear = true, false
	}
	if c.queueingExit > 0 && c.queueingEnter > c.queueingExit {
		if s.Queueing < 1 && s.QueueingPastMinDelay {
			l.Excess = max(l.Excess, (1-c.queueingExit)/(1-s.Queueing))
		}
		at := (1 - c.queueingExit) / (1 - c.queueingEnter)
		if l.OverAt == 0 || at < l.OverAt {
			l.OverAt = at
		}
	}
	return l
}
