// Package replica is the test service every example, test and benchmark
// serves: grpc-go's interop grpc.testing.TestService with an explicit,
// measurable capacity.
//
// Every response carries the header "x-replica: <name>" (and UnaryCall's
// SimpleResponse.ServerId), so a client can count which replica served it.
// Capacity is made real: each UnaryCall burns Work of CPU (and waits Wait
// without CPU) inside one of Workers slots, so a replica serves at most
// Workers/(Work+Wait) calls per second;
// calls beyond that queue for a slot (and their latency rises), exactly like
// a real service whose threads are busy.
package replica

import (
	"context"
	"io"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/grpcmgmt/grpcmgmt/goaway"
)

// HeaderName is the response header that names the replica.
const HeaderName = "x-replica"

// Config describes one replica.
type Config struct {
	// Name is sent in the x-replica header.
	Name string
	// Work is the CPU burned per UnaryCall (0: none).
	Work time.Duration
	// Wait is the time waited per UnaryCall without CPU (a lock held
	// across a slow disk or dependency), inside the worker slot like Work
	// (0: none).
	Wait time.Duration
	// WaitMix, when not empty, replaces Wait: each call waits one of these,
	// chosen at random (two methods of one service, say 0 and 49 ms).
	WaitMix []time.Duration
	// Downstream is the time waited per UnaryCall before taking a worker
	// slot, without CPU and without limit of concurrency (a call to
	// another service) (0: none).
	Downstream time.Duration
	// Workers bounds how many UnaryCalls burn CPU at once (0: unbounded).
	Workers int
	// IgnoreDrain makes StreamingOutputCall ignore goaway.Draining: its
	// streams then run until they are done or cut (the baseline of the
	// streams scenario).
	IgnoreDrain bool
	// SpreadDrain makes a drained StreamingOutputCall end at a random point
	// of the first half of its connection's remaining grace instead of at
	// once (see StreamingOutputCall).
	SpreadDrain bool
}

// Service implements grpc.testing.TestService. Create it with New.
type Service struct {
	testpb.UnimplementedTestServiceServer
	name       string
	md         metadata.MD
	work       atomic.Int64 // nanoseconds
	wait       atomic.Int64 // nanoseconds
	waitMix    []time.Duration
	downstream time.Duration
	slots      chan struct{}

	ignoreDrain, spreadDrain bool
}

// New returns a Service for cfg.
func New(cfg Config) *Service {
	s := &Service{name: cfg.Name, md: metadata.Pairs(HeaderName, cfg.Name), waitMix: cfg.WaitMix, downstream: cfg.Downstream,
		ignoreDrain: cfg.IgnoreDrain, spreadDrain: cfg.SpreadDrain}
	s.work.Store(int64(cfg.Work))
	s.wait.Store(int64(cfg.Wait))
	if cfg.Workers > 0 {
		s.slots = make(chan struct{}, cfg.Workers)
	}
	return s
}

// Register registers the service on r.
func (s *Service) Register(r grpc.ServiceRegistrar) { testpb.RegisterTestServiceServer(r, s) }

// Name returns the replica's name.
func (s *Service) Name() string { return s.name }

// SetWork changes the CPU burned per call (to make a replica hot).
func (s *Service) SetWork(d time.Duration) { s.work.Store(int64(d)) }

// SetWait changes the time waited per call without CPU.
func (s *Service) SetWait(d time.Duration) { s.wait.Store(int64(d)) }

// Work returns the CPU burned per call now.
func (s *Service) Work() time.Duration { return time.Duration(s.work.Load()) }

// EmptyCall answers at once.
func (s *Service) EmptyCall(ctx context.Context, _ *testpb.Empty) (*testpb.Empty, error) {
	_ = grpc.SetHeader(ctx, s.md)
	return &testpb.Empty{}, nil
}

// UnaryCall burns Work of CPU in a worker slot and returns ResponseSize
// bytes. A ResponseStatus in the request is returned as the call's status.
func (s *Service) UnaryCall(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	_ = grpc.SetHeader(ctx, s.md)
	if rs := req.GetResponseStatus(); rs != nil && rs.GetCode() != 0 {
		return nil, status.Error(codes.Code(rs.GetCode()), rs.GetMessage())
	}
	if s.downstream > 0 {
		if err := sleep(ctx, s.downstream); err != nil {
			return nil, err
		}
	}
	d := time.Duration(s.wait.Load())
	if len(s.waitMix) > 0 {
		d = s.waitMix[rand.IntN(len(s.waitMix))]
	}
	if w := time.Duration(s.work.Load()); w > 0 || d > 0 {
		if s.slots != nil {
			select {
			case s.slots <- struct{}{}:
			case <-ctx.Done():
				return nil, status.FromContextError(ctx.Err()).Err()
			}
		}
		if d > 0 {
			t := time.NewTimer(d)
			<-t.C
		}
		Burn(w)
		if s.slots != nil {
			<-s.slots
		}
	}
	return &testpb.SimpleResponse{
		ServerId: s.name,
		Payload:  &testpb.Payload{Body: make([]byte, req.GetResponseSize())},
	}, nil
}

// StreamingOutputCall is a long-lived server stream, a feed: one response
// per ResponseParameters entry, of the requested size, each at the next
// multiple of its IntervalUs on the server's clock (every stream of a
// replica ticks together, and a stream resumed elsewhere continues the same
// schedule). When the stream's connection is sent a GOAWAY (for any reason:
// max age, load, rebalancing, shutdown), it ends the stream with OK, unless
// Config.IgnoreDrain; with Config.SpreadDrain it first keeps serving for a
// random part of the first half of the time left before the connection is
// closed (goaway.DrainInfo), and ends just after a response, so that the
// client has a whole interval to resume before the next one is due. The client opens a new stream for the rest on a new
// connection, possibly to another replica; spreading the ends lets a
// round_robin client's reconnected subchannel take its share of the
// resumed streams instead of all of them landing on the other replicas.
// That is the pattern of goaway.Draining.
func (s *Service) StreamingOutputCall(req *testpb.StreamingOutputCallRequest, stream testpb.TestService_StreamingOutputCallServer) error {
	if err := stream.SendHeader(s.md); err != nil {
		return err
	}
	ctx := stream.Context()
	var draining <-chan struct{}
	if !s.ignoreDrain {
		draining = goaway.Draining(ctx)
	}
	var spread <-chan time.Time // fires at the drained stream's chosen end
	last := false               // end right after the next response
	t := time.NewTimer(0)
	defer t.Stop()
	<-t.C
	for _, p := range req.GetResponseParameters() {
		if d := time.Duration(p.GetIntervalUs()) * time.Microsecond; d > 0 {
			now := time.Now()
			t.Reset(now.Truncate(d).Add(d).Sub(now))
		wait:
			for {
				select {
				case <-t.C:
					break wait
				case <-draining:
					draining = nil
					if !s.spreadDrain {
						return nil
					}
					spread = time.After(drainSpread(ctx))
				case <-spread:
					// End just after the next response: the client has
					// a whole interval to resume before the one after.
					spread, last = nil, true
				case <-ctx.Done():
					return status.FromContextError(ctx.Err()).Err()
				}
			}
		}
		if err := stream.Send(&testpb.StreamingOutputCallResponse{
			Payload: &testpb.Payload{Body: make([]byte, p.GetSize())},
		}); err != nil {
			return err
		}
		if last {
			return nil
		}
	}
	return nil
}

// drainSpread picks when a drained stream ends: at random within the first
// half of the time left before its connection is closed.
func drainSpread(ctx context.Context) time.Duration {
	_, closeBy, ok := goaway.DrainInfo(ctx)
	left := time.Until(closeBy) / 2
	if !ok || left <= 0 {
		return 0
	}
	return rand.N(left)
}

// sleep waits d, or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
}

// FullDuplexCall echoes: for every request it sends one response per
// ResponseParameters entry, of the requested size.
func (s *Service) FullDuplexCall(stream testpb.TestService_FullDuplexCallServer) error {
	if err := stream.SendHeader(s.md); err != nil {
		return err
	}
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		for _, p := range req.GetResponseParameters() {
			if err := stream.Send(&testpb.StreamingOutputCallResponse{
				Payload: &testpb.Payload{Body: make([]byte, p.GetSize())},
			}); err != nil {
				return err
			}
		}
	}
}

// Burn keeps one CPU busy for d of wall-clock time.
func Burn(d time.Duration) {
	end := time.Now().Add(d)
	x := uint64(1)
	for time.Now().Before(end) {
		for i := 0; i < 1000; i++ {
			x = x*6364136223846793005 + 1442695040888963407
		}
	}
	sink.Store(x)
}

var sink atomic.Uint64
