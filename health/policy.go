package health

import (
	"math/rand/v2"
	"time"
)

// cooldownJitter spreads each cooldown by ±20 %, so that replicas that were
// overloaded together (and so flipped together) come off cooldown at
// different times and do not flip together again.
const cooldownJitter = 0.2

// minShare is the smallest share of its Watch streams a replica out of
// rotation turns NOT_SERVING. A step down below it returns the replica to
// rotation: from the largest share (MaxShare 0.9) that is three halvings,
// from a typical one (a quarter to a half) one or two.
const minShare = 1.0 / 8

// state is where the load state machine is (the diagram is in doc.go).
type state int8

const (
	stateIn   state = iota // in rotation: SERVING for load
	stateWant              // overloaded for Hold; waiting for a slot from the replica set (guard only)
	stateOut               // out of rotation for load: NOT_SERVING to Check and to a share of the Watch streams
)

func (s state) String() string {
	switch s {
	case stateWant:
		return "want"
	case stateOut:
		return "out"
	}
	return "in"
}

// event is what one sample made the load policy decide.
type event int

const (
	eventNone       event = iota
	eventOverloaded       // in -> out: overloaded for Hold (no replica set: nobody to ask)
	eventWant             // in -> want: overloaded for Hold; the guard asks the replica set for a slot
	eventWithdrawn        // want -> in: below the exit thresholds before a slot was free
	eventShareUp          // out: overloaded for Hold since the last change: a larger share
	eventShareDown        // out: below the exit thresholds for the dwell: a smaller share (a probe)
	eventRecovered        // out -> in: the share stepped down below minShare
	eventReleased         // out -> in at MaxNotServing (no replica set)
	eventSuppressed       // overloaded for Hold during a cooldown (no replica set): stays in
)

// policy is the load state machine: hysteresis in level (enter and exit
// thresholds, read through Config.Signal), in time (Hold, the dwell), the
// share of Watch streams a replica out of rotation turns away, and the
// bounds that keep a fleet-wide overload from becoming a fleet-wide outage:
// the guard's slots with a replica set (guard.go), MaxNotServing and
// Cooldown without one. It is pure: it is fed loads and their times, one
// goroutine at a time (the Reporter's lock), and returns decisions; the
// guard's decisions come in through grant and recall.
type policy struct {
	// Immutable:
	cfg     Config
	guarded bool           // a replica set is known: the guard grants the slots
	jitter  func() float64 // in [0, 1)
	// removed is the share of the clients a share turns away in fact (the
	// Watch streams come in whole numbers: ⌈share·n⌉ of n). The Reporter
	// sets it; the default is the share itself.
	removed func(share float64) float64
	// settle is how long the load signal takes to show a change of the
	// clients served (twice the sampler's TimeConstant): no probe is made
	// sooner after a change, or it would read the load from before it.
	settle time.Duration

	st         state
	share      float64   // of the Watch streams turned NOT_SERVING; 0 unless out
	epoch      uint64    // incremented on every change of state
	excess     float64   // the last sample's Load.Excess
	overSince  time.Time // start of the current run of overloaded samples; zero if none
	clearSince time.Time // start of the current run of samples below the exit thresholds; zero if none
	outSince   time.Time // when out began
	lastChange time.Time // last change of share (entry included)
	lastDown   time.Time // last step down or return, until a relapse or the relapse window is over; zero otherwise
	dwell      time.Duration

	// Without a replica set only:
	coolUntil     time.Time // end of the current cooldown; zero if none
	cooldown      time.Duration
	unresolved    bool // the last stint did not end the overload: the next cooldown doubles
	suppressedRun bool // eventSuppressed already reported for the current overloaded run
}

func newPolicy(cfg Config) *policy {
	return &policy{cfg: cfg, guarded: cfg.Peers.configured(), cooldown: cfg.Cooldown, dwell: cfg.MinDwell, jitter: rand.Float64,
		removed: func(share float64) float64 { return share }}
}

// relapseWindow is how soon after a step down (or a return) a step up (or a
// new stint) counts as the same overload coming back: the step down was
// premature, and the dwell doubles. It covers Hold, the guard's re-check
// delay, and a sample or two more.
func (p *policy) relapseWindow() time.Duration {
	return p.dwell + 2*(p.cfg.Hold+p.cfg.Peers.Delay)
}

// step feeds one sample's load, taken at now.
func (p *policy) step(now time.Time, l Load) event {
	p.excess = l.Excess
	if !p.lastDown.IsZero() && now.Sub(p.lastDown) >= p.relapseWindow() {
		// The last step down held: the next one needs only the shortest
		// dwell again.
		p.dwell = p.cfg.MinDwell
		p.lastDown = time.Time{}
	}
	if !l.Over {
		p.overSince = time.Time{}
		p.suppressedRun = false
	} else if p.overSince.IsZero() {
		p.overSince = now
	}
	if !l.Clear {
		p.clearSince = time.Time{}
	} else if p.clearSince.IsZero() {
		p.clearSince = now
	}
	held := !p.overSince.IsZero() && now.Sub(p.overSince) >= p.cfg.Hold
	switch p.st {
	case stateOut:
		return p.stepOut(now, l, held)
	case stateWant:
		if l.Clear {
			p.setState(stateIn)
			return eventWithdrawn
		}
		return eventNone
	}
	if !p.guarded && !p.coolUntil.IsZero() {
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
	if !held {
		return eventNone
	}
	if p.guarded {
		p.setState(stateWant)
		return eventWant
	}
	p.enter(now)
	return eventOverloaded
}

// stepOut is step while out of rotation.
func (p *policy) stepOut(now time.Time, l Load, held bool) event {
	if !p.guarded && now.Sub(p.outSince) >= p.cfg.MaxNotServing {
		// Turning NOT_SERVING did not end the overload: its load comes
		// from clients that do not watch health, or the whole fleet is
		// overloaded. Serve, and let shedding protect. (A stint that ends
		// with the load below the exit thresholds ended its overload.)
		p.leave(now, !l.Clear)
		return eventReleased
	}
	if held && p.share < p.cfg.MaxShare {
		p.noteUp(now)
		p.share = p.grow(l.Excess)
		p.lastChange = now
		p.overSince = now // the next step up needs another Hold
		return eventShareUp
	}
	if l.Clear && now.Sub(p.clearSince) >= p.dwell && now.Sub(p.lastChange) >= max(p.dwell, p.settle) {
		// A probe: half of the clients turned away come back. The load
		// of the clients still served is the evidence: below the exit
		// thresholds for the whole dwell (and read at least settle after
		// the last change), and, if it measures anything (some are
		// served), foreseen to stay below them with the clients that
		// would come back (an excess under 1). Foreseeing against the
		// enter level instead let a one-worker replica at half speed take
		// everyone back in three probes and queue again: its CPU reads
		// 0.9 only at 97 % utilization, and a queue there builds slowly
		// enough to pass a probe (the hot scenario's health_only leg).
		next := p.stepDown()
		if served := 1 - p.removed(p.share); served > 0 && l.OverAt > 0 &&
			l.Excess*(1-p.removed(next))/served >= 1 {
			return eventNone
		}
		p.lastChange = now
		p.lastDown = now
		if p.share = next; p.share == 0 {
			p.leave(now, false)
			return eventRecovered
		}
		return eventShareDown
	}
	return eventNone
}

// stepDown returns the share a probe steps down to: half of the current
// one, halved again while that would not change the clients served (the
// streams come in whole numbers), and 0 below minShare.
func (p *policy) stepDown() float64 {
	next := p.share / 2
	for next >= minShare && p.removed(next) == p.removed(p.share) {
		next /= 2
	}
	if next < minShare {
		return 0
	}
	return next
}

// grow returns the share that would leave the replica the load at its exit
// level, if the load is proportional to the clients served: the share of
// the clients served now, 1 − removed(share), divided by excess. It grows by
// minShare at least (the excess may be unknown, or read from a signal that
// saturates) and stays within MaxShare.
func (p *policy) grow(excess float64) float64 {
	next := p.share + minShare
	if excess > 1 {
		next = max(next, 1-(1-p.removed(p.share))/excess)
	}
	return min(next, p.cfg.MaxShare)
}

// enter goes out of rotation at now, with the share the last excess calls
// for.
func (p *policy) enter(now time.Time) {
	p.noteUp(now)
	p.setState(stateOut)
	p.share = p.grow(p.excess)
	p.outSince = now
	p.lastChange = now
	p.overSince = now // a step up needs Hold more of overload
	p.suppressedRun = false
}

// noteUp records a step up at now: one soon after a step down doubles the
// dwell (the replica returned too early), up to MaxDwell.
func (p *policy) noteUp(now time.Time) {
	if !p.lastDown.IsZero() && now.Sub(p.lastDown) < p.relapseWindow() {
		p.dwell = min(2*p.dwell, p.cfg.MaxDwell)
	}
	p.lastDown = time.Time{}
}

// leave returns to rotation at now; without a replica set a cooldown
// starts, doubling when the stint did not end the overload (unresolved).
func (p *policy) leave(now time.Time, unresolved bool) {
	p.setState(stateIn)
	p.share = 0
	p.overSince = time.Time{}
	if !p.guarded {
		p.unresolved = unresolved
		f := 1 + cooldownJitter*(2*p.jitter()-1)
		p.coolUntil = now.Add(time.Duration(float64(p.cooldown) * f))
	}
}

// grant is the guard's decision to let a wanting replica out at now.
func (p *policy) grant(now time.Time) {
	if p.st == stateWant {
		p.enter(now)
	}
}

// recall is the guard's decision to bring a replica out of rotation back,
// because the replica set needs it. The overload must then hold for Hold
// again before the replica asks for a slot.
func (p *policy) recall() {
	if p.st == stateOut {
		p.setState(stateIn)
		p.share = 0
		p.overSince = time.Time{}
	}
}

func (p *policy) setState(s state) {
	p.st = s
	p.epoch++
}
