package goaway

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"math/rand/v2"
	"time"
)

// RebalanceDecider is the Rebalancer's decision logic with no timer,
// goroutine, lock or watcher of its own: a state machine that takes the
// lookups of the replica set (Observe, on the clock of Lookup.At) and runs
// the rounds of GOAWAYs when told (Round), acting on a ConnSet. It returns
// when the next round is due; the caller keeps the time.
//
// A Rebalancer is one wrapped in a timer and a Watcher, acting on a
// Tracker. A fleet simulation drives one per simulated replica on a
// simulated clock, so that what it measures is this code's behaviour, not
// a model of it (bench/sim). It is not safe for concurrent use.
type RebalanceDecider struct {
	// Immutable after NewRebalanceDecider:
	cfg   RebalanceConfig
	conns ConnSet
	log   *slog.Logger
	m     *rebalanceMetrics
	rnd   *rand.Rand // nil: the global source

	known   int       // the last confirmed set size; 0 before the first answer
	peak    int       // the largest confirmed size seen within Memory
	peakAt  time.Time // when a set of size peak was last confirmed
	pending int       // a grown size waiting to be stable; 0 if none
	since   time.Time // first lookup that reported pending
	seen    int       // lookups in a row that reported pending
	failing bool      // the last lookup failed or was empty
	ep      *episode  // the running episode; nil if none
}

// episode is one scale-out's rounds of GOAWAYs.
type episode struct {
	from, to int // set sizes
	before   int // active connections at the start
	target   int // connections to keep
	budget   int // most GOAWAYs this episode may send
	perRound int
	sent     int
	elapsed  time.Duration // the delays scheduled so far, up to the next round
}

// NewRebalanceDecider returns the decision logic of a Rebalancer with cfg,
// acting on conns. Only cfg's decision fields matter here (StableFor,
// Memory, Window, Selector); Name, Resolver, Interval and Watcher belong
// to the Rebalancer, which looks the set up.
func NewRebalanceDecider(conns ConnSet, cfg RebalanceConfig, opts DecisionOptions) (*RebalanceDecider, error) {
	if conns == nil {
		return nil, errors.New("goaway: NewRebalanceDecider: ConnSet must not be nil")
	}
	cfg = cfg.WithDefaults()
	if err := cfg.validateDecisions(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	m, err := newRebalanceMetrics(opts.MeterProvider)
	if err != nil {
		return nil, err
	}
	return &RebalanceDecider{cfg: cfg, conns: conns, log: opts.Logger, m: m, rnd: opts.Rand}, nil
}

// ReplicaSetSize returns the last confirmed size of the replica set, 0
// before the first good answer.
func (d *RebalanceDecider) ReplicaSetSize() int { return d.known }

// Stop ends the episode in progress, if any: Round does nothing until the
// next episode.
func (d *RebalanceDecider) Stop() { d.ep = nil }

// Observe decides on one lookup of the replica set. When the lookup starts
// an episode of GOAWAYs (a grown set confirmed) it returns the delay before
// the episode's first round and true: call Round then. An episode already
// running is replaced by the new one.
func (d *RebalanceDecider) Observe(l Lookup) (time.Duration, bool) {
	if l.Err != nil || len(l.Members) == 0 {
		outcome := "empty"
		if l.Err != nil {
			outcome = "error"
		}
		d.m.lookup(outcome)
		d.log.Debug("rebalance: lookup gave nothing usable; nothing changes", "outcome", outcome, "err", l.Err)
		if !d.failing {
			d.failing = true
			d.log.Info("rebalance: replica set lookups failing; nothing changes until they work again",
				"outcome", outcome, "err", l.Err, "known", d.known)
		}
		return 0, false
	}
	d.m.lookup("ok")
	if d.failing {
		d.failing = false
		d.log.Info("rebalance: replica set lookups work again", "size", len(l.Members))
	}
	s := len(l.Members)
	if d.log.Enabled(context.Background(), slog.LevelDebug) {
		d.log.Debug("rebalance: lookup", "size", s, "known", d.known, "peak", d.peak)
	}
	switch {
	case d.known == 0:
		d.known, d.peak, d.peakAt = s, s, l.At
		d.m.setSize(s)
		d.log.Info("rebalance: replica set first seen", "size", s)
		return 0, false
	case d.peak > d.known && l.At.Sub(d.peakAt) > d.cfg.Memory:
		d.log.Info("rebalance: forgetting the largest recent set", "peak", d.peak, "known", d.known)
		d.peak = d.known
	}
	switch {
	case s == d.known:
		d.pending = 0
		if s >= d.peak {
			d.peakAt = l.At
		}
		return 0, false
	case s < d.known:
		d.pending = 0
		d.m.decide("shrink", d.known, s)
		d.log.Info("rebalance: replica set shrank; nothing to do", "before", d.known, "after", s)
		d.known = s
		d.m.setSize(s)
		return 0, false
	}
	// Grown: wait until it is stable.
	if s != d.pending {
		d.pending, d.since, d.seen = s, l.At, 1
		d.log.Debug("rebalance: replica set grew; waiting for it to be stable", "before", d.known, "after", s, "stable_for", d.cfg.StableFor)
		return 0, false
	}
	d.seen++
	if d.seen < 2 || l.At.Sub(d.since) < d.cfg.StableFor {
		return 0, false
	}
	d.pending = 0
	from := max(d.known, d.peak)
	d.known = s
	d.m.setSize(s)
	if s <= from {
		d.peakAt = l.At
		d.m.decide("remembered", from, s)
		d.log.Info("rebalance: replica set grew back to a size seen recently; not rebalancing",
			"before", from, "after", s, "memory", d.cfg.Memory)
		return 0, false
	}
	d.peak, d.peakAt = s, l.At
	d.m.decide("rebalance", from, s)
	return d.start(from, s)
}

// start begins an episode for a growth from n to m replicas.
func (d *RebalanceDecider) start(n, m int) (time.Duration, bool) {
	if d.ep != nil {
		d.log.Info("rebalance: replica set grew again; restarting", "sent", d.ep.sent)
		d.ep = nil
	}
	before := d.conns.Active()
	// Keep N/M of the connections rounded down: every replica that holds a
	// connection sends at least one GOAWAY. A client that resolves DNS
	// itself (round_robin over dns:///) needs only one GOAWAY on any of its
	// connections to re-resolve and spread over the grown set; with few
	// large clients, rounding at random would leave some of them (and so
	// the new replicas) untouched until MAX_CONNECTION_AGE. The cost is at
	// most one extra reconnection per replica.
	target := int(math.Floor(float64(before) * float64(n) / float64(m)))
	budget := rebalanceBudget * before
	d.log.Info("rebalance: replica set grew; moving connections to the new replicas",
		"before", n, "after", m, "connections", before, "keep", target, "window", d.cfg.Window)
	if before <= target {
		return 0, false
	}
	d.ep = &episode{from: n, to: m, before: before, target: target, budget: budget,
		perRound: (budget + rebalanceSteps - 1) / rebalanceSteps}
	first := d.roundDelay() / 2
	d.ep.elapsed = first
	return first, true
}

// Round runs one round of the episode in progress: it sends GOAWAYs to the
// connections above the episode's target, within the round's and the
// episode's budgets. It returns the delay before the next round and true,
// or false when the episode has ended (or none runs).
func (d *RebalanceDecider) Round() (time.Duration, bool) {
	ep := d.ep
	if ep == nil {
		return 0, false
	}
	active := d.conns.Active()
	if n := min(ep.perRound, active-ep.target, ep.budget-ep.sent); n > 0 {
		sent := d.conns.GoAwayOlder(n, d.cfg.Selector, ReasonRebalance, 0)
		ep.sent += sent
		d.log.Debug("rebalance: round", "active", active, "keep", ep.target, "sent", sent)
	}
	if ep.sent >= ep.budget || ep.elapsed >= d.cfg.Window {
		d.ep = nil
		d.log.Info("rebalance: done", "before", ep.from, "after", ep.to, "sent", ep.sent,
			"connections_at_start", ep.before, "keep", ep.target, "active", d.conns.Active())
		return 0, false
	}
	next := d.roundDelay()
	ep.elapsed += next
	return next, true
}

// roundDelay is Window/rebalanceSteps with ±50 % jitter, so that replicas
// that saw the growth at the same time do not act in lockstep.
func (d *RebalanceDecider) roundDelay() time.Duration {
	step := d.cfg.Window / rebalanceSteps
	return step/2 + time.Duration(d.int64N(int64(step)+1))
}

func (d *RebalanceDecider) int64N(n int64) int64 {
	if d.rnd != nil {
		return d.rnd.Int64N(n)
	}
	return rand.Int64N(n)
}
