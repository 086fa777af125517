package goaway_test

import (
	"context"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"

	"github.com/grpcmgmt/grpcmgmt/goaway"
)

// BenchmarkStream64KiB: one bidi stream echoing 64 KiB messages over
// loopback, bare grpc-go and with the credentials wrapper, for profiling
// the wrapper's share of a streaming server's CPU.
func BenchmarkStream64KiB(b *testing.B) {
	for _, wrap := range []bool{false, true} {
		name := map[bool]string{false: "bare", true: "wrapped"}[wrap]
		b.Run(name, func(b *testing.B) {
			creds := insecure.NewCredentials()
			if wrap {
				creds = newTracker(b, goaway.Config{}).WrapCredentials(creds)
			}
			addr, _ := startServer(b, grpc.Creds(creds))
			cc := dial(b, addr, insecure.NewCredentials())
			s, err := testgrpc.NewTestServiceClient(cc).FullDuplexCall(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			req := &testgrpc.StreamingOutputCallRequest{
				ResponseParameters: []*testgrpc.ResponseParameters{{Size: 64 << 10}},
				Payload:            &testgrpc.Payload{Body: body[:64<<10]},
			}
			b.SetBytes(2 * 64 << 10)
			for b.Loop() {
				if err := s.Send(req); err != nil {
					b.Fatal(err)
				}
				if _, err := s.Recv(); err != nil {
					b.Fatal(err)
				}
			}
			_ = s.CloseSend()
			_, _ = s.Recv()
		})
	}
}
