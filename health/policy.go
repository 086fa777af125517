package health

import (
	"math/rand/v2"
	"time"

	"github.com/grpcmgmt/grpcmgmt/load"
)

// cooldownJitter spreads each cooldown by ±20 %, so that replicas that were
// overloaded together (and so flipped together) come off cooldown at
// different times and do not flip together again.
const cooldownJitter = 0.2

// event is what one sample made the load policy decide.
type event int

const (
	eventNone       event = iota
	eventOverloaded       // SERVING -> NOT_SERVING for load
	eventRecovered        // NOT_SERVING -> SERVING, load below the exit thresholds
	eventReleased         // NOT_SERVING -> SERVING at MaxNotServing
	eventSuppressed       // overloaded for Hold during a cooldown: stays SERVING
)

// policy is the load state machine: hysteresis in level (enter and exit
// thresholds), in time (Hold, MinDwell), and the bounds that keep a
// fleet-wide overload from becoming a fleet-wide outage (MaxNotServing,
// Cooldown). It is pure: it is fed samples and their times, one goroutine
// at a time (the Reporter's lock), and returns decisions.
type policy struct {
	// Immutable:
	cfg    Config
	jitter func() float64 // in [0, 1)

	down          bool      // NOT_SERVING for load
	overSince     time.Time // start of the current run of overloaded samples; zero if none
	downSince     time.Time // when down began
	coolUntil     time.Time // end of the current cooldown; zero if none
	cooldown      time.Duration
	unresolved    bool // the last stint did not end the overload: the next cooldown doubles
	suppressedRun bool // eventSuppressed already reported for the current overloaded run
}

func newPolicy(cfg Config) *policy {
	return &policy{cfg: cfg, cooldown: cfg.Cooldown, jitter: rand.Float64}
}

// over reports whether s is at or above an enter threshold, or queueing is
// high (load.Snapshot.QueueingHigh, whose hysteresis the sampler applies).
func (p *policy) over(s load.Snapshot) bool {
	return (!p.cfg.DisableCPU && s.CPU >= p.cfg.CPUEnter) ||
		(p.cfg.InFlightEnter > 0 && s.InFlight >= p.cfg.InFlightEnter) ||
		s.QueueingHigh
}

// under reports whether s is below every exit threshold and queueing is
// not high.
func (p *policy) under(s load.Snapshot) bool {
	return (p.cfg.DisableCPU || s.CPU < p.cfg.CPUExit) &&
		(p.cfg.InFlightEnter == 0 || s.InFlight < p.cfg.InFlightExit) &&
		!s.QueueingHigh
}

// step feeds one sample taken at now.
func (p *policy) step(now time.Time, s load.Snapshot) event {
	if p.down {
		d := now.Sub(p.downSince)
		switch {
		case d >= p.cfg.MaxNotServing:
			// Turning NOT_SERVING did not end the overload: its load comes
			// from clients that do not watch health, or the whole fleet is
			// overloaded. Serve, and let shedding protect.
			p.endStint(now, true)
			return eventReleased
		case d >= p.cfg.MinDwell && p.under(s):
			p.endStint(now, false)
			return eventRecovered
		}
		return eventNone
	}
	if !p.over(s) {
		p.overSince = time.Time{}
		p.suppressedRun = false
	} else if p.overSince.IsZero() {
		p.overSince = now
	}
	held := !p.overSince.IsZero() && now.Sub(p.overSince) >= p.cfg.Hold
	if !p.coolUntil.IsZero() {
		if now.Before(p.coolUntil) {
			if held {
				p.unresolved = true
				if !p.suppressedRun {
					p.suppressedRun = true
					return eventSuppressed
				}
			}
			return eventNone
		}
		// The cooldown is over: the next one doubles if the overload came
		// back during this one (or the stint before it did not end it).
		if p.unresolved {
			p.cooldown = min(2*p.cooldown, p.cfg.MaxCooldown)
		} else {
			p.cooldown = p.cfg.Cooldown
		}
		p.coolUntil = time.Time{}
		p.unresolved = false
	}
	if held {
		p.down = true
		p.downSince = now
		p.overSince = time.Time{}
		p.suppressedRun = false
		return eventOverloaded
	}
	return eventNone
}

// endStint returns to SERVING and starts a cooldown.
func (p *policy) endStint(now time.Time, unresolved bool) {
	p.down = false
	p.overSince = time.Time{}
	p.unresolved = unresolved
	f := 1 + cooldownJitter*(2*p.jitter()-1)
	p.coolUntil = now.Add(time.Duration(float64(p.cooldown) * f))
}
