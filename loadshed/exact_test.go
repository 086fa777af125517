package loadshed_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/grpcmgmt/grpcmgmt/internal/replica"
	"github.com/grpcmgmt/grpcmgmt/loadshed"
)

// TestStaticLimitIsExact: with limit L and 4L concurrent calls, at most L
// handlers run at once, and every other call is UNAVAILABLE with the
// pushback trailer, before any handler work.
func TestStaticLimitIsExact(t *testing.T) {
	const L = 5
	s := newShedder(t, loadshed.Config{MaxInFlight: L})
	g := newGate()
	addr := serve(t, replica.New(replica.Config{Name: "a"}), shedOpts(s, nil, []grpc.UnaryServerInterceptor{g.unary})...)
	c := dial(t, addr)

	for round := 0; round < 3; round++ {
		g.release = make(chan struct{})
		g.entered.Store(0)
		type result struct {
			err     error
			trailer metadata.MD
		}
		results := make(chan result, 4*L)
		var wg sync.WaitGroup
		for i := 0; i < 4*L; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var tr metadata.MD
				_, err := c.EmptyCall(withTest(t.Context(), "block"), &testpb.Empty{}, grpc.Trailer(&tr))
				results <- result{err, tr}
			}()
		}
		// Every call has either entered a handler or been shed.
		waitUntil(t, 10*time.Second, "all calls admitted or shed", func() bool {
			return g.entered.Load()+int64(len(results)) == 4*L
		})
		if got := g.entered.Load(); got != L {
			t.Errorf("round %d: %d handlers entered, want exactly L=%d", round, got, L)
		}
		if got := s.InFlight(); got != L {
			t.Errorf("round %d: InFlight() = %d, want %d", round, got, L)
		}
		close(g.release)
		wg.Wait()
		close(results)
		var ok, shed int
		for r := range results {
			if r.err == nil {
				ok++
				continue
			}
			shed++
			if status.Code(r.err) != codes.Unavailable || !strings.Contains(status.Convert(r.err).Message(), "MaxInFlight") {
				t.Errorf("shed call: %s, want UNAVAILABLE naming MaxInFlight", describe(r.err))
			}
			if got := r.trailer.Get(loadshed.PushbackHeader); len(got) != 1 || got[0] != "10" {
				t.Errorf("shed call trailer %s = %q, want [\"10\"]", loadshed.PushbackHeader, got)
			}
		}
		if ok != L || shed != 3*L {
			t.Errorf("round %d: %d ok, %d shed; want %d and %d", round, ok, shed, L, 3*L)
		}
		if p := g.peak.Load(); p > L {
			t.Fatalf("round %d: %d handlers ran at once, limit is %d", round, p, L)
		}
		waitUntil(t, 5*time.Second, "in-flight back to 0", func() bool { return s.InFlight() == 0 })
	}
}

// TestSlotsReleased: a slot is released exactly once when the handler ends
// by client cancel, panic or deadline, so the full limit is usable again.
func TestSlotsReleased(t *testing.T) {
	const L = 3
	s := newShedder(t, loadshed.Config{MaxInFlight: L})
	g := newGate()
	// recoverUnary runs before the Shedder, so a panic unwinds through the
	// Shedder's deferred release before the server survives it.
	addr := serve(t, replica.New(replica.Config{Name: "a"}),
		shedOpts(s, []grpc.UnaryServerInterceptor{recoverUnary}, []grpc.UnaryServerInterceptor{g.unary})...)
	c := dial(t, addr)

	// fill holds L calls in their handlers, ended by end.
	fill := func(name string, end func([]context.CancelFunc), mode string, timeout time.Duration) {
		t.Helper()
		g.release = make(chan struct{})
		var wg sync.WaitGroup
		cancels := make([]context.CancelFunc, L)
		errs := make(chan error, L)
		for i := range cancels {
			ctx, cancel := context.WithCancel(t.Context())
			if timeout > 0 {
				ctx, cancel = context.WithTimeout(t.Context(), timeout)
			}
			cancels[i] = cancel
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := c.EmptyCall(withTest(ctx, mode), &testpb.Empty{})
				errs <- err
			}()
		}
		if mode == "block" {
			waitUntil(t, 5*time.Second, name+": L calls in flight", func() bool { return s.InFlight() == L })
		}
		end(cancels)
		wg.Wait()
		close(errs)
		for err := range errs {
			if err == nil {
				t.Errorf("%s: call succeeded, want it to end with an error", name)
			}
		}
		for _, cancel := range cancels {
			cancel()
		}
		waitUntil(t, 5*time.Second, name+": in-flight back to 0", func() bool { return s.InFlight() == 0 })
		// The whole limit is usable again: L blocked calls fit.
		g.release = make(chan struct{})
		var wg2 sync.WaitGroup
		for i := 0; i < L; i++ {
			wg2.Add(1)
			go func() {
				defer wg2.Done()
				if _, err := c.EmptyCall(withTest(t.Context(), "block"), &testpb.Empty{}); err != nil {
					t.Errorf("%s: after release, call failed: %s", name, describe(err))
				}
			}()
		}
		waitUntil(t, 5*time.Second, name+": L calls fit again", func() bool { return s.InFlight() == L })
		close(g.release)
		wg2.Wait()
		waitUntil(t, 5*time.Second, name+": in-flight back to 0", func() bool { return s.InFlight() == 0 })
	}
	fill("cancel", func(cs []context.CancelFunc) {
		for _, c := range cs {
			c()
		}
	}, "block", 0)
	fill("panic", func([]context.CancelFunc) {}, "panic", 0)
	fill("deadline", func([]context.CancelFunc) {}, "block", time.Second)
	if p := g.peak.Load(); p > L {
		t.Fatalf("%d handlers ran at once, limit is %d", p, L)
	}
}

// TestStreamsHoldSlots: a stream is admitted when it starts, holds its slot
// while it runs (it is never shed once started), and a stream over the
// limit is shed with the pushback trailer.
func TestStreamsHoldSlots(t *testing.T) {
	s := newShedder(t, loadshed.Config{MaxInFlight: 1})
	addr := serve(t, replica.New(replica.Config{Name: "a"}), shedOpts(s, nil, nil)...)
	c := dial(t, addr)

	st, err := c.FullDuplexCall(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Header(); err != nil { // the stream has started
		t.Fatal(err)
	}
	// A second stream is over the limit.
	st2, err := c.FullDuplexCall(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	_, err = st2.Recv()
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("second stream: %s, want UNAVAILABLE", describe(err))
	}
	if got := st2.Trailer().Get(loadshed.PushbackHeader); len(got) != 1 {
		t.Errorf("second stream trailer %s = %q, want one value", loadshed.PushbackHeader, got)
	}
	// The first stream keeps working while the limit sheds others.
	for i := 0; i < 3; i++ {
		if err := st.Send(&testpb.StreamingOutputCallRequest{ResponseParameters: []*testpb.ResponseParameters{{Size: 10}}}); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Recv(); err != nil {
			t.Fatalf("started stream was disturbed: %s", describe(err))
		}
	}
	if _, err := c.EmptyCall(t.Context(), &testpb.Empty{}); status.Code(err) != codes.Unavailable {
		t.Errorf("unary call while the stream holds the only slot: %s, want UNAVAILABLE", describe(err))
	}
	if err := st.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); err == nil {
		t.Fatal("stream: want io.EOF after CloseSend")
	}
	waitUntil(t, 5*time.Second, "stream slot released", func() bool { return s.InFlight() == 0 })
	if _, err := c.EmptyCall(t.Context(), &testpb.Empty{}); err != nil {
		t.Errorf("after the stream ended: %s", describe(err))
	}
}

// TestTapRejectsBeforeInterceptors: with Pushback Off, calls over the limit
// are rejected by the tap handle, before the request is read: no
// interceptor (not even one placed before the Shedder) sees them, and no
// pushback trailer is sent.
func TestTapRejectsBeforeInterceptors(t *testing.T) {
	const L = 2
	s := newShedder(t, loadshed.Config{MaxInFlight: L, Pushback: loadshed.Off})
	g := newGate()
	var outerSeen sync.Map
	outer := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		outerSeen.Store(req, true)
		return h(ctx, req)
	}
	addr := serve(t, replica.New(replica.Config{Name: "a"}),
		shedOpts(s, []grpc.UnaryServerInterceptor{outer}, []grpc.UnaryServerInterceptor{g.unary})...)
	c := dial(t, addr)

	var wg sync.WaitGroup
	for i := 0; i < L; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = c.EmptyCall(withTest(t.Context(), "block"), &testpb.Empty{})
		}()
	}
	waitUntil(t, 5*time.Second, "L calls in flight", func() bool { return s.InFlight() == L })
	n := 0
	outerSeen.Range(func(any, any) bool { n++; return true })
	for i := 0; i < 5; i++ {
		var tr metadata.MD
		_, err := c.EmptyCall(t.Context(), &testpb.Empty{}, grpc.Trailer(&tr))
		if status.Code(err) != codes.Unavailable || !strings.Contains(status.Convert(err).Message(), "MaxInFlight") {
			t.Errorf("call over the limit: %s, want UNAVAILABLE naming MaxInFlight", describe(err))
		}
		if v := tr.Get(loadshed.PushbackHeader); len(v) != 0 {
			t.Errorf("tap rejection carries %s=%q; want none (Pushback Off)", loadshed.PushbackHeader, v)
		}
	}
	m := 0
	outerSeen.Range(func(any, any) bool { m++; return true })
	if m != n {
		t.Errorf("the outermost interceptor saw %d rejected calls; the tap should have rejected them first", m-n)
	}
	close(g.release)
	wg.Wait()
	waitUntil(t, 5*time.Second, "in-flight back to 0", func() bool { return s.InFlight() == 0 })
}

// TestUnknownMethodDoesNotLeak: a call the tap lets through but that never
// reaches an interceptor (unknown method) holds no slot.
func TestUnknownMethodDoesNotLeak(t *testing.T) {
	s := newShedder(t, loadshed.Config{MaxInFlight: 1, Pushback: loadshed.Off})
	addr := serve(t, replica.New(replica.Config{Name: "a"}), shedOpts(s, nil, nil)...)
	cc := dialConn(t, addr)
	for i := 0; i < 5; i++ {
		err := cc.Invoke(t.Context(), "/no.such.Service/Method", &testpb.Empty{}, &testpb.Empty{})
		if status.Code(err) != codes.Unimplemented {
			t.Fatalf("unknown method: %s, want UNIMPLEMENTED", describe(err))
		}
	}
	if _, err := testpb.NewTestServiceClient(cc).EmptyCall(t.Context(), &testpb.Empty{}); err != nil {
		t.Fatalf("call after unknown methods: %s (a slot leaked)", describe(err))
	}
	if got := s.InFlight(); got != 0 {
		t.Fatalf("InFlight() = %d, want 0", got)
	}
}

// TestResourceExhaustedCode: Config.Code changes the shed status; the
// pushback trailer is sent all the same.
func TestResourceExhaustedCode(t *testing.T) {
	s := newShedder(t, loadshed.Config{MaxInFlight: 1, Code: codes.ResourceExhausted, Pushback: 250 * time.Millisecond})
	g := newGate()
	c := dial(t, serve(t, replica.New(replica.Config{Name: "a"}), shedOpts(s, nil, []grpc.UnaryServerInterceptor{g.unary})...))
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = c.EmptyCall(withTest(t.Context(), "block"), &testpb.Empty{})
	}()
	waitUntil(t, 5*time.Second, "limit reached", func() bool { return s.InFlight() == 1 })
	var tr metadata.MD
	_, err := c.EmptyCall(t.Context(), &testpb.Empty{}, grpc.Trailer(&tr))
	close(g.release)
	<-done
	if status.Code(err) != codes.ResourceExhausted {
		t.Errorf("shed call: %s, want RESOURCE_EXHAUSTED", describe(err))
	}
	if got := tr.Get(loadshed.PushbackHeader); len(got) != 1 || got[0] != "250" {
		t.Errorf("trailer %s = %q, want [\"250\"]", loadshed.PushbackHeader, got)
	}
}
