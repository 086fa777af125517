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

	firstAt time.Time // the first good answer
	known   int       // the last confirmed set size; 0 before the first answer
	peak    int       // the largest confirmed size seen within Memory
	peakAt  time.Time // when a set of size peak was last confirmed
	pending int       // a grown size waiting to be stable; 0 if none
	since   time.Time // first lookup that reported pending
	seen    int       // lookups in a row that reported pending
	failing bool      // the last lookup failed or was empty
	ep      *episode  // the running episode; nil if none
	// history holds the active connections at the last good lookups,
	// oldest first: the count before the growth, which the other
	// replicas' rounds have not inflated yet (start).
	history []sample
}

// sample is the connection count at one lookup.
type sample struct {
	at     time.Time
	active int
}

// comeBackShare: when at least this share of the GOAWAYs sent comes back,
// the episode sends each connection held once and stops, or, for a growth
// below smallGrowth of the set, sends only what it owed (Round).
//
// chaseShare: once the owed share is sent, connections that arrive are
// sent on only when at least this share of the GOAWAYs came back.
//
// sameReplicaBack and sameReplicaOdds tell clients that reconnect to the
// same replica (DNS clients: each holds a connection to every address)
// from a balancer that spreads the reconnections over all M replicas, of
// which this one gets N/M: the count that came back must be sameReplicaOdds
// times likelier if each GOAWAY comes back with sameReplicaBack than with
// N/M (comesBackHere).
const (
	comeBackShare   = 0.9
	smallGrowth     = 0.02
	chaseShare      = 0.05
	sameReplicaBack = 0.97
	sameReplicaOdds = 20
)

// historyLen bounds the history: with the default 1 s Interval it covers
// the default Settle.
const historyLen = 16

// episode is one scale-out's rounds of GOAWAYs.
type episode struct {
	from, to  int // set sizes
	before    int // active connections at the start
	target    int // connections to keep
	tolerance int // once owed is sent, rounds send only above target + tolerance
	owed      int // what was above the target at the start and has not been sent yet
	held      int // the connections held before the growth
	budget    int // most GOAWAYs this episode may send
	perRound  int
	sent      int
	// back counts the connections that arrived during the episode, net
	// of those that left other than by its GOAWAYs (the change of Active
	// between rounds): with sent, it says how many reconnections come
	// back, which sets the pace (Round). Net, because some clients open
	// short extra connections when they reconnect (C-core does): counting
	// only the rises counted those twice and took a round-robin balancer
	// for DNS clients.
	back       int
	lastActive int           // Active after the last round's GOAWAYs; -1 before the first
	credit     float64       // GOAWAYs MaxArrivalRate allows now
	lastDelay  time.Duration // the delay before the round now due
	elapsed    time.Duration // the delays scheduled so far, up to the next round
	quiet      time.Duration // time at or below target + tolerance, in a row
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
	if len(d.history) == historyLen {
		d.history = append(d.history[:0], d.history[1:]...)
	}
	d.history = append(d.history, sample{l.At, d.conns.Active()})
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
		d.known, d.peak, d.peakAt, d.firstAt = s, s, l.At, l.At
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
	// A replica that has just started is usually the growth itself: its
	// DNS cache answered without it, then with it, and what it holds are
	// the connections it was just given. Shedding half of them works
	// against the rebalancing (the fleet simulation showed it at 1 000
	// replicas, where a 5 s DNS lag let the new replicas fill up before
	// they confirmed the growth).
	if d.since.Sub(d.firstAt) < d.cfg.Settle {
		d.m.decide("startup", from, s)
		d.log.Info("rebalance: replica set grew just after this server started; taking it as the starting point",
			"before", from, "after", s, "since_first_answer", d.since.Sub(d.firstAt), "grace", d.cfg.Settle)
		return 0, false
	}
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
	// The share to keep is N/M of what this server held before the
	// growth. Replicas see the grown set up to a DNS TTL apart, so the
	// first ones' rounds have already sent some of their connections here
	// when this one confirms it; counting those would keep them (the fleet
	// simulation lost a sixth of the new replicas' share that way at 1 000
	// replicas with a 5 s lag). Connections only arrive from those rounds,
	// so the fewest held at a lookup since Settle before the growth was
	// first seen is the count from before it.
	held := before
	for _, h := range d.history {
		if !h.at.Before(d.since.Add(-d.cfg.Settle)) {
			held = min(held, h.active)
		}
	}
	if held == 0 {
		// A replica that held nothing before the growth (one of the new
		// replicas, out of rotation until now): whatever arrives is its
		// share.
		d.log.Info("rebalance: replica set grew; this server held no connection before, nothing to move",
			"before", n, "after", m, "connections", before)
		return 0, false
	}
	excess := d.excess(held, n, m)
	target := held - excess
	d.log.Info("rebalance: replica set grew; moving connections to the new replicas",
		"before", n, "after", m, "connections", before, "held_before_growth", held, "keep", target,
		"window", d.cfg.Window, "max_arrival_rate", d.cfg.MaxArrivalRate)
	budget := rebalanceBudget * before
	d.ep = &episode{from: n, to: m, before: before, target: target, budget: budget, owed: max(0, before-target), held: held,
		tolerance: target * (m - n) / (toleranceDiv * n), lastActive: -1,
		perRound: (budget + rebalanceSteps - 1) / rebalanceSteps}
	first := d.roundDelay() / 2
	d.ep.elapsed, d.ep.lastDelay = first, first
	return first, true
}

// excess returns how many of c connections to send away on a growth from
// n to m replicas: c × (m−n)/m, rounded at random so that the fleet moves
// the exact share on average. Rounding down on every replica (as this
// package once did, so that every replica sent at least one) moved 999
// connections instead of 100 when a 999-replica fleet with 100 each grew
// by one, all onto the new replica behind a least-connections balancer.
// Where the share is below one connection and the fleet is small, random
// rounding could leave every replica at zero (so a DNS client that needs
// one GOAWAY to re-resolve would hear none): when that chance exceeds 5 %,
// the share is rounded up.
func (d *RebalanceDecider) excess(c, n, m int) int {
	x := float64(c) * float64(m-n) / float64(m)
	whole := math.Floor(x)
	frac := x - whole
	if whole == 0 && frac > 0 && math.Pow(1-frac, float64(n)) > 0.05 {
		return 1
	}
	if d.float64() < frac {
		whole++
	}
	return int(whole)
}

// Round runs one round of the episode in progress: it sends GOAWAYs to the
// connections above the episode's target, within the round's, the
// episode's and the arrival-rate budgets. It returns the delay before the
// next round and true, or false when the episode has ended (or none runs).
//
// The pace: every replica is assumed to run the same policy, so a replica
// sending r GOAWAYs per second is one of N doing so. Of what it sends, a
// share ρ comes back to it (measured: the rise of its connections between
// rounds over what it sent) and the rest is assumed to go to the M−N new
// replicas evenly, as a least-connections balancer does. The busiest
// replica then receives r × max(ρ, N(1−ρ)/(M−N)) per second, which
// MaxArrivalRate bounds. Before anything came back ρ is taken as 0 (the
// least-connections case, the most concentrated).
func (d *RebalanceDecider) Round() (time.Duration, bool) {
	ep := d.ep
	if ep == nil {
		return 0, false
	}
	active := d.conns.Active()
	if ep.lastActive >= 0 {
		ep.back += active - ep.lastActive
	}
	rho := 0.0
	if ep.sent > 0 {
		rho = max(0, min(1, float64(ep.back)/float64(ep.sent)))
	}
	per := max(rho, float64(ep.from)*(1-rho)/float64(ep.to-ep.from))
	rate := d.cfg.MaxArrivalRate / max(per, 1e-9)
	ep.credit = min(ep.credit+rate*ep.lastDelay.Seconds(), float64(ep.perRound))
	over := active - ep.target
	// Nearly everything sent comes back: DNS clients (which reconnect to
	// the same replica and re-resolve on their own floor), or a uniform
	// random balancer after a small growth (only (M−N)/M of the
	// reconnections leave). Either way one GOAWAY per connection held is
	// what it takes (every DNS client hears one; a random balancer
	// reshuffles everything once, the cost of one MAX_CONNECTION_AGE
	// cycle), and more only churns.
	// Below a growth of smallGrowth that cycle buys too little: what is
	// owed is sent, and MAX_CONNECTION_AGE does the rest.
	// After a larger growth a random balancer sends only N/M back, but a
	// few connections may all come back by chance (8 of 8 one time in
	// ten at N/M = 3/4); taking that for DNS clients stopped the chase a
	// connection or two above the share. There the count must make DNS
	// clients the far likelier explanation (comesBackHere).
	comeBack := ep.sent >= min(ep.held, 10) && rho >= comeBackShare &&
		(float64(ep.from) >= comeBackShare*float64(ep.to) || comesBackHere(ep.sent, ep.back, float64(ep.from)/float64(ep.to)))
	switch {
	case comeBack && (ep.sent >= ep.held || float64(ep.to-ep.from) < smallGrowth*float64(ep.to)):
		over = max(0, min(over, ep.owed))
	case comeBack:
	case ep.owed <= 0 && (over <= ep.tolerance || rho < chaseShare):
		// Within the tolerance, or hardly anything comes back (a
		// least-connections balancer: what arrives now lands on replicas
		// that are all at their share, and sending it on only moves it
		// between equals).
		over = 0
	}
	n := min(ep.perRound, over, ep.budget-ep.sent, int(ep.credit))
	limit := "target"
	switch {
	case n <= 0 && over > 0 && ep.sent < ep.budget:
		limit = "rate"
	case n <= 0:
	case n == over:
		limit = "excess"
	case n == ep.budget-ep.sent:
		limit = "budget"
	case n == int(ep.credit):
		limit = "rate"
	default:
		limit = "round"
	}
	sent := 0
	if n > 0 {
		sent = d.conns.GoAwayOlder(n, d.cfg.Selector, ReasonRebalance, 0)
		ep.sent += sent
		ep.owed -= sent
		ep.credit -= float64(sent)
	}
	d.m.round(limit)
	if d.log.Enabled(context.Background(), slog.LevelDebug) {
		d.log.Debug("rebalance: round", "active", active, "keep", ep.target, "sent", sent, "limit", limit,
			"came_back", ep.back, "rate", rate)
	}
	ep.lastActive = active - sent
	if over <= 0 {
		ep.quiet += ep.lastDelay
	} else {
		ep.quiet = 0
	}
	if ep.sent >= ep.budget || (ep.elapsed >= d.cfg.Window && ep.quiet >= d.cfg.Settle) || ep.elapsed >= d.cfg.Memory {
		d.ep = nil
		d.log.Info("rebalance: done", "before", ep.from, "after", ep.to, "sent", ep.sent,
			"connections_at_start", ep.before, "keep", ep.target, "active", d.conns.Active(),
			"came_back", ep.back, "took", ep.elapsed)
		return 0, false
	}
	next := d.roundDelay()
	ep.elapsed += next
	ep.lastDelay = next
	return next, true
}

// comesBackHere reports whether back of sent GOAWAYs coming back is at
// least sameReplicaOdds times likelier from clients that reconnect to the
// same replica (each comes back with probability sameReplicaBack) than
// from a balancer that sends a share r of the reconnections here.
func comesBackHere(sent, back int, r float64) bool {
	if sent <= 0 || r >= sameReplicaBack {
		return false
	}
	k := float64(max(0, min(back, sent)))
	miss := float64(sent) - k
	llr := k*math.Log(sameReplicaBack/r) + miss*math.Log((1-sameReplicaBack)/(1-r))
	return llr >= math.Log(sameReplicaOdds)
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

func (d *RebalanceDecider) float64() float64 {
	if d.rnd != nil {
		return d.rnd.Float64()
	}
	return rand.Float64()
}
