package loadshed_test

import (
	"log/slog"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/grpcmgmt/grpcmgmt/internal/replica"
	"github.com/grpcmgmt/grpcmgmt/load"
	"github.com/grpcmgmt/grpcmgmt/loadshed"
)

// TestSharedCountInterceptors: with SharedCount the Shedder's own
// interceptors count the unary calls they admit in the sampler's counter,
// with their outcome: a call that fails for the server counts in the error
// rate, a caller's mistake does not, a call shed over the limit is no call
// started, and a stream holds a slot without counting there.
func TestSharedCountInterceptors(t *testing.T) {
	half := load.SourceFunc(func() (float64, error) { return 0.5, nil })
	smp, err := load.NewSampler(load.Config{CPU: half, Memory: half, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = smp.Close() })
	s := newShedder(t, loadshed.Config{MaxInFlight: 1, Load: smp, SharedCount: true,
		CPUThreshold: loadshed.Off, QueueingThreshold: loadshed.Off})
	addr := serve(t, replica.New(replica.Config{Name: "a"}), shedOpts(s, nil, nil)...)
	c := dial(t, addr)
	calls := smp.Calls()

	for _, code := range []codes.Code{codes.OK, codes.Internal, codes.InvalidArgument} {
		_, err := c.UnaryCall(t.Context(), &testpb.SimpleRequest{ResponseStatus: &testpb.EchoStatus{Code: int32(code)}})
		if status.Code(err) != code {
			t.Fatalf("UnaryCall asking for %v: %s", code, describe(err))
		}
	}
	if got := calls.Failed(); got != 1 {
		t.Errorf("the sampler counted %d failed calls, want 1 (Internal; not InvalidArgument)", got)
	}
	// A stream holds the one slot: a unary call is shed, and is no call
	// started for the sampler.
	st, err := c.FullDuplexCall(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Header(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 5*time.Second, "the stream holds its slot", func() bool { return s.InFlight() == 1 })
	if _, err := c.EmptyCall(t.Context(), &testpb.Empty{}); status.Code(err) != codes.Unavailable {
		t.Fatalf("unary call while a stream holds the only slot: %s, want UNAVAILABLE", describe(err))
	}
	if got := calls.UnaryStarted(); got != 3 {
		t.Errorf("the sampler counted %d unary calls started, want 3 (the shed one is none)", got)
	}
	if got := calls.UnaryInFlight(); got != 0 {
		t.Errorf("the sampler's unary calls in flight = %d, want 0 (the stream's slot is the Shedder's)", got)
	}
	if err := st.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); err == nil {
		t.Fatal("stream: want io.EOF after CloseSend")
	}
	waitUntil(t, 5*time.Second, "the stream's slot released", func() bool { return s.InFlight() == 0 })
}
