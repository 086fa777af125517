package goaway_test

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"

	"github.com/grpcmgmt/grpcmgmt/goaway"
)

// Count follows the live connections, the generation moves with every
// open and close (and only then), and the count is incomplete once Audit
// has found calls on connections the Tracker does not wrap. OnGeneration
// pushes every move: a connection's before its first call has returned,
// Audit's before it returns; a cancelled function gets no more.
func TestCountAndGeneration(t *testing.T) {
	tr := newTracker(t, goaway.Config{Logger: slog.New(slog.DiscardHandler)})
	addr, _ := startServer(t, grpc.Creds(tr.WrapCredentials(insecure.NewCredentials())))
	var mu sync.Mutex
	var pushed []uint64
	stop := tr.OnGeneration(func(g uint64) {
		mu.Lock()
		pushed = append(pushed, g)
		mu.Unlock()
	})
	// latest returns the largest generation pushed and how many were.
	latest := func() (uint64, int) {
		mu.Lock()
		defer mu.Unlock()
		if len(pushed) == 0 {
			return 0, 0
		}
		return slices.Max(pushed), len(pushed)
	}
	count := func(wantN int) uint64 {
		t.Helper()
		n, gen, complete := tr.Count()
		if n != wantN || !complete || gen != tr.Generation() {
			t.Fatalf("Count() = %d, %d, %v with Generation() %d; want %d connections, complete, the same generation",
				n, gen, complete, tr.Generation(), wantN)
		}
		if p, _ := latest(); p != gen {
			t.Fatalf("generation %d, but %d was the latest pushed", gen, p)
		}
		return gen
	}
	call := func(cc *grpc.ClientConn) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := testgrpc.NewTestServiceClient(cc).UnaryCall(ctx, &testgrpc.SimpleRequest{}); err != nil {
			t.Fatalf("UnaryCall: %v", err)
		}
	}

	g0 := count(0)
	a := dial(t, addr, insecure.NewCredentials())
	call(a)
	g1 := count(1)
	call(a)
	if g := count(1); g1 == g0 || g != g1 {
		t.Fatalf("generations %d (none open), %d (one), %d (one, after another call): want the open to move it, the call not", g0, g1, g)
	}
	b := dial(t, addr, insecure.NewCredentials())
	call(b)
	g2 := count(2)
	_ = b.Close()
	// A close's push follows it (the connection has no call left to come).
	waitFor(t, 5*time.Second, "the closed connection to leave the count, its move pushed", func() bool {
		n, g, _ := tr.Count()
		p, _ := latest()
		return n == 1 && p == g
	})
	if g3 := count(1); g2 == g1 || g3 == g2 {
		t.Fatalf("generations %d, %d (open), %d (close): want each to move it", g1, g2, g3)
	}

	before := tr.Generation()
	if tr.Audit(1 << 20); tr.Generation() == before {
		t.Fatal("Audit found untracked calls and the generation did not move")
	}
	if _, _, complete := tr.Count(); complete {
		t.Fatal("Audit found untracked calls and the count is still complete")
	}
	moved := tr.Generation()
	if p, _ := latest(); p != moved {
		t.Fatalf("Audit moved the generation to %d and returned, but %d was the latest pushed", moved, p)
	}
	if tr.Audit(1 << 21); tr.Generation() != moved {
		t.Fatal("a second Audit with untracked calls moved the generation again")
	}

	stop()
	stop() // idempotent
	_, n := latest()
	c := dial(t, addr, insecure.NewCredentials())
	call(c)
	if _, after := latest(); after != n {
		t.Fatalf("%d generations pushed after cancel", after-n)
	}
}
