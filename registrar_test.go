package grpcmgmt_test

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/grpcmgmt/grpcmgmt"
	"github.com/grpcmgmt/grpcmgmt/loadshed"
	"github.com/grpcmgmt/grpcmgmt/orca"
)

// gatedService holds every UnaryCall in its handler until release is
// closed, and says on entered when one arrives.
type gatedService struct {
	testgrpc.UnimplementedTestServiceServer
	entered chan struct{}
	release chan struct{}
}

func (g *gatedService) UnaryCall(context.Context, *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	g.entered <- struct{}{}
	<-g.release
	return &testgrpc.SimpleResponse{}, nil
}

// serveManaged serves srv on 127.0.0.1:0 and returns a TestService client
// of it; when the test ends the client closes, m shuts down and srv stops.
func serveManaged(t *testing.T, m *grpcmgmt.Manager, srv *grpc.Server) testgrpc.TestServiceClient {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.Serve(lis) }()
	t.Cleanup(func() {
		_ = m.Shutdown(context.Background())
		srv.Stop()
		<-served
	})
	return testgrpc.NewTestServiceClient(dial(t, lis.Addr().String()))
}

// TestRegistrar checks that a service registered through Manager.Registrar
// gets the same levers as one served by ServerOptions' interceptor, done
// exactly once, however the server's interceptors are set: with a limit of
// 2 calls in flight, two calls held in the handler count 2 in flight (not
// 4), a third is shed with the shedder's code and retry pushback before
// its handler runs, the two end with success and one carries the per-call
// ORCA report, the sampler counts 2 calls started, and an interceptor of
// the user's own runs once for each admitted call.
func TestRegistrar(t *testing.T) {
	for _, tc := range []struct {
		name      string
		registrar bool // register through m.Registrar
		options   bool // the server has the Manager's ServerOptions
		own       bool // and an interceptor of the user's own after them
	}{
		{name: "interceptor", options: true},
		{name: "registrar", registrar: true, options: true},
		{name: "registrar with own interceptor", registrar: true, options: true, own: true},
		{name: "registrar without ServerOptions", registrar: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := grpcmgmt.New(testOptions(
				grpcmgmt.WithLoadShed(loadshed.Config{MaxInFlight: 2, CPUThreshold: loadshed.Off, QueueingThreshold: loadshed.Off}),
				grpcmgmt.WithORCA(orca.Config{}))...)
			if err != nil {
				t.Fatal(err)
			}
			var own atomic.Int64
			opts := []grpc.ServerOption{grpc.Creds(insecure.NewCredentials())}
			if tc.options {
				opts = m.ServerOptions()
			}
			if tc.own {
				opts = append(opts, grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
					own.Add(1)
					return h(ctx, req)
				}))
			}
			srv := grpc.NewServer(opts...)
			svc := &gatedService{entered: make(chan struct{}, 3), release: make(chan struct{})}
			if tc.registrar {
				testgrpc.RegisterTestServiceServer(m.Registrar(srv), svc)
			} else {
				testgrpc.RegisterTestServiceServer(srv, svc)
			}
			if err := m.Register(srv); err != nil {
				t.Fatal(err)
			}
			client := serveManaged(t, m, srv)

			var wg sync.WaitGroup
			trailers := make([]metadata.MD, 2)
			for i := range trailers {
				wg.Go(func() {
					if _, err := client.UnaryCall(context.Background(), &testgrpc.SimpleRequest{}, grpc.Trailer(&trailers[i])); err != nil {
						t.Errorf("held call %d: %v", i, err)
					}
				})
			}
			<-svc.entered
			<-svc.entered
			calls := m.Load().Calls()
			if n := calls.UnaryInFlight(); n != 2 {
				t.Errorf("unary calls in flight with two held: %d, want 2", n)
			}
			// Shed at once; admitted by mistake, it would wait for release.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			var shedTrailer metadata.MD
			_, err = client.UnaryCall(ctx, &testgrpc.SimpleRequest{}, grpc.Trailer(&shedTrailer))
			cancel()
			if status.Code(err) != codes.Unavailable {
				t.Errorf("third call over a limit of 2: %v, want the shedder's Unavailable", err)
			}
			if len(shedTrailer.Get("grpc-retry-pushback-ms")) != 1 {
				t.Errorf("the shed call's trailer %v has no grpc-retry-pushback-ms (the default pushback)", shedTrailer)
			}
			select {
			case <-svc.entered:
				t.Error("the shed call's handler ran")
			default:
			}
			close(svc.release)
			wg.Wait()

			reports := 0
			for _, md := range trailers {
				reports += min(len(md.Get("endpoint-load-metrics-bin")), 1)
			}
			if reports == 0 {
				t.Error("neither call carried the per-call ORCA report (each connection's first call in an interval does)")
			}
			if n := calls.UnaryStarted(); n != 2 {
				t.Errorf("unary calls started: %d, want 2 (the shed call is not one)", n)
			}
			if n := calls.UnaryInFlight(); n != 0 {
				t.Errorf("unary calls in flight after both ended: %d", n)
			}
			if want := map[bool]int64{true: 2}[tc.own]; own.Load() != want {
				t.Errorf("the user's interceptor ran %d times, want %d", own.Load(), want)
			}
		})
	}
}

// A nil registrar or service description registers nothing, and says so
// instead of panicking.
func TestRegistrarNil(t *testing.T) {
	m, err := grpcmgmt.New(testOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = m.Shutdown(context.Background()) }()
	m.Registrar(nil).RegisterService(&testgrpc.TestService_ServiceDesc, &gatedService{})
	srv := grpc.NewServer()
	m.Registrar(srv).RegisterService(nil, &gatedService{})
	if n := len(srv.GetServiceInfo()); n != 0 {
		t.Errorf("%d services registered from a nil description", n)
	}
}

// A Registrar wrapped in a Registrar of the same Manager counts each call
// once.
func TestRegistrarTwice(t *testing.T) {
	m, err := grpcmgmt.New(testOptions(
		grpcmgmt.WithLoadShed(loadshed.Config{MaxInFlight: 8, CPUThreshold: loadshed.Off, QueueingThreshold: loadshed.Off}))...)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(m.ServerOptions()...)
	svc := &gatedService{entered: make(chan struct{}, 1), release: make(chan struct{})}
	close(svc.release)
	testgrpc.RegisterTestServiceServer(m.Registrar(m.Registrar(srv)), svc)
	client := serveManaged(t, m, srv)
	if _, err := client.UnaryCall(context.Background(), &testgrpc.SimpleRequest{}); err != nil {
		t.Fatal(err)
	}
	if n := m.Load().Calls().UnaryStarted(); n != 1 {
		t.Errorf("one call through a Registrar of a Registrar counted %d times", n)
	}
}
