package sim

import (
	"cmp"
	"math"
	"slices"
	"time"

	"github.com/grpcmgmt/grpcmgmt/goaway"
	"github.com/grpcmgmt/grpcmgmt/load"
)

// conn is one client connection.
type conn struct {
	id         int
	weight     float64 // calls per second, in light-connection units
	heavy      bool
	cl         *client // DNS clients only
	rep        *replica
	prev, next *conn
	start      time.Duration
	draining   bool
}

// client is a DNS client: one connection per replica it resolved.
type client struct {
	id          int
	conns       map[*replica]*conn
	lastResolve time.Duration
	pending     bool
	lag         time.Duration // sees a changed set this long after ScaleAt
}

// replica is one simulated server: its connections, oldest first, and the
// library's deciders acting on them through goaway.ConnSet.
type replica struct {
	f     *fleet
	id    int
	alive bool
	lag   time.Duration // its lookups see a changed set this long after ScaleAt
	d     *goaway.RebalanceDecider
	p     *goaway.Policy
	gen   uint64 // the running episode's rounds

	head, tail *conn
	total      int // connections attached, draining ones included
	active     int // not draining
	load       float64
	cpu        float64 // smoothed load ÷ capacity
	lastSample time.Duration
	overloaded time.Duration
}

var _ goaway.ConnSet = (*replica)(nil)

func (r *replica) attach(c *conn, start time.Duration) {
	c.rep, c.start, c.draining = r, start, false
	c.prev, c.next = r.tail, nil
	if r.tail != nil {
		r.tail.next = c
	} else {
		r.head = c
	}
	r.tail = c
	r.total++
	r.active++
	r.load += c.weight
}

func (r *replica) detach(c *conn) {
	if c.prev != nil {
		c.prev.next = c.next
	} else {
		r.head = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	} else {
		r.tail = c.prev
	}
	c.prev, c.next, c.rep = nil, nil, nil
	r.total--
	if !c.draining {
		r.active--
	}
	r.load -= c.weight
}

// sortByStart orders the list oldest first (after the initial placement,
// whose ages are drawn at random).
func (r *replica) sortByStart() {
	var cs []*conn
	for c := r.head; c != nil; c = c.next {
		cs = append(cs, c)
	}
	slices.SortStableFunc(cs, func(a, b *conn) int { return cmp.Compare(a.start, b.start) })
	r.head, r.tail = nil, nil
	for i, c := range cs {
		c.prev, c.next = nil, nil
		if i > 0 {
			c.prev = cs[i-1]
			cs[i-1].next = c
		}
	}
	if len(cs) > 0 {
		r.head, r.tail = cs[0], cs[len(cs)-1]
	}
}

// Active is goaway.ConnSet's: connections not draining.
func (r *replica) Active() int { return r.active }

// GoAwayOlder is goaway.ConnSet's, with the Tracker's selection
// (goaway.Rank: never a draining connection; oldest first, busiest first
// or at random; none younger than minAge scaled by its share of the load).
// A connection's calls are its weight × 10 per second of its age. Each
// chosen connection reconnects after the client's delay.
func (r *replica) GoAwayOlder(n int, sel goaway.Selector, reason goaway.Reason, minAge time.Duration) int {
	if n <= 0 {
		return 0
	}
	f := r.f
	var conns []*conn
	var cands []goaway.Candidate
	for c := r.head; c != nil; c = c.next {
		if c.draining {
			continue
		}
		if sel == goaway.OldestFirst && minAge == 0 && len(conns) == n {
			break // the rest are younger: not needed (the rebalancer's case)
		}
		age := f.now - c.start
		conns = append(conns, c)
		cands = append(cands, goaway.Candidate{Age: age, Calls: uint64(c.weight * 10 * age.Seconds())})
	}
	sent := 0
	for _, i := range goaway.Rank(cands, sel, minAge, f.rng.Shuffle) {
		if sent == n {
			break
		}
		c := conns[i]
		c.draining = true
		r.active--
		d := f.s.ReconnectDelay
		f.push(event{at: f.now + d/10 + time.Duration(f.rng.Int64N(int64(d-d/10)+1)), kind: evReconnect, c: c})
		sent++
	}
	f.res.GoAways[reason] += sent
	return sent
}

// sample feeds the load Policy one snapshot: the load over capacity,
// smoothed with the sampler's default time constant.
func (r *replica) sample() {
	f := r.f
	if f.s.Capacity <= 0 {
		return
	}
	raw := r.load / f.s.Capacity
	dt := f.now - r.lastSample
	if r.lastSample == 0 && r.cpu == 0 {
		r.cpu = raw
	} else {
		a := 1 - math.Exp(-dt.Seconds()/load.DefaultTimeConstant.Seconds())
		r.cpu += a * (raw - r.cpu)
	}
	r.lastSample = f.now
	if r.p.Overloaded() {
		r.overloaded += dt
	}
	r.p.Decide(load.Snapshot{At: f.clock(), CPU: r.cpu, CPURaw: raw})
}
