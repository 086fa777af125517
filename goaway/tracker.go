package goaway

import (
	"cmp"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"

	"github.com/grpcmgmt/grpcmgmt/internal/subscribers"
)

// DefaultGrace is the grace period when Config.Grace is zero: the default
// MAX_CONNECTION_AGE_GRACE of the maxage package, so a GOAWAY from this
// package and one from the age policy give calls the same time to finish.
const DefaultGrace = 30 * time.Second

// debugPrefix starts the debug data of every inserted GOAWAY; the reason
// follows. It lets a packet capture tell our GOAWAYs from grpc-go's.
const debugPrefix = "grpcmgmt: "

// Reason says why a GOAWAY was sent. It is the "reason" attribute of the
// grpcmgmt.goaway.sent metric and the debug data of the frame, so keep the
// set small and fixed (no per-connection values).
type Reason string

// Reasons used by this package and the Manager.
const (
	ReasonManual    Reason = "manual"    // a direct GoAway call
	ReasonLoad      Reason = "load"      // the load Policy
	ReasonMaxCalls  Reason = "max_calls" // Config.MaxCallsPerConn reached
	ReasonDrain     Reason = "drain"     // lame-duck shutdown
	ReasonRebalance Reason = "rebalance" // fair-share rebalancing
)

// Selector chooses which connections GoAwayN ends.
type Selector int

// Selectors. The zero Selector means OldestFirst.
const (
	// OldestFirst ends the connections that were opened first.
	OldestFirst Selector = iota + 1
	// BusiestFirst ends the connections with the most calls per second of
	// their life: they move the most load.
	BusiestFirst
	// Random ends connections chosen uniformly at random.
	Random
)

// String returns the selector's name.
func (s Selector) String() string {
	switch s {
	case 0, OldestFirst:
		return "oldest_first"
	case BusiestFirst:
		return "busiest_first"
	case Random:
		return "random"
	}
	return fmt.Sprintf("Selector(%d)", int(s))
}

// Config configures a Tracker. The zero value means every default.
type Config struct {
	// Grace is how long a connection may stay open after its GOAWAY before
	// it is closed, whether or not the client has finished. Default
	// DefaultGrace (30s; the Manager passes the maxage grace); allowed
	// 1ms and up (maxage.Off, the largest duration, never closes).
	Grace time.Duration
	// MaxCallsPerConn sends a GOAWAY (ReasonMaxCalls) to a connection when
	// its client has started this many calls on it, like nginx
	// keepalive_requests or Envoy max_requests_per_connection. Calls the
	// client starts before it sees the GOAWAY are still served. Default 0:
	// no limit.
	MaxCallsPerConn uint64
	// Logger receives a debug record per GOAWAY and hard close. Default
	// slog.Default().
	Logger *slog.Logger
	// MeterProvider is where the metrics are recorded. Default
	// otel.GetMeterProvider().
	MeterProvider metric.MeterProvider
}

// ConnInfo is a snapshot of one live connection.
type ConnInfo struct {
	// ID identifies the connection in this Tracker (1, 2, ...; never reused).
	ID uint64
	// RemoteAddr and LocalAddr are the connection's addresses.
	RemoteAddr, LocalAddr net.Addr
	// Start is when the server finished the transport handshake.
	Start time.Time
	// Calls is the number of calls (streams) the client has started.
	Calls uint64
	// Draining is true once a GOAWAY was requested on the connection, by
	// this package or by grpc-go itself (max age, GracefulStop).
	Draining bool
}

// Tracker knows every live connection of the servers whose credentials it
// wraps, and sends GOAWAY on the ones it is told to. Create it with
// NewTracker and install it with WrapCredentials.
type Tracker struct {
	// Immutable after NewTracker:
	cfg   Config
	log   *slog.Logger
	m     *metrics
	epoch time.Time // connections' start times are kept as offsets from it

	nextID atomic.Uint64

	mu    sync.Mutex // guards conns
	conns map[uint64]*conn
	// gen grows (under mu) whenever a connection is added to conns or
	// removed, and when Audit first finds untracked calls: see Generation
	// and OnGeneration.
	gen atomic.Uint64
	// closedCalls counts the calls of connections no longer in conns (see
	// conn.sawHeaders for the race it tolerates).
	closedCalls atomic.Uint64

	auditMu   sync.Mutex // guards untracked
	untracked uint64     // calls Audit found on untracked connections

	// The functions OnGeneration registered, called after gen moves.
	gens subscribers.List[func(gen uint64)]
}

// NewTracker validates cfg and returns a Tracker.
func NewTracker(cfg Config) (*Tracker, error) {
	if cfg.Grace == 0 {
		cfg.Grace = DefaultGrace
	}
	if cfg.Grace < time.Millisecond {
		return nil, fmt.Errorf("goaway: Config.Grace must be at least 1ms (0 means %v), got %v", DefaultGrace, cfg.Grace)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MeterProvider == nil {
		cfg.MeterProvider = otel.GetMeterProvider()
	}
	m, err := newMetrics(cfg.MeterProvider)
	if err != nil {
		return nil, err
	}
	return &Tracker{
		cfg:   cfg,
		log:   cfg.Logger.With("component", "goaway"),
		m:     m,
		epoch: time.Now(),
		conns: map[uint64]*conn{},
	}, nil
}

// since returns the time since t was made (monotonic).
func (t *Tracker) since() time.Duration { return time.Since(t.epoch) }

// track wraps nc, the connection a server handshake returned, and starts
// tracking it. The connection grpc-go gets is one object: a readyConn over
// a plain socket (Linux), else a conn, as a sysConn when nc exposes its
// file descriptor.
func (t *Tracker) track(nc net.Conn) net.Conn {
	var raw syscall.RawConn
	sc, isSys := nc.(syscall.Conn)
	if isSys {
		if r, err := sc.SyscallConn(); err == nil {
			raw = r
		}
	}
	var c *conn
	var out net.Conn
	if r := newReadyConn(nc, raw); r != nil {
		c, out = &r.conn, r
	} else {
		c = new(conn)
		out = c
		if isSys {
			out = sysConn{c}
		}
	}
	c.Conn, c.t, c.raw = nc, t, raw
	c.id = t.nextID.Add(1)
	c.start = int64(t.since())
	c.prefaceLeft = clientPrefaceLen
	t.mu.Lock()
	t.conns[c.id] = c
	g := t.gen.Add(1)
	t.mu.Unlock()
	t.moved(g) // before the server has the connection: before its first call
	indexAdd(c)
	t.m.connOpened()
	return out
}

// remove forgets c (see conn.forget); how is "closed" (the wrapper's
// Close), "io_error" or "socket_closed".
func (t *Tracker) remove(c *conn, how string) {
	indexRemove(c)
	t.mu.Lock()
	delete(t.conns, c.id)
	g := t.gen.Add(1)
	t.closedCalls.Add(c.calls.Load())
	t.mu.Unlock()
	t.moved(g)
	t.m.connClosed(c.age(), c.draining())
	if how != "closed" {
		t.log.Debug("goaway: connection ended without its Close, forgotten", "conn", c.id, "how", how,
			"age", c.age(), "calls", c.calls.Load())
	}
}

// sweep forgets the connections whose socket was closed under the wrapper
// (grpc-go closes the raw connection, not the one the Tracker handed it,
// when it cannot set up its transport after the handshake). Most such
// connections are forgotten at once, when a read or write fails; this
// catches the rest. It runs before every method that reads the set of
// connections, at the cost of one lock-free check per connection.
func (t *Tracker) sweep() {
	var dead []*conn
	t.mu.Lock()
	for _, c := range t.conns {
		if c.socketClosed() {
			dead = append(dead, c)
		}
	}
	t.mu.Unlock()
	for _, c := range dead {
		c.forget("socket_closed")
	}
}

// Len returns the number of live connections. A connection counts from the
// end of its transport handshake until it is closed, its peer goes away
// (a read or write fails), or its socket is closed by whoever owns it.
func (t *Tracker) Len() int {
	t.sweep()
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.conns)
}

// Count returns the number of live connections (as Len does), their
// generation (as Generation returns it, read with the count), and whether
// the count is complete: false once Audit has found calls on connections
// the Tracker does not wrap. It implements orca.Connections, with
// OnGeneration: the ORCA Reporter skips a call's per-connection lookup
// while every connection counted has had its report
// (orca.WithConnections).
func (t *Tracker) Count() (n int, gen uint64, complete bool) {
	t.sweep()
	t.mu.Lock()
	n, gen = len(t.conns), t.gen.Load()
	t.mu.Unlock()
	// After the generation: Audit marks the calls untracked before it
	// moves the generation, so a count that calls it complete after the
	// mark has the generation from before the move, and goes stale.
	t.auditMu.Lock()
	complete = t.untracked == 0
	t.auditMu.Unlock()
	return n, gen, complete
}

// Generation returns a number that changes whenever a connection is added
// to the live set or leaves it, and when Audit first finds calls on
// connections the Tracker does not wrap. Equal generations mean the same
// live connections. It is one atomic load.
func (t *Tracker) Generation() uint64 { return t.gen.Load() }

// OnGeneration registers f, called with the new generation (as Generation
// returns it) every time it moves: after the move and, for a connection
// added, before the server has the connection, so before any call can
// arrive on it. f runs on the goroutine that moved it (a connection's
// handshake or end, Audit): it must be quick and must not block. Calls may
// overlap, and may come out of the generations' order. cancel stops them
// and is idempotent; a call under way may still finish after it returns.
// With Count, it implements orca.Connections.
func (t *Tracker) OnGeneration(f func(gen uint64)) (cancel func()) {
	if f == nil {
		return func() {}
	}
	return t.gens.Add(f)
}

// moved tells the OnGeneration functions that the generation moved to g.
func (t *Tracker) moved(g uint64) {
	for f := range t.gens.All() {
		f(g)
	}
}

// Conns returns a snapshot of every live connection, oldest first.
func (t *Tracker) Conns() []ConnInfo {
	t.sweep()
	t.mu.Lock()
	out := make([]ConnInfo, 0, len(t.conns))
	for _, c := range t.conns {
		out = append(out, c.info())
	}
	t.mu.Unlock()
	slices.SortFunc(out, func(a, b ConnInfo) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// GoAway sends a GOAWAY to the connection with the given ID and closes it
// after the grace period if the client has not closed it by then. It
// returns false if the connection is gone or already draining. It never
// blocks on the network.
func (t *Tracker) GoAway(id uint64, r Reason) bool {
	t.mu.Lock()
	c := t.conns[id]
	t.mu.Unlock()
	return c != nil && c.goAway(r)
}

// GoAwayN sends a GOAWAY to up to n connections that are not draining yet,
// chosen by sel, and returns how many it sent. n <= 0 sends none; a zero or
// unknown sel means OldestFirst.
func (t *Tracker) GoAwayN(n int, sel Selector, r Reason) int {
	return t.goAwayN(n, sel, r, 0)
}

// goAwayN is GoAwayN among the connections at least minAge old (scaled by
// their share of the load: Rank).
func (t *Tracker) goAwayN(n int, sel Selector, r Reason, minAge time.Duration) int {
	if n <= 0 {
		return 0
	}
	conns := t.candidates()
	now := t.since()
	cands := make([]Candidate, len(conns))
	for i, c := range conns {
		cands[i] = Candidate{Age: now - time.Duration(c.start), Calls: c.calls.Load()}
	}
	sent := 0
	for _, i := range Rank(cands, sel, minAge, rand.Shuffle) {
		if sent == n {
			break
		}
		if conns[i].goAway(r) {
			sent++
		}
	}
	return sent
}

// GoAwayAll sends a GOAWAY to every connection that is not draining yet
// and returns how many it sent. Use it for lame-duck shutdown, never as a
// load reaction: every client would reconnect at once.
func (t *Tracker) GoAwayAll(r Reason) int {
	sent := 0
	for _, c := range t.candidates() {
		if c.goAway(r) {
			sent++
		}
	}
	return sent
}

// Active returns the number of live connections that are not draining.
func (t *Tracker) Active() int {
	t.sweep()
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, c := range t.conns {
		if !c.draining() {
			n++
		}
	}
	return n
}

// candidates returns the live connections not draining, oldest first.
func (t *Tracker) candidates() []*conn {
	t.sweep()
	t.mu.Lock()
	out := make([]*conn, 0, len(t.conns))
	for _, c := range t.conns {
		if !c.draining() {
			out = append(out, c)
		}
	}
	t.mu.Unlock()
	slices.SortFunc(out, func(a, b *conn) int { return cmp.Compare(a.id, b.id) })
	return out
}

// wrote records a GOAWAY written (err nil) or lost to a broken connection.
func (t *Tracker) wrote(c *conn, err error) {
	r := c.ds.Load().req
	if err != nil {
		t.log.Debug("goaway: write failed", "conn", c.id, "remote", c.RemoteAddr(), "reason", r, "err", err)
		c.ioFailed(err)
		return
	}
	t.m.sent(r)
	t.log.Debug("goaway: sent", "conn", c.id, "remote", c.RemoteAddr(), "reason", r,
		"age", c.age(), "calls", c.calls.Load())
}

// suppressed records a GOAWAY not sent because grpc-go sent its own first.
func (t *Tracker) suppressed(c *conn) {
	r := c.ds.Load().req
	t.m.suppress(r)
	t.log.Debug("goaway: not sent, grpc-go already sent one", "conn", c.id, "remote", c.RemoteAddr(), "reason", r)
}

// hardClosing records a connection closed at the end of its grace.
func (t *Tracker) hardClosing(c *conn) {
	t.m.hardClose()
	t.log.Debug("goaway: grace expired, closing connection", "conn", c.id, "remote", c.RemoteAddr(),
		"reason", c.ds.Load().req, "grace", t.cfg.Grace)
}
