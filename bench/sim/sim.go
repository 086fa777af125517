package sim

import (
	"container/heap"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"time"

	"go.opentelemetry.io/otel/metric/noop"

	"github.com/grpcmgmt/grpcmgmt/goaway"
	"github.com/grpcmgmt/grpcmgmt/load"
)

// Balancer is how a reconnecting client picks its replica.
type Balancer string

// The balancers the simulation models.
const (
	// Random picks a replica uniformly at random: kube-proxy in iptables
	// mode, most TCP network load balancers.
	Random Balancer = "random"
	// P2C draws two replicas at random and picks the one with fewer
	// connections: HAProxy's "balance random" (two draws by default).
	P2C Balancer = "p2c"
	// LeastConn picks a replica with the fewest connections: IPVS lc,
	// HAProxy leastconn.
	LeastConn Balancer = "leastconn"
	// DNS is a client that resolves the name itself and holds one
	// connection to every replica it resolved (grpc-go round_robin over
	// dns:///): after a GOAWAY it reconnects to the same replica and asks
	// for a re-resolution, granted no sooner than ResolveFloor after its
	// last one.
	DNS Balancer = "dns"
)

// Scenario is one simulated run: a fleet of Before replicas, Conns client
// connections placed by Balancer, and at ScaleAt the replica set becomes
// After replicas (added or removed at the end of the list).
type Scenario struct {
	Before, After int
	// Conns is the number of client connections at the start. With DNS
	// there are Conns/Before clients, each connected to every replica.
	Conns    int
	Balancer Balancer
	// Rebalance is each replica's configuration (only the decision fields
	// matter). Off turns rebalancing off (the baseline).
	Rebalance goaway.RebalanceConfig
	Off       bool
	// Interval is the time between two lookups of the replica set by one
	// replica. Default 1s.
	Interval time.Duration
	// DNSLag: each replica (and each DNS client) sees a changed set up to
	// this long after ScaleAt (uniform per replica): DNS caching, CoreDNS's
	// 5 s TTL. Default 5s; negative means none.
	DNSLag time.Duration
	// BalancerLag is when the balancer puts new replicas in rotation (and
	// takes removed ones out) after ScaleAt. Default 0.
	BalancerLag time.Duration
	// ReconnectDelay is the longest time between a GOAWAY and the client's
	// new connection (uniform from a tenth of it). Default 10ms.
	ReconnectDelay time.Duration
	// ResolveFloor is a DNS client's minimum time between re-resolutions.
	// Default 30s (grpc-go, grpc-js, C-core).
	ResolveFloor time.Duration
	// DrainDelay is how long a removed replica waits after ScaleAt before
	// its lame-duck GOAWAY to every connection. Default 1s.
	DrainDelay time.Duration
	// ScaleAt and For: the scale event and the end of the run. Defaults 40s
	// (the replicas' first answers are older than the rebalancer's start-up
	// grace, Settle) and ScaleAt + 60s.
	ScaleAt, For time.Duration
	// Seed makes the run repeatable.
	Seed uint64

	// Load: Heavy connections of weight HeavyWeight (light ones weigh 1),
	// replicas of Capacity (in weight units; 0: no load model), and the
	// load Policy each replica runs (nil: none).
	Heavy       int
	HeavyWeight float64
	Capacity    float64
	Policy      *goaway.PolicyConfig

	// Log, when set, receives the logs of replica 0's deciders (with
	// LogAll, every replica's); the others' are discarded.
	Log    *slog.Logger
	LogAll bool
}

func (s Scenario) withDefaults() Scenario {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&s.Interval, time.Second)
	def(&s.DNSLag, 5*time.Second)
	def(&s.ReconnectDelay, 10*time.Millisecond)
	def(&s.ResolveFloor, 30*time.Second)
	def(&s.DrainDelay, time.Second)
	def(&s.ScaleAt, 40*time.Second)
	def(&s.For, s.ScaleAt+60*time.Second)
	if s.DNSLag < 0 {
		s.DNSLag = 0
	}
	if s.HeavyWeight == 0 {
		s.HeavyWeight = 10
	}
	return s
}

// Result is what a run measured.
type Result struct {
	// SecondsToFairShare is the time from ScaleAt until the added replicas
	// held at least 90 % of their fair share of the connections for 3 s in
	// a row; for a scale-in, until no connection was left on a removed
	// replica. Negative if never.
	SecondsToFairShare float64
	// GoAways counts GOAWAYs by reason ("rebalance", "load", "drain").
	GoAways map[goaway.Reason]int
	// HadToMove is the fewest connection moves that balance the fleet at
	// ScaleAt: the sum over replicas of their connections above the mean.
	HadToMove int
	// GoAwaysPerMovedConn is GoAways["rebalance"] ÷ HadToMove (1.0 is the
	// minimum; a uniform random balancer cannot do better than
	// After ÷ (After − Before) for a scale-out).
	GoAwaysPerMovedConn float64
	// PeakReconnectsPerSec is the most connections that arrived at one
	// replica within one second after ScaleAt; PeakOverFair is that over the
	// mean connections per replica at the end.
	PeakReconnectsPerSec int
	PeakOverFair         float64
	// MaxOverMean is the most connections on one replica over the mean, at
	// the end; PlacementMaxOverMean is the same for the connections placed
	// afresh through the balancer (what the balancer alone achieves).
	MaxOverMean, PlacementMaxOverMean float64
	// NewShare is the added replicas' share of the connections ÷ their fair
	// share, once per second from 0 to For.
	NewShare []float64
	// Episodes is the number of rebalancing episodes started fleet-wide.
	Episodes int
	// HeavyMoves is how many times a heavy connection landed on a different
	// replica; OverloadedSecs the replica-seconds the Policy spent
	// overloaded.
	HeavyMoves     int
	OverloadedSecs float64
	// GoAwaysPerClient (DNS) is the GOAWAYs each client received, on
	// average.
	GoAwaysPerClient float64
	// ScaleAt is the scenario's, defaults applied.
	ScaleAt time.Duration
	// Conns is the number of connections attached to a replica at the end.
	Conns int
	// Events is the number of simulated events (for the curious).
	Events int
}

// event kinds
const (
	evLookup = iota
	evRound
	evReconnect
	evResolve
	evSample
	evScale
	evDrain
	evMeasure
)

type event struct {
	at   time.Duration
	seq  uint64
	kind int
	r    *replica
	c    *conn
	cl   *client
	gen  uint64
}

type queue []event

func (q queue) Len() int { return len(q) }
func (q queue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q queue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *queue) Push(x any)   { *q = append(*q, x.(event)) }
func (q *queue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

// fleet is one run's state.
type fleet struct {
	s     Scenario
	t0    time.Time
	now   time.Duration
	rng   *rand.Rand
	q     queue
	seq   uint64
	reps  []*replica
	rot   []*replica // in the balancer's rotation
	cls   []*client
	sizes [][]string // members of a set of each size
	res   Result

	arrivals [][]int // per replica, per second since ScaleAt
	fairRun  int     // consecutive measures at fair share
	nextID   int
}

// Run simulates s and returns what it measured.
func Run(s Scenario) (Result, error) {
	s = s.withDefaults()
	switch {
	case s.Before < 1 || s.After < 1:
		return Result{}, fmt.Errorf("sim: Before and After must be at least 1, got %d and %d", s.Before, s.After)
	case s.Before == s.After && s.Policy == nil:
		return Result{}, errors.New("sim: Before and After are equal: nothing happens without a load Policy")
	case s.Conns < s.Before:
		return Result{}, fmt.Errorf("sim: Conns (%d) must be at least Before (%d)", s.Conns, s.Before)
	case s.Balancer != Random && s.Balancer != P2C && s.Balancer != LeastConn && s.Balancer != DNS:
		return Result{}, fmt.Errorf("sim: unknown balancer %q", s.Balancer)
	case s.Heavy > 0 && s.Balancer == DNS:
		return Result{}, errors.New("sim: heavy connections are modelled behind L4 balancers only")
	}
	f := &fleet{s: s, t0: time.Unix(1_700_000_000, 0), rng: rand.New(rand.NewPCG(s.Seed, 0x5eed))}
	f.res.GoAways = map[goaway.Reason]int{}
	f.res.ScaleAt = s.ScaleAt
	n := max(s.Before, s.After)
	f.sizes = make([][]string, n+1)
	all := make([]string, n)
	for i := range all {
		all[i] = fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&255, i&255)
	}
	for k := range f.sizes {
		f.sizes[k] = all[:k]
	}
	secs := int((s.For-s.ScaleAt)/time.Second) + 2
	opts := goaway.DecisionOptions{Logger: slog.New(slog.DiscardHandler), MeterProvider: noop.NewMeterProvider()}
	for i := range n {
		r := &replica{f: f, id: i, lag: time.Duration(f.rng.Int64N(int64(s.DNSLag) + 1))}
		o := opts
		o.Rand = rand.New(rand.NewPCG(s.Seed, uint64(i)+1))
		if s.Log != nil && (i == 0 || s.LogAll) {
			o.Logger = s.Log.With("replica", i)
		}
		var err error
		if !s.Off {
			if r.d, err = goaway.NewRebalanceDecider(r, s.Rebalance, o); err != nil {
				return Result{}, err
			}
		}
		if s.Policy != nil {
			if r.p, err = goaway.NewPolicyOn(r, *s.Policy, o); err != nil {
				return Result{}, err
			}
		}
		f.reps = append(f.reps, r)
		f.arrivals = append(f.arrivals, make([]int, secs))
	}
	for _, r := range f.reps[:s.Before] {
		r.alive = true
		f.rot = append(f.rot, r)
		f.push(event{at: time.Duration(f.rng.Int64N(int64(s.Interval))), kind: evLookup, r: r})
		if r.p != nil {
			f.push(event{at: time.Duration(f.rng.Int64N(int64(load.DefaultPeriod))), kind: evSample, r: r})
		}
	}
	f.place()
	f.res.PlacementMaxOverMean = f.placementMaxOverMean()
	f.push(event{at: s.ScaleAt, kind: evScale})
	if s.BalancerLag > 0 {
		f.push(event{at: s.ScaleAt + s.BalancerLag, kind: evScale, gen: 1})
	}
	for t := time.Duration(0); t <= s.For; t += 100 * time.Millisecond {
		f.push(event{at: t, kind: evMeasure})
	}
	f.res.SecondsToFairShare = -1
	for len(f.q) > 0 {
		e := heap.Pop(&f.q).(event)
		if e.at > s.For {
			break
		}
		f.now = e.at
		f.res.Events++
		f.handle(e)
	}
	f.finish()
	return f.res, nil
}

func (f *fleet) push(e event) {
	f.seq++
	e.seq = f.seq
	heap.Push(&f.q, e)
}

func (f *fleet) clock() time.Time { return f.t0.Add(f.now) }

// place connects the starting connections: through the balancer, with
// ages spread over the last minute; DNS clients to every replica.
func (f *fleet) place() {
	s := f.s
	if s.Balancer == DNS {
		k := s.Conns / s.Before
		for i := range k {
			cl := &client{id: i, conns: map[*replica]*conn{},
				lastResolve: -time.Duration(f.rng.Int64N(int64(s.ResolveFloor))),
				lag:         time.Duration(f.rng.Int64N(int64(s.DNSLag) + 1))}
			f.cls = append(f.cls, cl)
			for _, r := range f.rot {
				c := f.newConn(1)
				c.cl = cl
				cl.conns[r] = c
				r.attach(c, -time.Duration(f.rng.Int64N(int64(time.Minute))))
			}
		}
	} else {
		for i := range s.Conns {
			w := 1.0
			if i < s.Heavy {
				w = s.HeavyWeight
			}
			c := f.newConn(w)
			f.pick().attach(c, -time.Duration(f.rng.Int64N(int64(time.Minute))))
		}
	}
	// Ages in arrival order: the list of each replica is oldest first.
	for _, r := range f.reps {
		r.sortByStart()
	}
}

func (f *fleet) newConn(w float64) *conn {
	f.nextID++
	return &conn{id: f.nextID, weight: w, heavy: w > 1}
}

// pick chooses a replica in rotation by the balancer.
func (f *fleet) pick() *replica {
	rot := f.rot
	switch f.s.Balancer {
	case P2C:
		a, b := rot[f.rng.IntN(len(rot))], rot[f.rng.IntN(len(rot))]
		if b.total < a.total {
			return b
		}
		return a
	case LeastConn:
		off := f.rng.IntN(len(rot))
		best := rot[off]
		for i := 1; i < len(rot); i++ {
			if r := rot[(off+i)%len(rot)]; r.total < best.total {
				best = r
			}
		}
		return best
	}
	return rot[f.rng.IntN(len(rot))]
}

// placementMaxOverMean places the same number of connections afresh through
// the balancer (on a copy of the counts) and returns max/mean: the
// unevenness the balancer alone leaves.
func (f *fleet) placementMaxOverMean() float64 {
	if f.s.Balancer == DNS {
		return 1
	}
	m := f.s.After
	counts := make([]int, m)
	rng := rand.New(rand.NewPCG(f.s.Seed, 0xba1))
	for range f.s.Conns {
		var i int
		switch f.s.Balancer {
		case Random:
			i = rng.IntN(m)
		case P2C:
			a, b := rng.IntN(m), rng.IntN(m)
			i = a
			if counts[b] < counts[a] {
				i = b
			}
		case LeastConn:
			off := rng.IntN(m)
			i = off
			for k := 1; k < m; k++ {
				if j := (off + k) % m; counts[j] < counts[i] {
					i = j
				}
			}
		}
		counts[i]++
	}
	mx := 0
	for _, c := range counts {
		mx = max(mx, c)
	}
	return float64(mx) / (float64(f.s.Conns) / float64(m))
}

func (f *fleet) handle(e event) {
	s := f.s
	switch e.kind {
	case evLookup:
		r := e.r
		if !r.alive {
			return
		}
		if r.d != nil {
			size := s.Before
			if f.now >= s.ScaleAt+r.lag {
				size = s.After
			}
			if first, ok := r.d.Observe(goaway.Lookup{At: f.clock(), Members: f.sizes[size]}); ok {
				f.res.Episodes++
				r.gen++
				f.push(event{at: f.now + first, kind: evRound, r: r, gen: r.gen})
			}
		}
		f.push(event{at: f.now + s.Interval, kind: evLookup, r: r})
	case evRound:
		r := e.r
		if !r.alive || e.gen != r.gen {
			return
		}
		if next, ok := r.d.Round(); ok {
			f.push(event{at: f.now + next, kind: evRound, r: r, gen: r.gen})
		}
	case evReconnect:
		f.reconnect(e.c)
	case evResolve:
		f.resolve(e.cl)
	case evSample:
		r := e.r
		if !r.alive {
			return
		}
		r.sample()
		f.push(event{at: f.now + load.DefaultPeriod, kind: evSample, r: r})
	case evScale:
		f.scale(e.gen == 1 || s.BalancerLag == 0, e.gen == 0)
	case evDrain:
		r := e.r
		r.alive = false // lame duck: its deciders stop, DNS clients drop it
		r.GoAwayOlder(r.active, goaway.OldestFirst, goaway.ReasonDrain, 0)
	case evMeasure:
		f.measure()
	}
}

// scale applies the scale event: the replicas come or go (replicas part),
// and the balancer's rotation changes (balancer part; later with a lag).
func (f *fleet) scale(balancer, replicas bool) {
	s := f.s
	if replicas {
		if s.After > s.Before {
			for _, r := range f.reps[s.Before:s.After] {
				r.alive = true
				f.push(event{at: f.now + time.Duration(f.rng.Int64N(int64(s.Interval))), kind: evLookup, r: r})
				if r.p != nil {
					f.push(event{at: f.now + time.Duration(f.rng.Int64N(int64(load.DefaultPeriod))), kind: evSample, r: r})
				}
			}
		} else {
			for _, r := range f.reps[s.After:s.Before] {
				f.push(event{at: f.now + s.DrainDelay, kind: evDrain, r: r})
			}
		}
		f.res.HadToMove = f.hadToMove()
	}
	if balancer {
		f.rot = append(f.rot[:0], f.reps[:s.After]...)
	}
}

// hadToMove is the sum over the replicas after the change of their
// connections above the mean: the fewest moves that balance the fleet.
func (f *fleet) hadToMove() int {
	s := f.s
	total := 0
	for _, r := range f.reps {
		total += r.total
	}
	mean := float64(total) / float64(s.After)
	moves := 0.0
	for i, r := range f.reps {
		if i >= s.After {
			continue // removed: its connections move anyway (drain)
		}
		moves += math.Max(0, float64(r.total)-mean)
	}
	return int(math.Round(moves))
}

// reconnect moves c, sent a GOAWAY, to its next replica.
func (f *fleet) reconnect(c *conn) {
	from := c.rep
	from.detach(c)
	if c.cl != nil { // DNS: the same replica, if it still runs; and re-resolve
		if from.alive {
			from.attach(c, f.now)
			f.arrived(from)
		} else {
			delete(c.cl.conns, from)
		}
		f.requestResolve(c.cl)
		return
	}
	to := f.pick()
	to.attach(c, f.now)
	f.arrived(to)
	if c.heavy && to != from {
		f.res.HeavyMoves++
	}
}

func (f *fleet) arrived(r *replica) {
	if f.now < f.s.ScaleAt {
		return
	}
	if i := int((f.now - f.s.ScaleAt) / time.Second); i < len(f.arrivals[r.id]) {
		f.arrivals[r.id][i]++
	}
}

// requestResolve asks for cl's re-resolution, no sooner than ResolveFloor
// after the last one (a request inside the floor is deferred, not dropped).
func (f *fleet) requestResolve(cl *client) {
	if cl.pending {
		return
	}
	cl.pending = true
	at := max(f.now, cl.lastResolve+f.s.ResolveFloor)
	f.push(event{at: at, kind: evResolve, cl: cl})
}

func (f *fleet) resolve(cl *client) {
	s := f.s
	cl.pending = false
	cl.lastResolve = f.now
	n := s.Before
	if f.now >= s.ScaleAt+cl.lag {
		n = s.After
	}
	for _, r := range f.reps[:n] {
		if _, ok := cl.conns[r]; !ok && r.alive {
			c := f.newConn(1)
			c.cl = cl
			cl.conns[r] = c
			r.attach(c, f.now)
			f.arrived(r)
		}
	}
	for r, c := range cl.conns {
		if r.id >= n {
			r.detach(c)
			delete(cl.conns, r)
		}
	}
}

// measure records the added replicas' share and watches for fair share.
func (f *fleet) measure() {
	s := f.s
	if f.now%time.Second == 0 {
		f.res.NewShare = append(f.res.NewShare, f.newShare())
	}
	if f.now < s.ScaleAt || f.res.SecondsToFairShare >= 0 {
		return
	}
	ok := false
	if s.After > s.Before {
		ok = f.newShare() >= 0.9
	} else {
		left := 0
		for _, r := range f.reps[s.After:s.Before] {
			left += r.total
		}
		ok = left == 0
	}
	if !ok {
		f.fairRun = 0
		return
	}
	f.fairRun++
	if f.fairRun == 30 || (s.After < s.Before) { // 3 s in a row (scale-in: at once)
		held := time.Duration(f.fairRun-1) * 100 * time.Millisecond
		f.res.SecondsToFairShare = (f.now - held - s.ScaleAt).Seconds()
	}
}

// newShare is the added replicas' share of the connections ÷ their fair
// share (0 for a scale-in).
func (f *fleet) newShare() float64 {
	s := f.s
	if s.After <= s.Before {
		return 0
	}
	total, added := 0, 0
	for i, r := range f.reps {
		total += r.total
		if i >= s.Before {
			added += r.total
		}
	}
	if total == 0 {
		return 0
	}
	fair := float64(s.After-s.Before) / float64(s.After)
	return float64(added) / float64(total) / fair
}

func (f *fleet) finish() {
	s := f.s
	total, mx := 0, 0
	for _, r := range f.reps[:s.After] {
		total += r.total
		mx = max(mx, r.total)
	}
	mean := float64(total) / float64(s.After)
	f.res.MaxOverMean = float64(mx) / mean
	for _, r := range f.reps {
		f.res.Conns += r.total
	}
	for _, a := range f.arrivals {
		for _, n := range a {
			f.res.PeakReconnectsPerSec = max(f.res.PeakReconnectsPerSec, n)
		}
	}
	f.res.PeakOverFair = float64(f.res.PeakReconnectsPerSec) / mean
	if f.res.HadToMove > 0 {
		f.res.GoAwaysPerMovedConn = float64(f.res.GoAways[goaway.ReasonRebalance]) / float64(f.res.HadToMove)
	}
	if len(f.cls) > 0 {
		f.res.GoAwaysPerClient = float64(f.res.GoAways[goaway.ReasonRebalance]) / float64(len(f.cls))
	}
	for _, r := range f.reps {
		f.res.OverloadedSecs += r.overloaded.Seconds()
	}
}
