package goaway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"sync"
	"time"
)

// Rebalancer defaults; see RebalanceConfig.
const (
	DefaultStableFor       = 2 * time.Second
	DefaultMemory          = 5 * time.Minute
	DefaultRebalanceWindow = 2 * time.Second
)

// Pacing of a rebalancing episode (see Rebalancer).
const (
	// rebalanceSteps is the number of rounds per window: a round every
	// Window/20, each jittered by ±50 %.
	rebalanceSteps = 20
	// rebalanceBudget bounds the GOAWAYs of one episode to this many times
	// the connections held when it started. Behind a random or round-robin
	// L4 balancer only 1/M of the reconnections reach the new replicas, so
	// reaching the fair share takes about one GOAWAY per connection held;
	// twice that leaves room for the tail and still bounds the churn when
	// every reconnection comes back here (DNS clients, or a balancer that
	// does not know the new replicas yet).
	rebalanceBudget = 2
)

// RebalanceConfig configures fair-share rebalancing. Set Name (DNS) or
// Watcher; the other fields' zero values mean their defaults.
type RebalanceConfig struct {
	// Name is the DNS name that resolves to every replica of this server's
	// set: in Kubernetes, the headless Service's name, e.g.
	// "svc.ns.svc.cluster.local." (a trailing dot skips the search
	// domains). Required unless Watcher is set.
	Name string
	// Resolver is the host:port of the DNS server to ask. Default "": the
	// system resolver.
	Resolver string
	// Interval is the time between two lookups of Name. Default 1s; allowed
	// 100ms..10m.
	Interval time.Duration
	// Watcher replaces the DNS lookups of Name with another source of the
	// replica set; Name, Resolver and Interval must then be empty. The
	// Rebalancer owns it and closes it.
	Watcher Watcher
	// StableFor is how long every lookup must have reported the same grown
	// set, and at least two lookups, before the Rebalancer acts: a set that
	// flaps faster never triggers. Default 2s; allowed 1ms..1h.
	StableFor time.Duration
	// Memory is how long the largest set seen is remembered: growing back
	// to a size seen within Memory (a replica that left and came back, a
	// flapping answer) does not trigger again. Default 5m; allowed 1ms..24h.
	Memory time.Duration
	// Window is the time over which the GOAWAYs of one scale-out are
	// spread. Default 2s; allowed 100ms..10m.
	Window time.Duration
	// Selector chooses which connections go first. Default OldestFirst:
	// the connections from before the scale-out.
	Selector Selector
}

// WithDefaults returns c with every zero field set to its default.
func (c RebalanceConfig) WithDefaults() RebalanceConfig {
	if c.Watcher == nil && c.Interval == 0 {
		c.Interval = DefaultLookupInterval
	}
	if c.StableFor == 0 {
		c.StableFor = DefaultStableFor
	}
	if c.Memory == 0 {
		c.Memory = DefaultMemory
	}
	if c.Window == 0 {
		c.Window = DefaultRebalanceWindow
	}
	if c.Selector == 0 {
		c.Selector = OldestFirst
	}
	return c
}

// Validate reports the first invalid field, after defaults are applied.
func (c RebalanceConfig) Validate() error {
	c = c.WithDefaults()
	if c.Watcher != nil {
		if c.Name != "" || c.Resolver != "" || c.Interval != 0 {
			return errors.New("goaway: RebalanceConfig: set Name, Resolver and Interval (DNS) or Watcher, not both")
		}
	} else {
		if err := checkDNS("RebalanceConfig", c.Name, c.Resolver, ", or set Watcher"); err != nil {
			return err
		}
		if c.Interval < 100*time.Millisecond || c.Interval > 10*time.Minute {
			return fmt.Errorf("goaway: RebalanceConfig.Interval must be within 100ms..10m (0 means %v), got %v", DefaultLookupInterval, c.Interval)
		}
	}
	switch {
	case c.StableFor < time.Millisecond || c.StableFor > time.Hour:
		return fmt.Errorf("goaway: RebalanceConfig.StableFor must be within 1ms..1h (0 means %v), got %v", DefaultStableFor, c.StableFor)
	case c.Memory < time.Millisecond || c.Memory > 24*time.Hour:
		return fmt.Errorf("goaway: RebalanceConfig.Memory must be within 1ms..24h (0 means %v), got %v", DefaultMemory, c.Memory)
	case c.Window < 100*time.Millisecond || c.Window > 10*time.Minute:
		return fmt.Errorf("goaway: RebalanceConfig.Window must be within 100ms..10m (0 means %v), got %v", DefaultRebalanceWindow, c.Window)
	case c.Selector < OldestFirst || c.Selector > Random:
		return fmt.Errorf("goaway: RebalanceConfig.Selector must be OldestFirst, BusiestFirst or Random, got %v", c.Selector)
	}
	return nil
}

func (c RebalanceConfig) dns() DNSWatcherConfig {
	return DNSWatcherConfig{Name: c.Name, Resolver: c.Resolver, Interval: c.Interval}
}

// Rebalancer gives replicas added by a scale-out their fair share of the
// connections in seconds instead of after MAX_CONNECTION_AGE. It watches
// the replica set (Watcher) and acts on this server's connections through
// the Tracker:
//
//   - the first answer is the starting point: nothing happens;
//   - errors and empty answers change nothing (never shed because DNS
//     failed); a smaller set changes nothing either;
//   - a grown set acts only once every lookup has reported it for
//     StableFor (and at least twice), and only if it is larger than every
//     set seen within Memory: a set that flaps, or grows back after a
//     replica left, does not trigger;
//   - on a growth from N to M replicas (N the largest set remembered), it
//     keeps N/M of the connections it holds (rounded at random, so the
//     fleet keeps the exact share on average) and sends GOAWAY to the rest,
//     oldest first, in rounds spread over Window with jitter. Behind a
//     least-connections balancer the first round is enough. Behind a
//     round-robin or random one (HAProxy roundrobin, kube-proxy) only 1/M
//     of the reconnections reach the new replicas and the rest come back:
//     later rounds send those over again, until the server is back at its
//     share, the window ends, or the episode's budget (twice the
//     connections held at the start) is spent.
//
// A server sees only its own connections: it assumes the fleet's
// connections were spread evenly and that every replica runs the same
// policy. The package documentation says what that means for many small
// and few large clients.
//
// Decisions are logged at info level and counted in
// grpcmgmt.goaway.rebalance.decisions {decision, replicas.before,
// replicas.after}; each GOAWAY is counted in grpcmgmt.goaway.sent with
// reason "rebalance"; each lookup in grpcmgmt.goaway.replica_set.lookups
// {outcome}.
type Rebalancer struct {
	// Immutable after NewRebalancer:
	t   *Tracker
	cfg RebalanceConfig
	w   Watcher
	log *slog.Logger
	m   *rebalanceMetrics

	mu      sync.Mutex // guards the fields below
	closed  bool
	known   int       // the last confirmed set size; 0 before the first answer
	peak    int       // the largest confirmed size seen within Memory
	peakAt  time.Time // when a set of size peak was last confirmed
	pending int       // a grown size waiting to be stable; 0 if none
	since   time.Time // first lookup that reported pending
	seen    int       // lookups in a row that reported pending
	failing bool      // the last lookup failed or was empty
	ep      *episode  // the running episode; nil if none
	ticks   sync.WaitGroup
}

// episode is one scale-out's rounds of GOAWAYs.
type episode struct {
	from, to int // set sizes
	before   int // active connections at the start
	target   int // connections to keep
	budget   int // most GOAWAYs this episode may send
	perRound int
	sent     int
	end      time.Time
	timer    *time.Timer
}

// NewRebalancer validates cfg and starts watching the replica set; GOAWAYs
// go through t. Close stops it. Logs and metrics go to t's Logger and
// MeterProvider.
func NewRebalancer(t *Tracker, cfg RebalanceConfig) (*Rebalancer, error) {
	if t == nil {
		return nil, errors.New("goaway: NewRebalancer: Tracker must not be nil")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	m, err := newRebalanceMetrics(t.cfg.MeterProvider)
	if err != nil {
		return nil, err
	}
	w := cfg.Watcher
	if w == nil {
		if w, err = NewDNSWatcher(cfg.dns()); err != nil {
			return nil, err
		}
	}
	r := &Rebalancer{t: t, cfg: cfg, w: w, log: t.log.With("policy", "rebalance"), m: m}
	if err := w.Watch(r.observe); err != nil {
		_ = w.Close()
		return nil, err
	}
	r.log.Info("rebalance: watching the replica set", "name", cfg.Name, "resolver", cfg.Resolver,
		"interval", cfg.Interval, "stable_for", cfg.StableFor, "window", cfg.Window)
	return r, nil
}

// Close stops watching and any episode in progress. Connections already
// sent a GOAWAY finish as usual. It is idempotent.
func (r *Rebalancer) Close() error {
	err := r.w.Close() // no observe call after this
	r.mu.Lock()
	r.closed = true
	if r.ep != nil {
		r.ep.timer.Stop()
		r.ep = nil
	}
	r.mu.Unlock()
	r.ticks.Wait()
	return err
}

// ReplicaSetSize returns the last confirmed size of the replica set, 0
// before the first good answer.
func (r *Rebalancer) ReplicaSetSize() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.known
}

// observe is the Watcher's report function.
func (r *Rebalancer) observe(l Lookup) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	if l.Err != nil || len(l.Members) == 0 {
		outcome := "empty"
		if l.Err != nil {
			outcome = "error"
		}
		r.m.lookup(outcome)
		r.log.Debug("rebalance: lookup gave nothing usable; nothing changes", "outcome", outcome, "err", l.Err)
		if !r.failing {
			r.failing = true
			r.log.Info("rebalance: replica set lookups failing; nothing changes until they work again",
				"outcome", outcome, "err", l.Err, "known", r.known)
		}
		return
	}
	r.m.lookup("ok")
	if r.failing {
		r.failing = false
		r.log.Info("rebalance: replica set lookups work again", "size", len(l.Members))
	}
	s := len(l.Members)
	if r.log.Enabled(context.Background(), slog.LevelDebug) {
		r.log.Debug("rebalance: lookup", "size", s, "known", r.known, "peak", r.peak)
	}
	switch {
	case r.known == 0:
		r.known, r.peak, r.peakAt = s, s, l.At
		r.m.setSize(s)
		r.log.Info("rebalance: replica set first seen", "size", s)
		return
	case r.peak > r.known && l.At.Sub(r.peakAt) > r.cfg.Memory:
		r.log.Info("rebalance: forgetting the largest recent set", "peak", r.peak, "known", r.known)
		r.peak = r.known
	}
	switch {
	case s == r.known:
		r.pending = 0
		if s >= r.peak {
			r.peakAt = l.At
		}
		return
	case s < r.known:
		r.pending = 0
		r.m.decide("shrink", r.known, s)
		r.log.Info("rebalance: replica set shrank; nothing to do", "before", r.known, "after", s)
		r.known = s
		r.m.setSize(s)
		return
	}
	// Grown: wait until it is stable.
	if s != r.pending {
		r.pending, r.since, r.seen = s, l.At, 1
		r.log.Debug("rebalance: replica set grew; waiting for it to be stable", "before", r.known, "after", s, "stable_for", r.cfg.StableFor)
		return
	}
	r.seen++
	if r.seen < 2 || l.At.Sub(r.since) < r.cfg.StableFor {
		return
	}
	r.pending = 0
	from := max(r.known, r.peak)
	r.known = s
	r.m.setSize(s)
	if s <= from {
		r.peakAt = l.At
		r.m.decide("remembered", from, s)
		r.log.Info("rebalance: replica set grew back to a size seen recently; not rebalancing",
			"before", from, "after", s, "memory", r.cfg.Memory)
		return
	}
	r.peak, r.peakAt = s, l.At
	r.m.decide("rebalance", from, s)
	r.start(from, s)
}

// start begins an episode for a growth from n to m replicas. Called with
// r.mu held.
func (r *Rebalancer) start(n, m int) {
	if r.ep != nil {
		r.ep.timer.Stop()
		r.log.Info("rebalance: replica set grew again; restarting", "sent", r.ep.sent)
		r.ep = nil
	}
	before := r.t.Active()
	// Keep N/M of the connections rounded down: every replica that holds a
	// connection sends at least one GOAWAY. A client that resolves DNS
	// itself (round_robin over dns:///) needs only one GOAWAY on any of its
	// connections to re-resolve and spread over the grown set; with few
	// large clients, rounding at random would leave some of them (and so
	// the new replicas) untouched until MAX_CONNECTION_AGE. The cost is at
	// most one extra reconnection per replica.
	target := int(math.Floor(float64(before) * float64(n) / float64(m)))
	budget := rebalanceBudget * before
	r.log.Info("rebalance: replica set grew; moving connections to the new replicas",
		"before", n, "after", m, "connections", before, "keep", target, "window", r.cfg.Window)
	if before <= target {
		return
	}
	ep := &episode{from: n, to: m, before: before, target: target, budget: budget,
		perRound: (budget + rebalanceSteps - 1) / rebalanceSteps, end: time.Now().Add(r.cfg.Window)}
	r.ep = ep
	ep.timer = time.AfterFunc(r.roundDelay()/2, func() { r.round(ep) })
}

// round sends one round of GOAWAYs of ep and schedules the next.
func (r *Rebalancer) round(ep *episode) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || r.ep != ep {
		return
	}
	r.ticks.Add(1)
	defer r.ticks.Done()
	active := r.t.Active()
	if n := min(ep.perRound, active-ep.target, ep.budget-ep.sent); n > 0 {
		sent := r.t.GoAwayN(n, r.cfg.Selector, ReasonRebalance)
		ep.sent += sent
		r.log.Debug("rebalance: round", "active", active, "keep", ep.target, "sent", sent)
	}
	if ep.sent >= ep.budget || !time.Now().Before(ep.end) {
		r.ep = nil
		r.log.Info("rebalance: done", "before", ep.from, "after", ep.to, "sent", ep.sent,
			"connections_at_start", ep.before, "keep", ep.target, "active", r.t.Active())
		return
	}
	ep.timer.Reset(r.roundDelay())
}

// roundDelay is Window/rebalanceSteps with ±50 % jitter, so that replicas
// that saw the growth at the same time do not act in lockstep.
func (r *Rebalancer) roundDelay() time.Duration {
	d := r.cfg.Window / rebalanceSteps
	return d/2 + rand.N(d+1)
}
