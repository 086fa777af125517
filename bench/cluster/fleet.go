package cluster

import (
	"context"
	"fmt"
	"time"
)

// Fleet is a replica set behind a real dnsmasq, called by standard clients
// (grpc-go, or C-core with Stack PythonStack) on dns:/// with a service
// config, under open-loop load.
type Fleet struct {
	Bin string
	// Args are the flags of each replica (one entry per replica).
	Args          [][]string
	ServiceConfig string
	Conns         int
	Rate          float64
	For           time.Duration
	CallTimeout   time.Duration
	// Stack is the client: GoStack (in-process grpc-go) or PythonStack.
	Stack Stack
}

// Run starts the fleet, runs the load and returns the recorder.
func (f Fleet) Run(ctx context.Context, c *Cluster) (*Recorder, error) {
	ips := make([]string, len(f.Args))
	for i := range ips {
		ips[i] = fmt.Sprintf("127.0.0.%d", i+2)
	}
	port, err := FreePort(ips...)
	if err != nil {
		return nil, err
	}
	for i, ip := range ips {
		if _, err := c.StartReplica(f.Bin, fmt.Sprintf("r%d", i+1), ip, port, f.Args[i]...); err != nil {
			return nil, err
		}
	}
	dns, err := c.StartDNS("svc.fleet.test", 0, ips...)
	if err != nil {
		return nil, err
	}
	rec := NewRecorder()
	if f.Stack != GoStack {
		l := dnsLoad(f.Stack, dns, port)
		l.ServiceConfig, l.Channels, l.Rate, l.For, l.CallTimeout = f.ServiceConfig, f.Conns, f.Rate, f.For, f.CallTimeout
		run, err := c.StartExternal(ctx, l)
		if err != nil {
			return nil, err
		}
		_, err = run.Wait(rec)
		return rec, err
	}
	client, err := Dial(fmt.Sprintf("dns://%s/%s:%d", dns.Addr, dns.Name, port), f.ServiceConfig, f.Conns)
	if err != nil {
		return nil, err
	}
	defer client.Close()
	rctx, cancel := context.WithTimeout(ctx, f.For)
	defer cancel()
	client.OpenLoop(rctx, f.Rate, f.CallTimeout, rec)
	return rec, ctx.Err()
}
