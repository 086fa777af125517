package main

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
)

// streamHolder keeps long-lived server streams open and resumes each one
// when the server ends it with OK: what a server handler does when it sees
// goaway.Draining (its connection is being rotated). The client knows how
// many responses it has, so it asks the new stream, which grpc-go opens on
// a new connection (possibly to another replica), for the rest.
type streamHolder struct {
	mu      sync.Mutex
	current map[int]string // stream → replica serving it
	resumed atomic.Int64
	failed  atomic.Int64
}

// hold runs n streams, one response every interval, until ctx ends. Each
// stream asks for a minute of responses at a time.
func (h *streamHolder) hold(ctx context.Context, client testpb.TestServiceClient, n int, interval time.Duration, wg *sync.WaitGroup) {
	h.current = map[int]string{}
	req := &testpb.StreamingOutputCallRequest{}
	for range int(time.Minute / interval) {
		req.ResponseParameters = append(req.ResponseParameters, &testpb.ResponseParameters{IntervalUs: int32(interval / time.Microsecond)})
	}
	for i := range n {
		wg.Go(func() {
			for ctx.Err() == nil {
				stream, err := client.StreamingOutputCall(ctx, req)
				got := 0
				for err == nil {
					if _, err = stream.Recv(); err == nil {
						if got++; got == 1 {
							if hdr, err := stream.Header(); err == nil {
								h.set(i, hdr)
							}
						}
					}
				}
				switch {
				case ctx.Err() != nil:
				case errors.Is(err, io.EOF) && got < len(req.ResponseParameters):
					h.resumed.Add(1) // drained: resume on a new connection
				case !errors.Is(err, io.EOF):
					h.failed.Add(1)
					time.Sleep(100 * time.Millisecond) // back off before reopening
				}
			}
		})
	}
}

func (h *streamHolder) set(i int, hdr metadata.MD) {
	if v := hdr.Get("x-replica"); len(v) > 0 {
		h.mu.Lock()
		h.current[i] = v[0]
		h.mu.Unlock()
	}
}

// perReplica counts the streams by the replica serving them now.
func (h *streamHolder) perReplica() map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string]int{}
	for _, r := range h.current {
		out[r]++
	}
	return out
}
