package goaway

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// Rebalancer defaults; see RebalanceConfig.
const (
	DefaultStableFor       = 2 * time.Second
	DefaultMemory          = 5 * time.Minute
	DefaultRebalanceWindow = 2 * time.Second
	DefaultSettle          = 10 * time.Second
	// DefaultMaxArrivalRate: about a third of a core of TLS handshakes
	// (a Go server's TLS 1.3 handshake costs a few hundred µs of CPU).
	DefaultMaxArrivalRate = 1000
)

// Pacing of a rebalancing episode (see Rebalancer).
const (
	// rebalanceSteps is the number of rounds per window: a round every
	// Window/20, each jittered by ±50 %.
	rebalanceSteps = 20
	// rebalanceBudget bounds the GOAWAYs of one episode to this many times
	// the connections held when it started. Behind a uniform random L4
	// balancer only (M−N)/M of the reconnections reach the new replicas, so
	// reaching the fair share takes about one GOAWAY per connection held
	// whatever the growth; twice that leaves room for the tail and still
	// bounds the churn when every reconnection comes back here (DNS
	// clients, or a balancer that does not know the new replicas yet).
	rebalanceBudget = 2
	// toleranceDiv: once a replica has sent what it owed, a round sends
	// only when its connections exceed the target by more than a
	// tolerance, the target × (M−N)/(toleranceDiv × N) rounded down: the N
	// old replicas together then keep at most 1/toleranceDiv (5 %) of the
	// M−N new ones' share, and a large replica does not chase the last
	// few reconnections of a random balancer one GOAWAY at a time.
	toleranceDiv = 20
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
	// Settle is how long an episode goes on once this server is back at
	// its share, sending on the connections that other replicas' rounds
	// bring here: the replicas see the grown set up to a DNS TTL apart
	// (CoreDNS: 5 s), and a replica that stopped at once would keep what
	// the late ones send it. The episode ends when the connections have
	// stayed at the target for Settle. It is also the start-up grace: a
	// growth first seen within Settle of this server's first answer is
	// taken as the starting point (a replica that has just started is
	// usually the growth itself, and its DNS cache answered without it).
	// Default 10s; allowed 1ms..10m.
	Settle time.Duration
	// MaxArrivalRate is the reconnection budget of one replica: the most
	// reconnections per second a scale-out's rebalancing should bring to
	// any replica (TLS handshakes, connection setup). Each replica paces
	// its GOAWAYs so that, with every replica doing the same, none
	// receives more: behind a least-connections balancer every
	// reconnection goes to the M−N new replicas, so each of the N old ones
	// sends at most MaxArrivalRate × (M−N)/N per second; where
	// reconnections are seen to come back (a random balancer, DNS clients)
	// the pace rises accordingly. Default 1000; allowed 1..1e6.
	MaxArrivalRate float64
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
	if c.Settle == 0 {
		c.Settle = DefaultSettle
	}
	if c.MaxArrivalRate == 0 {
		c.MaxArrivalRate = DefaultMaxArrivalRate
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
	return c.validateDecisions()
}

// validateDecisions reports the first invalid field among those the
// RebalanceDecider uses; c has its defaults applied.
func (c RebalanceConfig) validateDecisions() error {
	switch {
	case c.StableFor < time.Millisecond || c.StableFor > time.Hour:
		return fmt.Errorf("goaway: RebalanceConfig.StableFor must be within 1ms..1h (0 means %v), got %v", DefaultStableFor, c.StableFor)
	case c.Memory < time.Millisecond || c.Memory > 24*time.Hour:
		return fmt.Errorf("goaway: RebalanceConfig.Memory must be within 1ms..24h (0 means %v), got %v", DefaultMemory, c.Memory)
	case c.Window < 100*time.Millisecond || c.Window > 10*time.Minute:
		return fmt.Errorf("goaway: RebalanceConfig.Window must be within 100ms..10m (0 means %v), got %v", DefaultRebalanceWindow, c.Window)
	case c.Selector < OldestFirst || c.Selector > Random:
		return fmt.Errorf("goaway: RebalanceConfig.Selector must be OldestFirst, BusiestFirst or Random, got %v", c.Selector)
	case c.Settle < time.Millisecond || c.Settle > 10*time.Minute:
		return fmt.Errorf("goaway: RebalanceConfig.Settle must be within 1ms..10m (0 means %v), got %v", DefaultSettle, c.Settle)
	case !(c.MaxArrivalRate >= 1 && c.MaxArrivalRate <= 1e6):
		return fmt.Errorf("goaway: RebalanceConfig.MaxArrivalRate must be within 1..1e6 (0 means %v), got %v", DefaultMaxArrivalRate, c.MaxArrivalRate)
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
//   - a growth seen within Settle of this server's first answer is its
//     starting point (a new replica is usually the growth itself);
//   - on a growth from N to M replicas (N the largest set remembered), it
//     keeps N/M of the connections it held before the growth (rounded at
//     random, so the fleet moves the exact share on average) and sends
//     GOAWAY to the rest, oldest first, in rounds every Window/20 with
//     jitter. Behind a least-connections balancer that is all. Behind a
//     random one only (M−N)/M of the reconnections reach the new replicas
//     and the rest come back: later rounds send those on again while the
//     server is above its share by more than a small tolerance, until it
//     has stayed at its share for Settle (other replicas, which saw the
//     growth later, are still sending), or the episode's budget (twice the
//     connections held) is spent. Where nearly everything comes back (DNS
//     clients; a random balancer after a small growth) each connection is
//     sent one GOAWAY and no more;
//   - the rounds are paced by MaxArrivalRate, the reconnection budget of a
//     replica: with every replica doing the same, no replica should
//     receive more reconnections per second than that.
//
// The decisions are a RebalanceDecider's; the Rebalancer adds the Watcher,
// a timer for the rounds and a lock. A server sees only its own
// connections: it assumes the fleet's connections were spread evenly and
// that every replica runs the same policy. The package documentation says
// what that means for many small and few large clients.
//
// Decisions are logged at info level and counted in
// grpcmgmt.goaway.rebalance.decisions {decision, replicas.before,
// replicas.after}; each GOAWAY is counted in grpcmgmt.goaway.sent with
// reason "rebalance"; each lookup in grpcmgmt.goaway.replica_set.lookups
// {outcome}.
type Rebalancer struct {
	// Immutable after NewRebalancer:
	w Watcher

	mu     sync.Mutex // guards the fields below
	d      *RebalanceDecider
	closed bool
	timer  *time.Timer // the next round of the running episode; nil if none
	gen    uint64      // the running episode's number: a stale timer's round does nothing
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
	return newRebalancer(t, cfg.WithDefaults(), DecisionOptions{Logger: t.log.With("policy", "rebalance"), MeterProvider: t.cfg.MeterProvider})
}

// newRebalancer is NewRebalancer acting on any ConnSet; cfg is valid and
// has its defaults.
func newRebalancer(conns ConnSet, cfg RebalanceConfig, opts DecisionOptions) (*Rebalancer, error) {
	d, err := NewRebalanceDecider(conns, cfg, opts)
	if err != nil {
		return nil, err
	}
	w := cfg.Watcher
	if w == nil {
		if w, err = NewDNSWatcher(cfg.dns()); err != nil {
			return nil, err
		}
	}
	r := &Rebalancer{w: w, d: d}
	if err := w.Watch(r.observe); err != nil {
		_ = w.Close()
		return nil, err
	}
	opts.Logger.Info("rebalance: watching the replica set", "name", cfg.Name, "resolver", cfg.Resolver,
		"interval", cfg.Interval, "stable_for", cfg.StableFor, "window", cfg.Window)
	return r, nil
}

// Close stops watching and any episode in progress. Connections already
// sent a GOAWAY finish as usual. It is idempotent.
func (r *Rebalancer) Close() error {
	err := r.w.Close() // no observe call after this
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	r.stopEpisode()
	r.d.Stop()
	return err
}

// ReplicaSetSize returns the last confirmed size of the replica set, 0
// before the first good answer.
func (r *Rebalancer) ReplicaSetSize() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.d.ReplicaSetSize()
}

// observe is the Watcher's report function.
func (r *Rebalancer) observe(l Lookup) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	first, ok := r.d.Observe(l)
	if !ok {
		return
	}
	r.stopEpisode() // the decider replaced the episode, if one ran
	gen := r.gen
	r.timer = time.AfterFunc(first, func() { r.round(gen) })
}

// round runs one round of episode gen and schedules the next.
func (r *Rebalancer) round(gen uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || gen != r.gen || r.timer == nil {
		return
	}
	next, ok := r.d.Round()
	if !ok {
		r.timer = nil
		return
	}
	r.timer.Reset(next)
}

// stopEpisode stops the running episode's timer. Called with r.mu held.
func (r *Rebalancer) stopEpisode() {
	if r.timer != nil {
		r.timer.Stop()
		r.timer = nil
	}
	r.gen++
}
