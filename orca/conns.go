package orca

import (
	"context"
	"sync"
	"sync/atomic"
	"unsafe"

	"google.golang.org/grpc/peer"
)

// maxConns bounds the connections the Reporter remembers. Past it, a call
// on a connection it does not know carries the report, as a connection's
// first call would: memory stays bounded whatever clients do (a server
// behind grpc.Server.ServeHTTP, where every call is its own "connection",
// reports on every call), and no client goes without reports.
const maxConns = 1 << 16

// conns remembers, for each client connection that had a unary call in the
// last two epochs, the epoch in which one of its calls last carried the
// per-call report. An epoch is Config.PerCallInterval long (rounded up to
// whole sampler periods); the sampler goroutine starts the next one
// (advance) and forgets the connections that had no report in the one
// before.
//
// A connection is known by its *peer.Peer: grpc-go puts one in the
// connection's context when it starts serving it, and every call's context
// derives from that one, so every call of a connection carries the same
// pointer (grpc-go 1.72 to 1.85 at least; read with peer.FromContext). A
// call pays a context lookup, a look in recent (or, when the connection is
// not there, a lock-free map load) and an atomic load; only the calls that
// report write, once per connection per epoch. With a source of the open
// connections (src), the calls of an epoch in which every open connection
// has reported skip all that (skip.go).
//
// recent is a direct-mapped cache of m: slot slotOf(p) holds the entry of
// the connection last looked up there. It is there for the cache misses,
// not the instructions: between two calls of a connection the server
// allocates a few KiB per call and collects, so what a call reads of m
// (its trie's nodes, the entry, the connReport) has usually left the CPU's
// caches by the next call. A hit reads two lines (the slot and the
// connReport), sync.Map's walk four or five (in a CPU profile of a pinned
// server, bench/NOTES.md "Ninth session", the lookup was ≈ 0.19 µs a call
// where a warm benchmark reads 20 ns). An entry that advance forgets
// leaves its slot too: advance clears the slot, and a due that put the
// entry back just then takes it out again.
type conns struct {
	epoch atomic.Uint64 // the current epoch; starts at 1 (0: never reported)
	// The skip (see skip): what every call reads of it is here, on the
	// Reporter's first cache line with epoch.
	target atomic.Uint64 // the tally at which calls skip; 0: none skips
	gen0   atomic.Uint64 // src's generation when target was set
	tally  atomic.Uint64 // the current epoch's reports
	gen    atomic.Uint64 // the latest generation src pushed (OnGeneration)

	src      Connections // nil: never skip; immutable after init
	stopGens func()      // cancels the OnGeneration of watch; nil without src

	n      atomic.Int64 // entries in m
	m      sync.Map     // *peer.Peer → *connReport
	recent [recentSlots]atomic.Pointer[connReport]
}

// recentSlots is the size of conns.recent: 2 KiB of pointers, enough that
// a server's busy connections rarely share a slot.
const (
	recentBits  = 8
	recentSlots = 1 << recentBits
)

// slotOf returns p's slot in conns.recent: the high bits of its address
// times a large odd constant (Fibonacci hashing; the address is only
// hashed, never turned back into a pointer, and Go's heap does not move).
func slotOf(p *peer.Peer) int {
	return int((uint64(uintptr(unsafe.Pointer(p))) * 0x9E3779B97F4A7C15) >> (64 - recentBits))
}

// connReport is one connection's entry in conns.
type connReport struct {
	p     *peer.Peer    // the connection's key (for conns.recent)
	epoch atomic.Uint64 // the epoch of its last report
}

// init starts the first epoch of a conns that is part of another struct;
// src, when not nil, turns the skip on.
func (c *conns) init(src Connections) {
	c.src = src
	c.epoch.Store(1)
	c.tally.Store(tallyOf(1))
}

// watch has src push its generations (OnGeneration) from now on, and
// takes the current one; unwatch stops it. Without src, neither does
// anything. A generation missed before watch leaves gen behind gen0, so
// no call skips: never wrong, only slower.
func (c *conns) watch() {
	if c.src == nil {
		return
	}
	c.stopGens = c.src.OnGeneration(c.generation)
	_, g, _ := c.src.Count()
	c.generation(g)
}

func (c *conns) unwatch() {
	if c.stopGens != nil {
		c.stopGens()
	}
}

// generation records g, a generation src pushed. Pushes may come out of
// order; the largest stays.
func (c *conns) generation(g uint64) {
	for {
		cur := c.gen.Load()
		if g <= cur || c.gen.CompareAndSwap(cur, g) {
			return
		}
	}
}

// due reports whether the unary call of ctx is the first of its connection
// to end in this epoch, and so carries the report. A call whose connection
// is unknown (no peer in ctx) or cannot be remembered (maxConns) does.
func (c *conns) due(ctx context.Context) bool {
	if c.skip() {
		return false
	}
	e := c.epoch.Load()
	p, ok := peer.FromContext(ctx)
	if !ok {
		c.taint(e)
		return true
	}
	slot := &c.recent[slotOf(p)]
	r := slot.Load()
	if r == nil || r.p != p {
		v, ok := c.m.Load(p)
		if !ok {
			if c.n.Load() >= maxConns {
				c.taint(e)
				return true
			}
			var loaded bool
			if v, loaded = c.m.LoadOrStore(p, &connReport{p: p}); !loaded {
				c.n.Add(1)
				c.taint(e)
			}
		}
		r = v.(*connReport)
		slot.Store(r)
		// advance may have forgotten r between the map's load and the
		// store: then take it out again, so that the slot never keeps
		// an entry the map no longer has (a miss pays a second load).
		if cur, ok := c.m.Load(p); !ok || cur != any(r) {
			slot.CompareAndSwap(r, nil)
		}
	}
	last := r.epoch.Load()
	if last == e || !r.epoch.CompareAndSwap(last, e) {
		return false
	}
	c.reported(e)
	return true
}

// advance starts the next epoch and forgets the connections without a
// report in the last one (closed, or idle: a connection that comes back is
// new again, and its first call reports). Sampler goroutine only.
func (c *conns) advance() {
	c.target.Store(0) // before the epoch moves: see skip
	e := c.epoch.Add(1)
	c.tally.Store(tallyOf(e))
	c.startSkip(e)
	c.m.Range(func(k, v any) bool {
		if r := v.(*connReport); r.epoch.Load()+1 < e && c.m.CompareAndDelete(k, v) {
			c.n.Add(-1)
			c.recent[slotOf(r.p)].CompareAndSwap(r, nil)
		}
		return true
	})
}
