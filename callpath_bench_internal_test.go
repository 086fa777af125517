package grpcmgmt

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/tap"

	"github.com/grpcmgmt/grpcmgmt/goaway"
	"github.com/grpcmgmt/grpcmgmt/health"
	"github.com/grpcmgmt/grpcmgmt/load"
	"github.com/grpcmgmt/grpcmgmt/loadshed"
	"github.com/grpcmgmt/grpcmgmt/orca"
)

// BenchmarkCallPath is the library's own work on a unary call, without
// grpc-go's: the Manager's tap handle and its interceptor around a handler
// that does nothing, in a context shaped like grpc-go's (incoming
// metadata, peer, server transport stream), on one goroutine (as on the
// pinned overhead leg's one CPU). Every lever is on, as in bench/overhead's
// full stack: a static shedding limit out of reach, ORCA per-call reports
// at their default rate.
//
//	go test -run '^$' -bench BenchmarkCallPath -benchmem .
func BenchmarkCallPath(b *testing.B) {
	fixed := load.SourceFunc(func() (float64, error) { return 0.1, nil })
	m, err := New(WithInsecure(), WithLogger(slog.New(slog.DiscardHandler)),
		WithLoad(load.Config{Period: 10 * time.Second, CPU: fixed, Memory: fixed, QueueingEnter: load.Off}),
		WithGoAway(goaway.Config{}, goaway.PolicyConfig{CPUEnter: 4}),
		WithHealth(health.Config{CPUEnter: 10}),
		WithLoadShed(loadshed.Config{MaxInFlight: 1 << 20, CPUThreshold: loadshed.Off, QueueingThreshold: loadshed.Off}),
		WithORCA(orca.Config{}))
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = m.Shutdown(context.Background()) }()
	_ = m.ServerOptions() // installs the shedder's tap: the interceptor takes the priority from it
	c := m.path
	tapHandle := m.shedder.TapHandle()

	md := metadata.MD{
		":authority":   {"127.0.0.1:50051"},
		"content-type": {"application/grpc"},
		"user-agent":   {"grpc-go/1.85.0"},
		"te":           {"trailers"},
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ctx = peer.NewContext(ctx, &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}})
	ctx = metadata.NewIncomingContext(ctx, md)
	ctx = grpc.NewContextWithServerTransportStream(ctx, nopStream{})
	info := &grpc.UnaryServerInfo{FullMethod: "/grpc.testing.TestService/UnaryCall"}
	h := func(context.Context, any) (any, error) { return nil, nil }

	b.Run("tap", func(b *testing.B) {
		ti := &tap.Info{FullMethodName: info.FullMethod, Header: md}
		b.ReportAllocs()
		for b.Loop() {
			_, _ = tapHandle(ctx, ti)
		}
	})
	b.Run("unary", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = c.unary(ctx, nil, info, h)
		}
	})
}

// nopStream is a grpc.ServerTransportStream that keeps nothing.
type nopStream struct{}

func (nopStream) Method() string                  { return "/grpc.testing.TestService/UnaryCall" }
func (nopStream) SetHeader(metadata.MD) error     { return nil }
func (nopStream) SendHeader(metadata.MD) error    { return nil }
func (nopStream) SetTrailer(md metadata.MD) error { return nil }
