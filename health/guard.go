package health

import (
	"cmp"
	"context"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/grpcmgmt/grpcmgmt/goaway"
)

// peerState is what a round of Checks saw of one member of the set.
type peerState int8

const (
	peerIn          peerState = iota // GuardService SERVING
	peerWant                         // GuardService UNKNOWN: asking for a slot
	peerOut                          // GuardService NOT_SERVING (or "" not SERVING)
	peerUnreachable                  // no answer within Delay/4: counted as out
)

// view is what one round of Checks saw.
type view struct {
	members []string // sorted by compareAddrs; this replica included
	self    string   // the member that answered with this Reporter's instance id; "" if none
	states  map[string]peerState
	// latency is each member's mean call latency, from LatencyHeader
	// (absent: none given).
	latency map[string]time.Duration
	partial bool // a sample of the members was asked (members lists them only)
}

// peerLatency returns the median of the latencies the peers of v gave
// (this replica's own left out), and false if none gave one.
func (v view) peerLatency() (time.Duration, bool) {
	var ls []time.Duration
	for m, l := range v.latency {
		if m != v.self && l > 0 {
			ls = append(ls, l)
		}
	}
	if len(ls) == 0 {
		return 0, false
	}
	slices.Sort(ls)
	if n := len(ls); n%2 == 0 {
		return (ls[n/2-1] + ls[n/2]) / 2, true
	}
	return ls[len(ls)/2], true
}

// latencyPeers is the most members a round asks while this replica is in
// rotation, for their latency alone: a sample chosen at random each round
// (a median of ten is steady enough), so that a large set does not make
// every replica ask every other one each CheckInterval.
const latencyPeers = 10

// tally is a view counted from the point of view of this replica.
type tally struct {
	members     int // the set, this replica included
	serving     int // peers in rotation
	wanting     int // peers asking for a slot (still serving)
	out         int // peers out of rotation (for load or otherwise)
	unreachable int // peers that did not answer (counted as out)
	ahead       int // peers asking for a slot with an address before this replica's
	maxOut      int // Peers.maxOut(members)
}

// count tallies v for self.
func (v view) count(p Peers) tally {
	t := tally{members: len(v.members), maxOut: p.maxOut(len(v.members))}
	for _, m := range v.members {
		if m == v.self {
			continue
		}
		switch v.states[m] {
		case peerIn:
			t.serving++
		case peerWant:
			t.wanting++
			if compareAddrs(m, v.self) < 0 {
				t.ahead++
			}
		case peerOut:
			t.out++
		default:
			t.unreachable++
		}
	}
	return t
}

// mayGoOut is the guard's rule for a replica that wants out: the replicas
// out of rotation, plus those that asked for a slot before it in address
// order, leave a slot free.
func (t tally) mayGoOut() bool { return t.out+t.unreachable+t.ahead < t.maxOut }

// mustReturn is the guard's rule for a replica out of rotation: the set
// needs it back when, with it, more than maxOut replicas are out.
func (t tally) mustReturn() bool { return t.out+t.unreachable+1 > t.maxOut }

func (t tally) attrs() []any {
	return []any{"members", t.members, "peers_serving", t.serving, "peers_wanting_out", t.wanting,
		"peers_out", t.out, "peers_unreachable", t.unreachable, "wanting_out_before_me", t.ahead, "max_out", t.maxOut}
}

// compareAddrs orders host:port addresses by IP (numerically) then port,
// and anything unparseable after them by string: the same order on every
// replica.
func compareAddrs(a, b string) int {
	pa, ea := netip.ParseAddrPort(a)
	pb, eb := netip.ParseAddrPort(b)
	switch {
	case ea == nil && eb == nil:
		return pa.Compare(pb)
	case ea == nil:
		return -1
	case eb == nil:
		return 1
	}
	return cmp.Compare(a, b)
}

// guard asks the replica set, while this replica wants out or is out, which
// replicas are in rotation, and has the Reporter decide (Reporter.decide);
// with the latency comparison on (Peers.LatencyEnter) it also asks a
// sample of the set for their latencies every CheckInterval while in
// rotation. It owns the set's watcher (when there is one), a client
// connection per member, and one timer: no goroutine runs between rounds,
// apart from the watcher's lookups.
type guard struct {
	// Immutable after newGuard:
	r      *Reporter
	cfg    Peers
	w      goaway.Watcher // nil for a fixed list
	log    *slog.Logger
	jitter func() float64 // in [0, 1)
	manual bool           // tests: rounds are run by the test, never scheduled
	ctx    context.Context
	cancel context.CancelFunc

	roundMu sync.Mutex // one round at a time

	mu      sync.Mutex           // guards the fields below; never held while taking the Reporter's mu
	members map[string]time.Time // address -> last listed (zero: a fixed member)
	conns   map[string]*grpc.ClientConn
	self    string // this replica's address, once found
	timer   *time.Timer
	closed  bool
	running sync.WaitGroup // rounds in flight; Add under mu while !closed
	lookErr bool           // the last lookup failed (logged once per run of failures)
}

func newGuard(r *Reporter, cfg Peers, log *slog.Logger) (*guard, error) {
	g := &guard{r: r, cfg: cfg, log: log, jitter: rand.Float64, members: map[string]time.Time{}, conns: map[string]*grpc.ClientConn{}}
	switch {
	case cfg.Watcher != nil:
		g.w = cfg.Watcher
	case cfg.Name != "":
		w, err := goaway.NewDNSWatcher(goaway.DNSWatcherConfig{Name: cfg.Name, Resolver: cfg.Resolver, Interval: cfg.Interval})
		if err != nil {
			return nil, err
		}
		g.w = w
	default:
		for _, a := range cfg.Addrs {
			g.members[a] = time.Time{}
		}
	}
	g.ctx, g.cancel = context.WithCancel(context.Background())
	return g, nil
}

// start starts watching the set.
func (g *guard) start() error {
	if g.w == nil {
		return nil
	}
	return g.w.Watch(g.observe)
}

// observe is the watcher's report function.
func (g *guard) observe(l goaway.Lookup) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return
	}
	if l.Err != nil || len(l.Members) == 0 {
		if !g.lookErr {
			g.lookErr = true
			g.log.Warn("health: guard: looking up the replica set failed; keeping the members already known",
				"name", g.cfg.Name, "members", len(g.members), "err", l.Err)
		}
		return
	}
	if g.lookErr {
		g.lookErr = false
		g.log.Info("health: guard: replica set lookups work again", "name", g.cfg.Name, "members", len(l.Members))
	}
	now := g.r.now()
	for _, m := range l.Members {
		if addr := g.address(m); addr != "" {
			g.members[addr] = now
		}
	}
	for addr, seen := range g.members {
		if now.Sub(seen) > g.cfg.Forget {
			delete(g.members, addr)
			if cc := g.conns[addr]; cc != nil {
				_ = cc.Close()
				delete(g.conns, addr)
			}
			if addr == g.self {
				g.self = ""
			}
		}
	}
}

// address is a member as host:port: as reported, or with Peers.Port for a
// bare host; "" if neither.
func (g *guard) address(m string) string {
	if _, port, err := net.SplitHostPort(m); err == nil && port != "" {
		return m
	}
	if g.cfg.Port > 0 {
		return net.JoinHostPort(m, strconv.Itoa(g.cfg.Port))
	}
	return ""
}

// schedule runs a round at (or soon after) at, replacing any round already
// scheduled. The caller may hold the Reporter's mu.
func (g *guard) schedule(at time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed || g.manual {
		return
	}
	d := max(0, at.Sub(g.r.now()))
	if g.timer == nil {
		g.timer = time.AfterFunc(d, g.fire)
	} else {
		g.timer.Reset(d)
	}
}

// nextRound is when the round after one ending at now should run: one
// CheckInterval later, ±25 %.
func (g *guard) nextRound(now time.Time) time.Time {
	return now.Add(time.Duration(float64(g.cfg.CheckInterval) * (0.75 + 0.5*g.jitter())))
}

// firstRound is when the first round of a want announced at announced may
// run: Delay later, plus up to 50 % at random.
func (g *guard) firstRound(announced time.Time) time.Time {
	return announced.Add(time.Duration(float64(g.cfg.Delay) * (1 + 0.5*g.jitter())))
}

func (g *guard) fire() {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return
	}
	g.running.Add(1)
	g.mu.Unlock()
	defer g.running.Done()
	g.round()
}

// round runs one round of Checks if this replica wants out or is out, and
// has the Reporter decide on what it saw.
func (g *guard) round() {
	g.roundMu.Lock()
	defer g.roundMu.Unlock()
	epoch, st, announced, ok := g.r.guardState()
	if !ok || st == stateIn && !g.cfg.latencyOn() {
		return
	}
	start := g.r.now()
	if st == stateWant && start.Before(announced.Add(g.cfg.Delay)) {
		// Peers may not have seen the announcement for Delay yet.
		g.schedule(announced.Add(g.cfg.Delay))
		return
	}
	limit := 0
	if st == stateIn {
		limit = latencyPeers
	}
	v := g.look(limit)
	g.r.decide(v, start, epoch)
}

// warm makes (and starts connecting) a client for every member, so that
// the round Delay later does not pay for the connections. The caller may
// hold the Reporter's mu.
func (g *guard) warm() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return
	}
	for m := range g.members {
		if g.conns[m] != nil {
			continue
		}
		cc, err := grpc.NewClient(m, g.cfg.DialOptions...)
		if err != nil {
			continue // look logs it
		}
		cc.Connect()
		g.conns[m] = cc
	}
}

// look asks every member of the set for its GuardService status, all at
// once, each within Delay/4 (a member that does not answer in time counts
// as out of rotation); or, with limit > 0, at most limit members chosen at
// random (this replica's own address among them once it is known).
func (g *guard) look(limit int) view {
	g.mu.Lock()
	members := slices.SortedFunc(maps.Keys(g.members), compareAddrs)
	partial := false
	if limit > 0 && len(members) > limit {
		rand.Shuffle(len(members), func(i, j int) { members[i], members[j] = members[j], members[i] })
		picked := members[:limit]
		if g.self != "" && !slices.Contains(picked, g.self) {
			picked[0] = g.self
		}
		members = slices.SortedFunc(slices.Values(picked), compareAddrs)
		partial = true
	}
	conns := make([]*grpc.ClientConn, len(members))
	for i, m := range members {
		cc := g.conns[m]
		if cc == nil {
			var err error
			if cc, err = grpc.NewClient(m, g.cfg.DialOptions...); err != nil {
				g.log.Warn("health: guard: cannot make a client for a peer; counting it as out of rotation", "peer", m, "err", err)
				continue
			}
			g.conns[m] = cc
		}
		conns[i] = cc
	}
	g.mu.Unlock()

	ctx, cancel := context.WithTimeout(g.ctx, g.cfg.Delay/4)
	defer cancel()
	states := make([]peerState, len(members))
	selfs := make([]bool, len(members))
	lats := make([]time.Duration, len(members))
	var wg sync.WaitGroup
	for i, cc := range conns {
		if cc == nil {
			states[i] = peerUnreachable
			continue
		}
		wg.Go(func() { states[i], selfs[i], lats[i] = g.check(ctx, cc) })
	}
	wg.Wait()

	v := view{members: members, states: make(map[string]peerState, len(members)), latency: map[string]time.Duration{}, partial: partial}
	for i, m := range members {
		v.states[m] = states[i]
		if lats[i] > 0 {
			v.latency[m] = lats[i]
		}
		if selfs[i] && v.self == "" {
			v.self = m
		}
	}
	g.mu.Lock()
	if v.self != "" && v.self != g.self {
		g.log.Info("health: guard: found this replica in its set", "self", v.self, "members", len(members))
		g.self = v.self
	} else if v.self == "" && g.self != "" && slices.Contains(members, g.self) {
		// This replica did not answer itself in time: it is still the
		// member it was.
		v.self = g.self
	}
	g.mu.Unlock()
	return v
}

// check asks one member for its GuardService status, and reports whether
// the answer came from this Reporter and the latency it gave (0: none).
func (g *guard) check(ctx context.Context, cc *grpc.ClientConn) (peerState, bool, time.Duration) {
	var hdr metadata.MD
	hc := healthpb.NewHealthClient(cc)
	resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: GuardService}, grpc.Header(&hdr))
	self := slices.Contains(hdr.Get(InstanceHeader), g.r.instance)
	var lat time.Duration
	if vs := hdr.Get(LatencyHeader); len(vs) == 1 {
		if us, perr := strconv.ParseInt(vs[0], 10, 64); perr == nil && us > 0 && us < int64(time.Hour/time.Microsecond) {
			lat = time.Duration(us) * time.Microsecond
		}
	}
	if status.Code(err) == codes.NotFound {
		// A replica that does not know the guard: its whole-server status.
		if resp, err = hc.Check(ctx, &healthpb.HealthCheckRequest{}); err == nil && resp.GetStatus() != Serving {
			return peerOut, self, 0
		}
	}
	if err != nil {
		return peerUnreachable, self, 0
	}
	switch resp.GetStatus() {
	case Serving:
		return peerIn, self, lat
	case healthpb.HealthCheckResponse_UNKNOWN:
		return peerWant, self, lat
	}
	return peerOut, self, lat
}

// close stops the watcher and the rounds, waits for a round in flight, and
// closes the connections to the peers. The caller must not hold the
// Reporter's mu.
func (g *guard) close() {
	g.mu.Lock()
	g.closed = true
	if g.timer != nil {
		g.timer.Stop()
	}
	g.mu.Unlock()
	g.cancel()
	if g.w != nil {
		_ = g.w.Close()
	}
	g.running.Wait()
	g.roundMu.Lock() // a round run by a test
	defer g.roundMu.Unlock()
	g.mu.Lock()
	defer g.mu.Unlock()
	for addr, cc := range g.conns {
		_ = cc.Close()
		delete(g.conns, addr)
	}
}
