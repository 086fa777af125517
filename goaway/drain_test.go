package goaway_test

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/grpcmgmt/grpcmgmt/goaway"
	"github.com/grpcmgmt/grpcmgmt/internal/replica"
)

// longStream asks the replica for n responses, one every interval.
func longStream(n int, interval time.Duration) *testpb.StreamingOutputCallRequest {
	req := &testpb.StreamingOutputCallRequest{}
	for range n {
		req.ResponseParameters = append(req.ResponseParameters, &testpb.ResponseParameters{Size: 8, IntervalUs: int32(interval / time.Microsecond)})
	}
	return req
}

// drainSeen records what goaway.DrainInfo said to a stream's interceptor
// after its handler returned, and whether Draining was nil.
type drainSeen struct {
	mu       sync.Mutex
	reasons  []goaway.Reason
	closeBy  []time.Time
	nilChans int
}

func (d *drainSeen) interceptor(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	ch := goaway.Draining(ss.Context())
	err := h(srv, ss)
	r, by, ok := goaway.DrainInfo(ss.Context())
	d.mu.Lock()
	defer d.mu.Unlock()
	if ch == nil {
		d.nilChans++
	}
	if ok {
		d.reasons = append(d.reasons, r)
		d.closeBy = append(d.closeBy, by)
	}
	return err
}

// serveStreams serves the replica service (rc) with opts and the
// interceptors on 127.0.0.1:0.
func serveStreams(t *testing.T, rc replica.Config, opts []grpc.ServerOption, interceptors ...grpc.StreamServerInterceptor) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(append(opts, grpc.ChainStreamInterceptor(interceptors...))...)
	replica.New(rc).Register(srv)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(lis) }()
	t.Cleanup(func() { srv.Stop(); <-done })
	return lis.Addr().String()
}

// recvUntilEnd receives until the stream ends and returns how many
// responses came and the stream's final error (nil for OK).
func recvUntilEnd(s testpb.TestService_StreamingOutputCallClient) (int, error) {
	n := 0
	for {
		if _, err := s.Recv(); err != nil {
			if errors.Is(err, io.EOF) {
				return n, nil
			}
			return n, err
		}
		n++
	}
}

// TestDrainingEndsLongStreamsCleanly: a handler that listens to
// goaway.Draining ends its long-lived stream with OK as soon as its
// connection is sent a GOAWAY, over insecure, TLS and mTLS; the client then
// closes the drained connection by itself, long before the grace, and its
// next stream runs on a new connection. The drained stream is counted as
// ended by its handler, with the GOAWAY's reason.
func TestDrainingEndsLongStreamsCleanly(t *testing.T) {
	for _, tp := range transports(t) {
		t.Run(tp.name, func(t *testing.T) {
			m := newMeter()
			tr := newTracker(t, goaway.Config{Grace: time.Minute, MeterProvider: m})
			seen := &drainSeen{}
			addr := serveStreams(t, replica.Config{Name: "r1"}, []grpc.ServerOption{grpc.Creds(tr.WrapCredentials(tp.server))},
				tr.StreamServerInterceptor(), seen.interceptor)
			client := testpb.NewTestServiceClient(dial(t, addr, tp.client))
			stream, err := client.StreamingOutputCall(context.Background(), longStream(1000, 5*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			for range 3 {
				if _, err := stream.Recv(); err != nil {
					t.Fatal(err)
				}
			}
			first := tr.Conns()
			if len(first) != 1 {
				t.Fatalf("%d connections, want 1", len(first))
			}
			sentAt := time.Now()
			if n := tr.GoAwayAll(goaway.ReasonRebalance); n != 1 {
				t.Fatalf("GoAwayAll sent %d, want 1", n)
			}
			n, err := recvUntilEnd(stream)
			if err != nil || n >= 997 {
				t.Fatalf("stream ended with %v after %d more responses, want OK well before its 1000", err, n)
			}
			if got := m.sum(t, "grpcmgmt.goaway.drained_streams", attribute.String("reason", "rebalance"), attribute.String("ended", "handler")); got != 1 {
				t.Errorf("drained_streams{rebalance, handler} = %d, want 1", got)
			}
			seen.mu.Lock()
			if len(seen.reasons) != 1 || seen.reasons[0] != goaway.ReasonRebalance || seen.closeBy[0].Before(sentAt.Add(time.Minute-time.Second)) {
				t.Errorf("DrainInfo after the handler = %v, close by %v, want rebalance and about a minute (the grace) after %v", seen.reasons, seen.closeBy, sentAt)
			}
			seen.mu.Unlock()
			// The client closes the drained connection once its last stream
			// ended: no need to wait for the one-minute grace.
			waitFor(t, 10*time.Second, "the client to close the drained connection", func() bool {
				for _, c := range tr.Conns() {
					if c.ID == first[0].ID {
						return false
					}
				}
				return true
			})
			next, err := client.StreamingOutputCall(context.Background(), longStream(2, time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			if n, err := recvUntilEnd(next); err != nil || n != 2 {
				t.Fatalf("next stream: %d responses, %v; want 2, OK", n, err)
			}
			if cs := tr.Conns(); len(cs) != 1 || cs[0].ID == first[0].ID {
				t.Errorf("connections after the drain: %+v, want one new connection", cs)
			}
		})
	}
}

// TestDrainingOnGrpcGoAway: the signal fires on grpc-go's own GOAWAY too
// (MaxConnectionAge), with reason max_age.
func TestDrainingOnGrpcGoAway(t *testing.T) {
	m := newMeter()
	tr := newTracker(t, goaway.Config{Grace: time.Minute, MeterProvider: m})
	seen := &drainSeen{}
	addr := serveStreams(t, replica.Config{Name: "r1"}, []grpc.ServerOption{
		grpc.Creds(tr.WrapCredentials(insecure.NewCredentials())),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionAge: 300 * time.Millisecond, MaxConnectionAgeGrace: time.Minute}),
	}, tr.StreamServerInterceptor(), seen.interceptor)
	client := testpb.NewTestServiceClient(dial(t, addr, insecure.NewCredentials()))
	stream, err := client.StreamingOutputCall(context.Background(), longStream(10000, 5*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	n, err := recvUntilEnd(stream)
	if err != nil || n >= 10000 {
		t.Fatalf("stream ended with %v after %d responses, want OK at the connection's max age", err, n)
	}
	if got := m.sum(t, "grpcmgmt.goaway.drained_streams", attribute.String("reason", "max_age"), attribute.String("ended", "handler")); got != 1 {
		t.Errorf("drained_streams{max_age, handler} = %d, want 1", got)
	}
	seen.mu.Lock()
	defer seen.mu.Unlock()
	if len(seen.reasons) != 1 || seen.reasons[0] != goaway.ReasonMaxAge {
		t.Errorf("DrainInfo reasons %v, want [max_age]", seen.reasons)
	}
}

// TestDrainIgnoredIsCutAtGrace: a handler that ignores the signal keeps its
// stream until the grace ends; the stream is then cut, and counted so.
func TestDrainIgnoredIsCutAtGrace(t *testing.T) {
	m := newMeter()
	tr := newTracker(t, goaway.Config{Grace: 200 * time.Millisecond, MeterProvider: m})
	addr := serveStreams(t, replica.Config{Name: "r1", IgnoreDrain: true},
		[]grpc.ServerOption{grpc.Creds(tr.WrapCredentials(insecure.NewCredentials()))}, tr.StreamServerInterceptor())
	client := testpb.NewTestServiceClient(dial(t, addr, insecure.NewCredentials()))
	stream, err := client.StreamingOutputCall(context.Background(), longStream(10000, 5*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	tr.GoAwayAll(goaway.ReasonLoad)
	if _, err := recvUntilEnd(stream); status.Code(err) != codes.Unavailable {
		t.Fatalf("stream ended with %v, want Unavailable (cut at the end of the grace)", err)
	}
	waitFor(t, 5*time.Second, "the cut stream counted", func() bool {
		return m.sum(t, "grpcmgmt.goaway.drained_streams", attribute.String("reason", "load"), attribute.String("ended", "cut")) == 1
	})
	if got := m.sum(t, "grpcmgmt.goaway.drained_streams", attribute.String("ended", "handler")); got != 0 {
		t.Errorf("drained_streams{handler} = %d, want 0", got)
	}
}

// TestDrainingNilWhenUntracked: on a connection no Tracker wraps, Draining
// is nil (never fires) and DrainInfo says so.
func TestDrainingNilWhenUntracked(t *testing.T) {
	seen := &drainSeen{}
	addr := serveStreams(t, replica.Config{Name: "r1"}, nil, seen.interceptor)
	client := testpb.NewTestServiceClient(dial(t, addr, insecure.NewCredentials()))
	stream, err := client.StreamingOutputCall(context.Background(), longStream(2, time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if n, err := recvUntilEnd(stream); err != nil || n != 2 {
		t.Fatalf("%d responses, %v; want 2, OK", n, err)
	}
	seen.mu.Lock()
	defer seen.mu.Unlock()
	if seen.nilChans != 1 || len(seen.reasons) != 0 {
		t.Errorf("untracked connection: %d nil Draining channels, DrainInfo %v; want 1 and none", seen.nilChans, seen.reasons)
	}
}

// TestDrainingForEveryReason: the signal fires, with the GOAWAY's reason,
// whichever lever sent it: a direct GoAway, the load policy, lame-duck
// shutdown, and Config.MaxCallsPerConn (here 1: the stream's own HEADERS
// reaches the limit). Rebalancing and max age are the tests above.
func TestDrainingForEveryReason(t *testing.T) {
	for _, r := range []goaway.Reason{goaway.ReasonManual, goaway.ReasonLoad, goaway.ReasonDrain, goaway.ReasonMaxCalls} {
		t.Run(string(r), func(t *testing.T) {
			m := newMeter()
			cfg := goaway.Config{Grace: time.Minute, MeterProvider: m}
			if r == goaway.ReasonMaxCalls {
				cfg.MaxCallsPerConn = 1
			}
			tr := newTracker(t, cfg)
			addr := serveStreams(t, replica.Config{Name: "r1"}, []grpc.ServerOption{grpc.Creds(tr.WrapCredentials(insecure.NewCredentials()))},
				tr.StreamServerInterceptor())
			client := testpb.NewTestServiceClient(dial(t, addr, insecure.NewCredentials()))
			stream, err := client.StreamingOutputCall(context.Background(), longStream(10000, 5*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			if r != goaway.ReasonMaxCalls { // else the stream's own HEADERS drained it
				if _, err := stream.Recv(); err != nil {
					t.Fatal(err)
				}
				tr.GoAwayAll(r)
			}
			if n, err := recvUntilEnd(stream); err != nil || n >= 9999 {
				t.Fatalf("stream ended with %v after %d responses, want OK at the drain", err, n)
			}
			if got := m.sum(t, "grpcmgmt.goaway.drained_streams", attribute.String("reason", string(r)), attribute.String("ended", "handler")); got != 1 {
				t.Errorf("drained_streams{%s, handler} = %d, want 1", r, got)
			}
		})
	}
}
