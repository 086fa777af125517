package grpcmgmt_test

import (
	"context"
	"fmt"
	"net"
	"time"

	"google.golang.org/grpc"

	"github.com/grpcmgmt/grpcmgmt"
	"github.com/grpcmgmt/grpcmgmt/maxage"
)

// The Manager form: build, add the options to the server, register, serve,
// and shut down in lame-duck fashion.
func Example() {
	m, err := grpcmgmt.New(grpcmgmt.WithMaxAge(maxage.Config{MaxConnectionAge: time.Minute}))
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

// An invalid option is an error that names the option and its range.
func ExampleNew_invalidOption() {
	_, err := grpcmgmt.New(grpcmgmt.WithMaxAge(maxage.Config{MaxConnectionAge: -time.Second}))
	fmt.Println(err)
	// Output: maxage: MaxConnectionAge must be within 1s..maxage.Off (0 means the default), got -1s
}

// The one-line form, for a process that serves one server for its life.
// (Not run as a test: its load sampler lives as long as the process, which
// the goroutine-leak check rightly reports.)
func ExampleServerOptions() {
	srv := grpc.NewServer(grpcmgmt.ServerOptions()...)
	// Register your services on srv, then srv.Serve(lis).
	_ = srv
}
