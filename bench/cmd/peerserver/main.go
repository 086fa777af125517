// Command peerserver is a replica protected by a peer load shedder instead
// of grpcmgmt, for side-by-side overload figures (BENCH.md: bbr and
// semaphore peers): the same test service and capacity flags as
// examples/server, with
//
//	-peer failsafe   github.com/failsafe-go/failsafe-go adaptivelimiter (v0.9.8):
//	                 its defaults (limits 1..200, initial 20) with the max raised
//	                 to 1000 like grpcmgmt's, no queueing: TryAcquirePermit in a
//	                 unary interceptor, the permit recorded when the handler returns
//	-peer bbr        github.com/go-kratos/aegis ratelimit/bbr (CPU + BBR rule)
//	-peer semaphore  a plain static in-flight semaphore of -limit calls
//	-peer none       bare grpc-go: no protection at all (the baseline)
//
// Rejected calls get UNAVAILABLE, like grpcmgmt's default. The capacity
// flags are examples/server's (internal/replica.Flags), and SIGUSR1 doubles
// the CPU per call as there.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/failsafe-go/failsafe-go/adaptivelimiter"
	"github.com/go-kratos/aegis/ratelimit"
	"github.com/go-kratos/aegis/ratelimit/bbr"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/grpcmgmt/grpcmgmt/internal/replica"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:50051", "address to serve on")
	name := flag.String("name", "peer", "replica name")
	capacity := replica.Flags(flag.CommandLine)
	peer := flag.String("peer", "semaphore", "failsafe, bbr, semaphore or none")
	limit := flag.Int("limit", 0, "semaphore size (0: 2 × workers)")
	flag.Parse()
	rcfg, err := capacity(*name)
	if err != nil {
		fmt.Fprintln(os.Stderr, "peerserver:", err)
		os.Exit(2)
	}

	var unary grpc.UnaryServerInterceptor
	switch *peer {
	case "failsafe":
		l := adaptivelimiter.NewBuilder[any]().WithLimits(1, 1000, 20).Build()
		unary = func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			p, ok := l.TryAcquirePermit()
			if !ok {
				return nil, status.Error(codes.Unavailable, "failsafe: limit exceeded")
			}
			defer p.Record()
			return h(ctx, req)
		}
	case "bbr":
		l := bbr.NewLimiter()
		unary = func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			done, err := l.Allow()
			if err != nil {
				return nil, status.Error(codes.Unavailable, "bbr: "+err.Error())
			}
			resp, err := h(ctx, req)
			done(ratelimit.DoneInfo{Err: err})
			return resp, err
		}
	case "semaphore":
		n := *limit
		if n == 0 {
			n = 2 * max(rcfg.Workers, 1)
		}
		sem := make(chan struct{}, n)
		unary = func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			select {
			case sem <- struct{}{}:
			default:
				return nil, status.Error(codes.Unavailable, "semaphore: full")
			}
			defer func() { <-sem }()
			return h(ctx, req)
		}
	case "none":
		unary = func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			return h(ctx, req)
		}
	default:
		fmt.Fprintln(os.Stderr, "peerserver: -peer must be failsafe, bbr, semaphore or none")
		os.Exit(2)
	}
	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(unary))
	svc := replica.New(rcfg)
	svc.Register(srv)
	defer replica.DriftOnSignal(svc)()
	lis, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "peerserver:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		t := time.AfterFunc(10*time.Second, srv.Stop)
		srv.GracefulStop()
		t.Stop()
	}()
	if err := srv.Serve(lis); err != nil {
		fmt.Fprintln(os.Stderr, "peerserver:", err)
		os.Exit(1)
	}
}
