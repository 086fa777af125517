package orca

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc/peer"
)

// newConns returns a conns of its own (the Reporter's is part of it).
func newConns() *conns {
	c := &conns{}
	c.init(nil)
	return c
}

// connCtx returns the context of a call on the connection p.
func connCtx(p *peer.Peer) context.Context { return peer.NewContext(context.Background(), p) }

// One report per connection per epoch; a connection without a report in
// the last epoch is forgotten at the next, and reports again when it comes
// back.
func TestConnsEpochs(t *testing.T) {
	c := newConns()
	a, b := connCtx(&peer.Peer{}), connCtx(&peer.Peer{})
	if !c.due(a) || c.due(a) || !c.due(b) || c.due(b) {
		t.Fatal("epoch 1: want a report on each connection's first call only")
	}
	c.advance() // epoch 2: only a calls
	if !c.due(a) || c.due(a) {
		t.Fatal("epoch 2: want a report on a's first call only")
	}
	if c.n.Load() != 2 {
		t.Fatalf("epoch 2: %d connections remembered, want 2 (b reported in the last epoch)", c.n.Load())
	}
	c.advance() // epoch 3: b's last report is two epochs old
	if c.n.Load() != 1 {
		t.Fatalf("epoch 3: %d connections remembered, want 1 (b forgotten)", c.n.Load())
	}
	if !c.due(b) || c.due(b) {
		t.Fatal("epoch 3: want a report on b's first call after it was forgotten, and only then")
	}
	wantForgotten(t, c)
}

// Past maxConns, calls on connections not remembered report, and nothing
// more is remembered; a call without a connection in its context reports.
func TestConnsBounded(t *testing.T) {
	c := newConns()
	for range maxConns {
		if !c.due(connCtx(&peer.Peer{})) {
			t.Fatal("a new connection's first call did not report")
		}
	}
	extra := connCtx(&peer.Peer{})
	for i := range 2 {
		if !c.due(extra) {
			t.Errorf("past maxConns: call %d of a connection not remembered did not report, want every call to", i+1)
		}
	}
	if c.n.Load() != maxConns {
		t.Errorf("%d connections remembered, want at most maxConns (%d)", c.n.Load(), maxConns)
	}
	if !c.due(context.Background()) {
		t.Error("a call without a peer did not report")
	}
	wantForgotten(t, c)
}

// Exactly one report per connection per epoch with more connections than
// slots in the cache of recent connections, their calls interleaved (so
// that connections sharing a slot take it from each other between their
// calls).
func TestConnsManyExact(t *testing.T) {
	c := newConns()
	ctxs := manyConns(4 * recentSlots)
	for epoch := range 3 {
		if reports := reportsIn(c, ctxs, 3); reports != len(ctxs) {
			t.Fatalf("epoch %d: %d reports on %d connections, want one each", epoch+1, reports, len(ctxs))
		}
		if c.n.Load() != int64(len(ctxs)) {
			t.Fatalf("epoch %d: %d connections remembered, want %d", epoch+1, c.n.Load(), len(ctxs))
		}
		c.advance()
	}
	wantForgotten(t, c)
	for i := range c.recent {
		if c.recent[i].Load() != nil {
			t.Fatalf("slot %d of the recent connections still holds a forgotten one", i)
		}
	}
}

// manyConns returns the contexts of calls on n connections.
func manyConns(n int) []context.Context {
	ctxs := make([]context.Context, n)
	for i := range ctxs {
		ctxs[i] = connCtx(&peer.Peer{})
	}
	return ctxs
}

// reportsIn makes rounds calls on each connection of ctxs, in turn, and
// returns how many of them reported.
func reportsIn(c *conns, ctxs []context.Context, rounds int) int {
	reports := 0
	for range rounds {
		for _, ctx := range ctxs {
			if c.due(ctx) {
				reports++
			}
		}
	}
	return reports
}

// wantForgotten checks that two epochs without calls leave c remembering
// no connection.
func wantForgotten(t *testing.T, c *conns) {
	t.Helper()
	c.advance()
	c.advance()
	if c.n.Load() != 0 {
		t.Fatalf("after two epochs without calls: %d connections remembered, want 0", c.n.Load())
	}
}

// BenchmarkConnsDue is a call that does not report: the per-call cost of
// the per-connection rule.
func BenchmarkConnsDue(b *testing.B) {
	c := newConns()
	ctx := connCtx(&peer.Peer{})
	c.due(ctx)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if c.due(ctx) {
				b.Fatal("reported twice in one epoch")
			}
		}
	})
}

// Calls on many connections from several goroutines while epochs advance
// (run with -race): afterwards, in a quiet epoch, every connection again
// reports exactly once, whatever the cache of recent connections kept, and
// two epochs without calls forget every connection.
func TestConnsConcurrentAdvance(t *testing.T) {
	c := newConns()
	ctxs := manyConns(2 * recentSlots)
	// Each epoch lasts about 20 calls or more (a twenty-fifth of the
	// connections), so that entries are forgotten while calls fill the
	// cache of recent connections.
	callWhileAdvancing(c, ctxs, 200, nil)
	c.advance()
	if reports := reportsIn(c, ctxs, 2); reports != len(ctxs) {
		t.Fatalf("a quiet epoch after the concurrent ones: %d reports on %d connections, want one each", reports, len(ctxs))
	}
	wantForgotten(t, c)
}

// callWhileAdvancing makes calls on ctxs from four goroutines while the
// test's goroutine starts epochs epochs, each after about 20 calls or more;
// before each epoch it calls between(i), when not nil. It returns when the
// calls have stopped.
func callWhileAdvancing(c *conns, ctxs []context.Context, epochs int, between func(i int)) {
	var (
		wg    sync.WaitGroup
		calls atomic.Int64
		stop  = make(chan struct{})
		tick  = make(chan struct{}, 1) // every 20 calls
	)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; ; i += 7 {
				select {
				case <-stop:
					return
				default:
				}
				c.due(ctxs[i%len(ctxs)])
				if calls.Add(1)%20 == 0 {
					select {
					case tick <- struct{}{}:
					default:
					}
				}
			}
		}()
	}
	for i := range epochs {
		if between != nil {
			between(i)
		}
		c.advance()
		<-tick
	}
	close(stop)
	wg.Wait()
}
