// Command h2specserver serves the replica test service over h2c (HTTP/2
// with prior knowledge) on ADDR, with or without the GOAWAY credentials
// wrapper, for running the h2spec conformance suite against both.
//
//	go run ./goaway/internal/h2specserver -addr 127.0.0.1:8080 -wrap
package main

import (
	"flag"
	"log"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/grpcmgmt/grpcmgmt/goaway"
	"github.com/grpcmgmt/grpcmgmt/internal/replica"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	wrap := flag.Bool("wrap", false, "wrap the credentials with goaway.Tracker.WrapCredentials")
	flag.Parse()
	var creds credentials.TransportCredentials = insecure.NewCredentials()
	if *wrap {
		t, err := goaway.NewTracker(goaway.Config{})
		if err != nil {
			log.Fatal(err)
		}
		creds = t.WrapCredentials(creds)
	}
	lis, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(creds))
	replica.New(replica.Config{Name: "h2spec"}).Register(srv)
	log.Printf("serving on %s (wrapped: %v)", lis.Addr(), *wrap)
	log.Fatal(srv.Serve(lis))
}
