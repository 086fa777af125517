package loadshed_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/grpcmgmt/grpcmgmt/internal/replica"
	"github.com/grpcmgmt/grpcmgmt/loadshed"
)

// recorder is a slog.Handler that keeps the messages it is given.
type recorder struct {
	mu   sync.Mutex
	msgs []slog.Record
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, rec)
	return nil
}
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *recorder) WithGroup(string) slog.Handler      { return r }

func (r *recorder) count(level slog.Level, msg string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, m := range r.msgs {
		if m.Level == level && m.Message == msg {
			n++
		}
	}
	return n
}

// TestShedLogging: a storm of shed calls logs one info line when shedding
// starts, debug lines at most once a second, and one info line when the
// limit has shed nothing for a second.
func TestShedLogging(t *testing.T) {
	rec := &recorder{}
	s := newShedder(t, loadshed.Config{MaxInFlight: 1, Logger: slog.New(rec)})
	g := newGate()
	c := dial(t, serve(t, replica.New(replica.Config{Name: "a"}), shedOpts(s, nil, []grpc.UnaryServerInterceptor{g.unary})...))
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = c.EmptyCall(withTest(t.Context(), "block"), &testpb.Empty{})
	}()
	waitUntil(t, 5*time.Second, "limit reached", func() bool { return s.InFlight() == 1 })
	start := time.Now()
	const storm = 500
	for i := 0; i < storm; i++ {
		if _, err := c.EmptyCall(t.Context(), &testpb.Empty{}); err == nil {
			t.Fatal("call over the limit admitted")
		}
	}
	elapsed := time.Since(start)
	close(g.release)
	<-done
	if n := rec.count(slog.LevelInfo, "loadshed: shedding started"); n != 1 {
		t.Errorf("%d 'shedding started' lines for one storm, want 1", n)
	}
	if n, most := rec.count(slog.LevelDebug, "loadshed: call shed"), int(elapsed/time.Second)+1; n < 1 || n > most {
		t.Errorf("%d debug lines for %d shed calls in %v, want 1..%d", n, storm, elapsed, most)
	}
	// Calls admitted after a quiet second log that shedding stopped.
	waitUntil(t, 5*time.Second, "'shedding stopped' logged", func() bool {
		if _, err := c.EmptyCall(t.Context(), &testpb.Empty{}); err != nil {
			t.Fatalf("call after the storm: %s", describe(err))
		}
		return rec.count(slog.LevelInfo, "loadshed: shedding stopped") == 1
	})
}
