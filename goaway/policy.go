package goaway

import (
	"fmt"
	"sync"
	"time"

	"github.com/grpcmgmt/grpcmgmt/load"
)

// Policy defaults; see PolicyConfig.
const (
	DefaultCPUEnter = 0.90
	DefaultCPUExit  = 0.75
	DefaultFraction = 0.10
	DefaultInterval = time.Second
	DefaultCooldown = 10 * time.Second
	DefaultMinAge   = 5 * time.Second
)

// PolicyConfig configures the load Policy. The zero value means every
// default: act when smoothed CPU reaches 90 % of the allowance or the
// shared sampler's queueing signal is high (load.Snapshot.QueueingHigh,
// with the sampler's own thresholds and hysteresis), stop when CPU is
// below 75 % and queueing is not high, move at most 10 % of the connections (at least one) per second, the
// busiest first among those at least 5 s old, and wait 10 s after calming
// down before acting again.
type PolicyConfig struct {
	// Off turns the policy off: it never subscribes to the sampler.
	Off bool
	// CPUEnter is the smoothed CPU utilization (load.Snapshot.CPU) at or
	// above which the policy starts moving connections. Default 0.90;
	// allowed 0.01..4 (above 1 means over the allowance).
	CPUEnter float64
	// CPUExit is the CPU utilization at or below which it stops (with
	// InFlightExit). Default 0.75, or max(CPUEnter-0.15, CPUEnter/2) when
	// CPUEnter is set;
	// allowed 0..CPUEnter (exclusive): the gap is the hysteresis.
	CPUExit float64
	// InFlightEnter is the number of calls in flight at or above which the
	// policy starts. Default 0: in-flight calls are not watched; allowed
	// 0..1e9.
	InFlightEnter int64
	// InFlightExit is the number of calls in flight at or below which it
	// stops (with CPUExit). Default 3/4 of InFlightEnter; allowed
	// 0..InFlightEnter (exclusive), and only 0 while InFlightEnter is 0.
	InFlightExit int64
	// Fraction is the share of the connections that are not draining that
	// get a GOAWAY per Interval while overloaded; at least one. Default
	// 0.10; allowed 0.001..0.5, so that never every connection moves at once
	// (a server with a single connection moves it, at most once per
	// Interval).
	Fraction float64
	// Interval is the time between two rounds of GOAWAYs while overloaded.
	// Default 1s; allowed 10ms..1m. Rounds happen on load samples, so the
	// effective interval is a multiple of the sampler's period.
	Interval time.Duration
	// Cooldown is how long the policy stays quiet after the load fell below
	// the exit thresholds, whatever the load does. Default 10s; allowed
	// 1ms..1h.
	Cooldown time.Duration
	// Selector chooses the connections of a round. Default BusiestFirst.
	Selector Selector
	// MinAge spares connections younger than this: a client that has just
	// reconnected (perhaps to this same server, as DNS clients do) is not
	// sent away again at once, and a young connection's calls per second are
	// not judged on a few calls. A connection with k times the mean calls
	// per second must be k × MinAge old (see Rank). Default 5s; allowed
	// 1ms..1h.
	MinAge time.Duration
}

// WithDefaults returns c with every zero field set to its default.
func (c PolicyConfig) WithDefaults() PolicyConfig {
	if c.CPUExit == 0 {
		if c.CPUEnter == 0 {
			c.CPUExit = DefaultCPUExit
		} else {
			c.CPUExit = max(c.CPUEnter-0.15, c.CPUEnter/2)
		}
	}
	if c.CPUEnter == 0 {
		c.CPUEnter = DefaultCPUEnter
	}
	if c.InFlightExit == 0 && c.InFlightEnter > 0 {
		c.InFlightExit = c.InFlightEnter * 3 / 4
	}
	if c.Fraction == 0 {
		c.Fraction = DefaultFraction
	}
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.Cooldown == 0 {
		c.Cooldown = DefaultCooldown
	}
	if c.Selector == 0 {
		c.Selector = BusiestFirst
	}
	if c.MinAge == 0 {
		c.MinAge = DefaultMinAge
	}
	return c
}

// Validate reports the first field outside its allowed range, after
// defaults are applied. The error names the field and the range.
func (c PolicyConfig) Validate() error {
	c = c.WithDefaults()
	switch {
	case !(c.CPUEnter >= 0.01 && c.CPUEnter <= 4):
		return fmt.Errorf("goaway: PolicyConfig.CPUEnter must be within 0.01..4 (0 means %v), got %v", DefaultCPUEnter, c.CPUEnter)
	case !(c.CPUExit >= 0 && c.CPUExit < c.CPUEnter):
		return fmt.Errorf("goaway: PolicyConfig.CPUExit must be within 0..CPUEnter (%v, exclusive), got %v", c.CPUEnter, c.CPUExit)
	case c.InFlightEnter < 0 || c.InFlightEnter > 1e9:
		return fmt.Errorf("goaway: PolicyConfig.InFlightEnter must be within 0..1e9 (0 means not watched), got %d", c.InFlightEnter)
	case c.InFlightEnter == 0 && c.InFlightExit != 0:
		return fmt.Errorf("goaway: PolicyConfig.InFlightExit must be 0 while InFlightEnter is 0 (in-flight calls not watched), got %d", c.InFlightExit)
	case c.InFlightEnter > 0 && (c.InFlightExit < 0 || c.InFlightExit >= c.InFlightEnter):
		return fmt.Errorf("goaway: PolicyConfig.InFlightExit must be within 0..InFlightEnter (%d, exclusive), got %d", c.InFlightEnter, c.InFlightExit)
	case !(c.Fraction >= 0.001 && c.Fraction <= 0.5):
		return fmt.Errorf("goaway: PolicyConfig.Fraction must be within 0.001..0.5 (0 means %v), got %v", DefaultFraction, c.Fraction)
	case c.Interval < 10*time.Millisecond || c.Interval > time.Minute:
		return fmt.Errorf("goaway: PolicyConfig.Interval must be within 10ms..1m (0 means %v), got %v", DefaultInterval, c.Interval)
	case c.Cooldown < time.Millisecond || c.Cooldown > time.Hour:
		return fmt.Errorf("goaway: PolicyConfig.Cooldown must be within 1ms..1h (0 means %v), got %v", DefaultCooldown, c.Cooldown)
	case c.MinAge < time.Millisecond || c.MinAge > time.Hour:
		return fmt.Errorf("goaway: PolicyConfig.MinAge must be within 1ms..1h (0 means %v), got %v", DefaultMinAge, c.MinAge)
	case c.Selector < OldestFirst || c.Selector > Random:
		return fmt.Errorf("goaway: PolicyConfig.Selector must be OldestFirst, BusiestFirst or Random, got %v", c.Selector)
	}
	return nil
}

// Policy moves connections away while this server is overloaded: the
// policy decides, the Tracker acts. It decides on every sample of the
// shared load sampler (no goroutine of its own):
//
//   - it enters the overloaded state when CPU or in-flight calls reach
//     their enter threshold or queueing is high (load.Snapshot.QueueingHigh:
//     a replica slow on a lock or a small worker pool is overloaded with
//     its CPU idle), and leaves it when both are at or below their exit
//     threshold and queueing is no longer high (hysteresis);
//   - while overloaded, every Interval it sends a GOAWAY to Fraction of the
//     connections that are not draining yet (at least one), chosen by
//     Selector among those at least MinAge old: behind an L4 balancer those
//     clients reconnect, some of them to other replicas;
//   - after leaving, it stays quiet for Cooldown;
//   - one overloaded spell sends at most one GOAWAY per connection active
//     at its first round: when moving every connection once did not end
//     the overload (the whole fleet is overloaded, or a heavy client keeps
//     the replica hot), moving more only adds reconnections;
//   - a connection that carries k times the mean calls per second must be
//     k × MinAge old (Rank): a heavy client is moved rarely, the light
//     ones around it first, so it does not bounce from replica to replica.
//
// Each state change is logged at info level and counted in
// grpcmgmt.goaway.policy_transitions; each GOAWAY is counted with reason
// "load".
type Policy struct {
	// Immutable after NewPolicy:
	t      *Tracker
	conns  ConnSet // what the rounds act on: t, or a simulated replica's (NewPolicyOn)
	cfg    PolicyConfig
	cancel func() // unsubscribes from the sampler; nil when Off

	mu         sync.Mutex // guards the fields below (held on the sampler goroutine only briefly)
	closed     bool
	overloaded bool
	lastRound  time.Time // sample time of the last round; zero on entering
	quietUntil time.Time // sample time before which the policy does not enter
	budget     int       // GOAWAYs left in this overloaded spell; -1 until its first round
}

// NewPolicy validates cfg and subscribes a Policy acting on t to s.
func NewPolicy(t *Tracker, s *load.Sampler, cfg PolicyConfig) (*Policy, error) {
	if t == nil || s == nil {
		return nil, fmt.Errorf("goaway: NewPolicy: Tracker and Sampler must not be nil")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &Policy{t: t, conns: t, cfg: cfg.WithDefaults()}
	if !cfg.Off {
		p.cancel = s.OnSample(p.onSample)
	}
	return p, nil
}

// Overloaded reports whether the policy is in its overloaded state.
func (p *Policy) Overloaded() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.overloaded
}

// Close unsubscribes the policy from the sampler. It is idempotent.
func (p *Policy) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed && p.cancel != nil {
		p.cancel()
	}
	p.closed = true
	return nil
}

func (p *Policy) onSample(s load.Snapshot) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	c := &p.cfg
	watchInFlight := c.InFlightEnter > 0
	now := s.At
	if !p.overloaded {
		over := s.CPU >= c.CPUEnter || (watchInFlight && s.InFlight >= c.InFlightEnter) || s.QueueingHigh
		if !over || now.Before(p.quietUntil) {
			return
		}
		p.overloaded = true
		p.lastRound = time.Time{}
		p.budget = -1
		p.t.m.transition("overloaded")
		p.t.log.Info("goaway policy: overloaded, moving connections away", "at", now,
			"cpu", s.CPU, "in_flight", s.InFlight, "queueing", s.Queueing, "queueing_high", s.QueueingHigh,
			"cpu_enter", c.CPUEnter, "in_flight_enter", c.InFlightEnter)
	} else if s.CPU <= c.CPUExit && (!watchInFlight || s.InFlight <= c.InFlightExit) && !s.QueueingHigh {
		p.overloaded = false
		p.quietUntil = now.Add(c.Cooldown)
		p.t.m.transition("normal")
		p.t.log.Info("goaway policy: load below exit thresholds, stopping", "at", now,
			"cpu", s.CPU, "in_flight", s.InFlight, "queueing", s.Queueing, "cooldown", c.Cooldown)
		return
	}
	if !p.lastRound.IsZero() && now.Sub(p.lastRound) < c.Interval {
		return
	}
	p.lastRound = now
	active := p.conns.Active()
	if p.spellBudget(active) {
		return
	}
	n := min(max(1, int(c.Fraction*float64(active))), p.budget)
	sent := p.conns.GoAwayOlder(n, c.Selector, ReasonLoad, c.MinAge)
	p.budget -= sent
	p.t.log.Debug("goaway policy: round", "at", now, "active", active, "sent", sent,
		"cpu", s.CPU, "in_flight", s.InFlight, "queueing", s.Queueing)
}

// spellBudget sets the budget of an overloaded spell at its first round:
// one GOAWAY per connection active then. A replica that is still
// overloaded after every connection has moved once is not helped by moving
// more (the whole fleet is overloaded, or one client carries the load):
// the fleet simulation showed a fleet at 90 % moving every connection 13
// times in two minutes, each reconnection adding to the load. It reports
// whether the budget is spent (logged and counted once per spell).
// Called with p.mu held.
func (p *Policy) spellBudget(active int) (spent bool) {
	switch {
	case p.budget == spentLogged:
		return true
	case p.budget < 0:
		p.budget = active
	case p.budget == 0:
		p.budget = spentLogged
		p.t.m.transition("budget_spent")
		p.t.log.Info("goaway policy: still overloaded after a GOAWAY per connection; not moving more until the load falls below the exit thresholds",
			"active", active)
		return true
	}
	return false
}

// spentLogged is Policy.budget once the spent budget was logged.
const spentLogged = -2
