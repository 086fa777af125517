package goaway_test

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
)

// body is shared, read-only request payload.
var body = make([]byte, 256<<10)

// loadGen runs closed-loop callers against a set of client connections:
// even callers make unary calls, odd callers bidi streams of a few
// messages; sizes from 0 B to maxSize, so large messages span many frames.
type loadGen struct {
	calls, failed atomic.Int64
	mu            sync.Mutex
	errs          []error // the first few failures
	stop          chan struct{}
	wg            sync.WaitGroup
}

func startLoad(ccs []*grpc.ClientConn, callers, maxSize int) *loadGen {
	g := &loadGen{stop: make(chan struct{})}
	for i := range callers {
		client := testgrpc.NewTestServiceClient(ccs[i%len(ccs)])
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			size := func() int {
				switch rng.IntN(3) {
				case 0:
					return 0
				case 1:
					return rng.IntN(1024)
				}
				return rng.IntN(maxSize + 1)
			}
			for {
				select {
				case <-g.stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				var err error
				if i%2 == 0 {
					err = unary(ctx, client, size(), size())
				} else {
					err = bidi(ctx, client, 1+rng.IntN(4), size)
				}
				cancel()
				g.calls.Add(1)
				if err != nil {
					g.failed.Add(1)
					g.mu.Lock()
					if len(g.errs) < 5 {
						g.errs = append(g.errs, err)
					}
					g.mu.Unlock()
				}
			}
		}()
	}
	return g
}

// Stop ends the callers after their current call and waits for them.
func (g *loadGen) Stop() {
	close(g.stop)
	g.wg.Wait()
}

func (g *loadGen) firstErrs() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return errors.Join(g.errs...)
}

func unary(ctx context.Context, c testgrpc.TestServiceClient, req, resp int) error {
	r, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{
		ResponseSize: int32(resp),
		Payload:      &testgrpc.Payload{Body: body[:req]},
	})
	if err != nil {
		return err
	}
	if len(r.GetPayload().GetBody()) != resp {
		return errors.New("short response")
	}
	return nil
}

func bidi(ctx context.Context, c testgrpc.TestServiceClient, msgs int, size func() int) error {
	s, err := c.FullDuplexCall(ctx)
	if err != nil {
		return err
	}
	for range msgs {
		n := size()
		if err := s.Send(&testgrpc.StreamingOutputCallRequest{
			ResponseParameters: []*testgrpc.ResponseParameters{{Size: int32(size())}},
			Payload:            &testgrpc.Payload{Body: body[:n]},
		}); err != nil {
			return err
		}
		if _, err := s.Recv(); err != nil {
			return err
		}
	}
	if err := s.CloseSend(); err != nil {
		return err
	}
	if _, err := s.Recv(); err != io.EOF {
		return errors.Join(errors.New("stream did not end with EOF"), err)
	}
	return nil
}

func dialN(t *testing.T, n int, addr string, tp transport) []*grpc.ClientConn {
	ccs := make([]*grpc.ClientConn, n)
	for i := range ccs {
		ccs[i] = dial(t, addr, tp.client)
	}
	return ccs
}
