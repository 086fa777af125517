package cluster

import (
	"context"
	"sync"
	"time"

	"google.golang.org/grpc"
	_ "google.golang.org/grpc/balancer/weightedroundrobin" // weighted_round_robin configs
	"google.golang.org/grpc/credentials/insecure"
	_ "google.golang.org/grpc/health" // client-side health checking
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"

	"github.com/grpcmgmt/grpcmgmt/internal/replica"
)

// Client is a set of standard grpc-go client connections to one target.
type Client struct {
	conns []*grpc.ClientConn
}

// Dial opens n independent client connections (n separate channels, as n
// client processes would) to target with the service config.
func Dial(target, serviceConfig string, n int, opts ...grpc.DialOption) (*Client, error) {
	c := &Client{}
	for range n {
		cc, err := grpc.NewClient(target, append([]grpc.DialOption{
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultServiceConfig(serviceConfig),
		}, opts...)...)
		if err != nil {
			c.Close()
			return nil, err
		}
		cc.Connect()
		c.conns = append(c.conns, cc)
	}
	return c, nil
}

// Close closes every connection.
func (c *Client) Close() {
	for _, cc := range c.conns {
		cc.Close()
	}
}

// call makes one UnaryCall on connection i and records it.
func (c *Client) call(i int, timeout time.Duration, req *testpb.SimpleRequest, rec *Recorder) {
	var hdr metadata.MD
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	start := time.Now()
	_, err := testpb.NewTestServiceClient(c.conns[i%len(c.conns)]).UnaryCall(ctx, req, grpc.Header(&hdr))
	cancel()
	name := ""
	if v := hdr.Get(replica.HeaderName); len(v) > 0 {
		name = v[0]
	}
	rec.RecordCall(name, time.Since(start), err)
}

// ClosedLoop runs callers concurrent callers (spread over the connections)
// until ctx ends, each starting a call as soon as its last one ended.
func (c *Client) ClosedLoop(ctx context.Context, callers int, timeout time.Duration, rec *Recorder) {
	req := &testpb.SimpleRequest{}
	var wg sync.WaitGroup
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				c.call(i, timeout, req, rec)
			}
		}()
	}
	wg.Wait()
}

// OpenLoop starts rate calls per second (spread over the connections)
// until ctx ends, whatever the server's speed, each with the timeout as its
// deadline; it waits for the calls in flight before it returns.
func (c *Client) OpenLoop(ctx context.Context, rate float64, timeout time.Duration, rec *Recorder) {
	req := &testpb.SimpleRequest{}
	interval := time.Duration(float64(time.Second) / rate)
	var wg sync.WaitGroup
	next := time.Now()
	for i := 0; ctx.Err() == nil; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); c.call(i, timeout, req, rec) }()
		next = next.Add(interval)
		if d := time.Until(next); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
			}
		}
	}
	wg.Wait()
}
