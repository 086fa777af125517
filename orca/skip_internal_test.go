package orca

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc/peer"
)

// openConns is a Connections whose open connections the test sets: what a
// goaway.Tracker would count.
type openConns struct {
	mu       sync.Mutex
	n        int
	complete bool
	gen      atomic.Uint64
	push     func(uint64) // the OnGeneration function; guarded by mu
}

func (o *openConns) Count() (int, uint64, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.n, o.gen.Load(), o.complete
}

// OnGeneration keeps one f at a time, as the Reporter registers one.
func (o *openConns) OnGeneration(f func(uint64)) func() {
	o.mu.Lock()
	o.push = f
	o.mu.Unlock()
	return func() {
		o.mu.Lock()
		o.push = nil
		o.mu.Unlock()
	}
}

// change adds d open connections (d < 0 closes some), and pushes the
// generation as a goaway.Tracker does: after the move, before a new
// connection's first call.
func (o *openConns) change(d int) {
	o.mu.Lock()
	o.n += d
	g := o.gen.Add(1)
	push := o.push
	o.mu.Unlock()
	if push != nil {
		push(g)
	}
}

// skippingConns returns a conns with the skip on, over n open connections
// that conns already knows (each had a call in its first epoch, which their
// being new to it tainted), and the contexts of calls on them.
func skippingConns(n int) (*conns, *openConns, []context.Context) {
	o := &openConns{n: n, complete: true}
	c := &conns{}
	c.init(o)
	c.watch()
	ctxs := manyConns(n)
	reportsIn(c, ctxs, 1)
	return c, o, ctxs
}

// Once every open connection has reported in an epoch, no call looks its
// connection up; a connection that opens then has its first call report,
// and a close stops the skip until the next epoch.
func TestSkipOnceEveryConnectionReported(t *testing.T) {
	c, o, ctxs := skippingConns(2)
	c.advance() // the count: two connections
	if c.skip() {
		t.Fatal("skipping before any report")
	}
	if !c.due(ctxs[0]) || c.skip() {
		t.Fatal("one report of two: want it due, and no skip yet")
	}
	if !c.due(ctxs[1]) || !c.skip() {
		t.Fatal("both connections reported: want the second due, then the skip on")
	}
	// While skipping, due does not look at the call at all: a call on a
	// connection it never saw is not due. (A goaway.Tracker moves the
	// generation before a new connection's first call: next.)
	if c.due(connCtx(&peer.Peer{})) {
		t.Fatal("skipping, yet a call was due")
	}

	o.change(+1)
	fresh := connCtx(&peer.Peer{})
	if c.skip() || !c.due(fresh) || c.due(fresh) {
		t.Fatal("a connection opened while skipping: want the skip off and its first call (only) due")
	}
	if c.due(ctxs[0]) || c.due(ctxs[1]) {
		t.Fatal("the skip off: the connections that reported this epoch were due again")
	}

	c.advance() // three open connections
	for i, ctx := range append(ctxs, fresh) {
		if !c.due(ctx) {
			t.Fatalf("epoch 3: connection %d's first call not due", i)
		}
	}
	if !c.skip() {
		t.Fatal("epoch 3: all three reported, no skip")
	}
	o.change(-1)
	if c.skip() {
		t.Fatal("a connection closed: still skipping")
	}
	c.advance() // two open connections, three known
	if !c.due(ctxs[0]) || c.skip() {
		t.Fatal("epoch 4: want the first call due and no skip after one report")
	}
}

// A call on a connection conns did not know (a server's ServeHTTP calls
// each have their own) counts a report but taints the epoch: the open
// connections still get theirs. Without the taint, the one report would
// match the one open connection and its call would skip.
func TestSkipTaintedByUnknownConnection(t *testing.T) {
	c, _, ctxs := skippingConns(1)
	c.advance()
	if !c.due(connCtx(&peer.Peer{})) {
		t.Fatal("a call on a connection never seen was not due")
	}
	if c.skip() || !c.due(ctxs[0]) {
		t.Fatal("after a call on an unknown connection: the open connection's first call was not due")
	}
	if c.skip() {
		t.Fatal("a tainted epoch skips")
	}
	c.advance() // the unknown connection is remembered now, the open one reports first
	if !c.due(ctxs[0]) || !c.skip() {
		t.Fatal("a clean epoch: want the open connection due, then the skip on")
	}
	// Calls without a peer, and past maxConns, taint too.
	c.advance()
	if !c.due(context.Background()) || !c.due(ctxs[0]) || c.skip() {
		t.Fatal("a call without a peer: want it due, the open connection due, and no skip")
	}
}

// A report made as the epoch turns counts in none (it would otherwise
// count in the next, for a connection that has not reported in it); an
// incomplete count never skips.
func TestSkipCountsOnlyTheEpochsOwn(t *testing.T) {
	c, _, ctxs := skippingConns(1)
	e := c.epoch.Load()
	c.advance()
	before := c.tally.Load()
	c.reported(e) // a due that read the old epoch, and counts after the turn
	c.taint(e)
	if c.tally.Load() != before {
		t.Fatalf("a report or taint of epoch %d changed epoch %d's tally", e, c.epoch.Load())
	}
	if !c.due(ctxs[0]) || !c.skip() {
		t.Fatal("want the open connection due, then the skip on")
	}

	c, o, ctxs := skippingConns(1)
	o.complete = false
	c.advance()
	if !c.due(ctxs[0]) || c.skip() {
		t.Fatal("incomplete count: want the call due and no skip")
	}
}

// Calls from several goroutines while epochs advance and connections open
// (run with -race): afterwards each quiet epoch gives one report per
// connection and no skip before the last of them, and the second skips
// after it.
func TestSkipConcurrent(t *testing.T) {
	c, o, ctxs := skippingConns(2 * recentSlots)
	callWhileAdvancing(c, ctxs, 200, func(i int) {
		if i%10 == 0 {
			o.change(0) // an open and a close
		}
	})
	// The first quiet epoch may meet connections the concurrent ones
	// forgot (their calls taint it); the second knows them all.
	for epoch := range 2 {
		c.advance()
		if reports := reportsIn(c, ctxs[:len(ctxs)-1], 1); reports != len(ctxs)-1 {
			t.Fatalf("quiet epoch %d: %d reports on %d connections, want one each", epoch+1, reports, len(ctxs)-1)
		}
		if c.skip() {
			t.Fatalf("quiet epoch %d: skipping with one connection still to report", epoch+1)
		}
		if !c.due(ctxs[len(ctxs)-1]) {
			t.Fatalf("quiet epoch %d: the last connection's call not due", epoch+1)
		}
	}
	if !c.skip() {
		t.Fatal("second quiet epoch: every connection reported, no skip")
	}
}

// BenchmarkConnsSkip is a call that does not report, as BenchmarkConnsDue,
// with the skip on (every open connection has reported): warm, it reads
// three words of conns and the source's generation instead of the
// connection's entry.
func BenchmarkConnsSkip(b *testing.B) {
	c, _, ctxs := skippingConns(1)
	c.advance()
	c.due(ctxs[0])
	if !c.skip() {
		b.Fatal("the skip is not on")
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if c.due(ctxs[0]) {
				b.Fatal("reported twice in one epoch")
			}
		}
	})
}

// The skip follows the generation the source pushed: until the push of a
// move comes, no call skips (gen is behind the count's), and pushes that
// come out of order leave the largest. unwatch stops the pushes.
func TestSkipFollowsPushedGeneration(t *testing.T) {
	c, o, ctxs := skippingConns(2)
	o.gen.Add(1) // a move whose push has not come yet
	c.advance()
	for _, ctx := range ctxs {
		if !c.due(ctx) {
			t.Fatal("a connection's first call of the epoch was not due")
		}
	}
	if c.skip() {
		t.Fatal("every connection reported, but the count's generation was never pushed: want no skip")
	}
	c.generation(o.gen.Load())
	if !c.skip() {
		t.Fatal("the count's generation pushed, every connection reported: want the skip on")
	}
	c.generation(o.gen.Load() - 1) // a push that comes late
	if !c.skip() || c.gen.Load() != o.gen.Load() {
		t.Fatalf("an older generation pushed after a newer one: gen %d, want %d kept and the skip on", c.gen.Load(), o.gen.Load())
	}
	c.unwatch()
	o.mu.Lock()
	pushing := o.push != nil
	o.mu.Unlock()
	if pushing {
		t.Fatal("unwatch left the OnGeneration function registered")
	}
}
