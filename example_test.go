package grpcmgmt_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"

	"github.com/grpcmgmt/grpcmgmt"
	"github.com/grpcmgmt/grpcmgmt/maxage"
)

// The Manager form: build, add the options to the server, register, serve,
// and shut down in lame-duck fashion.
func Example() {
	m, err := grpcmgmt.New(grpcmgmt.WithInsecure(), grpcmgmt.WithMaxAge(maxage.Config{MaxConnectionAge: time.Minute}))
	if err != nil {
		fmt.Println(err)
		return
	}
	srv := grpc.NewServer(m.ServerOptions()...)
	// Register your services on srv here.
	if err := m.Register(srv); err != nil {
		fmt.Println(err)
		return
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(lis) }()

	// On SIGTERM:
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	fmt.Println("shutdown:", m.Shutdown(ctx))
	<-done
	// Output: shutdown: <nil>
}

// Services registered through the Registrar get the levers' unary work in
// their handlers, without the two allocations grpc-go's generated code makes
// for any interceptor on every unary call. ServerOptions is still added: it
// serves everything else.
func ExampleManager_Registrar() {
	m, err := grpcmgmt.New(grpcmgmt.WithInsecure())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer func() { _ = m.Shutdown(context.Background()) }()
	srv := grpc.NewServer(m.ServerOptions()...)
	// pb.RegisterGreeterServer(m.Registrar(srv), impl) for each of your services:
	testgrpc.RegisterTestServiceServer(m.Registrar(srv), testgrpc.UnimplementedTestServiceServer{})
	if err := m.Register(srv); err != nil {
		fmt.Println(err)
		return
	}
	_, ok := srv.GetServiceInfo()["grpc.testing.TestService"]
	fmt.Println("registered:", ok)
	// Output: registered: true
}

// An invalid option is an error that names the option and its range.
func ExampleNew_invalidOption() {
	_, err := grpcmgmt.New(grpcmgmt.WithInsecure(), grpcmgmt.WithMaxAge(maxage.Config{MaxConnectionAge: -time.Second}))
	fmt.Println(err)
	// Output: maxage: MaxConnectionAge must be within 1s..maxage.Off (0 means the default), got -1s
}

// The one-line form, for a process that serves its servers for its whole
// life: one process-wide Manager, reached with Default to register the
// library's services and to shut down in lame-duck fashion.
func ExampleServerOptions() {
	srv := grpc.NewServer(grpcmgmt.ServerOptions(grpcmgmt.WithInsecure())...)
	// Register your services on srv here, then the library's:
	if err := grpcmgmt.Default().Register(srv); err != nil {
		fmt.Println(err)
		return
	}
	// go srv.Serve(lis); on SIGTERM:
	fmt.Println("shutdown:", grpcmgmt.Default().Shutdown(context.Background()))
	// Output: shutdown: <nil>
}

// TLS is passed to the Manager, which wraps it once for per-connection
// GOAWAY; plaintext needs the explicit WithInsecure, and New without either
// is an error. (Compiled, not run: it needs a certificate.)
func ExampleWithCredentials() {
	creds, err := credentials.NewServerTLSFromFile("server.pem", "server.key")
	if err != nil {
		log.Fatal(err)
	}
	m, err := grpcmgmt.New(grpcmgmt.WithCredentials(creds))
	if err != nil {
		log.Fatal(err)
	}
	srv := grpc.NewServer(m.ServerOptions()...) // and no grpc.Creds of your own
	if err := m.Register(srv); err != nil {
		log.Fatal(err)
	}
}
