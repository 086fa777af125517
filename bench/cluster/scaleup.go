package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ScaleUpL4 is the scaleup_l4 scenario: N replicas behind HAProxy (TCP,
// round-robin per connection), many client connections, closed-loop load;
// at AddAt one more replica enters HAProxy's rotation. It reports when the
// new replica first held at least 90 % of its fair share for 3 s in a row.
type ScaleUpL4 struct {
	ServerBin   string
	ServerArgs  []string // flags for every replica (the lever under test)
	Replicas    int      // before the scale-out
	Conns       int      // client connections (independent channels)
	Callers     int
	AddAt, For  time.Duration
	CallTimeout time.Duration
	// ReplicaSetDNS, when set, is a DNS name a real dnsmasq serves with the
	// replicas in rotation; the replicas watch it (-replica-set-name) and at
	// AddAt its answer grows with HAProxy's rotation, as a Kubernetes
	// Service's endpoints and its headless DNS name do.
	ReplicaSetDNS string
	// Stack is the client implementation (GoStack: in-process grpc-go).
	Stack Stack
}

// ScaleUpResult is the outcome of one scale-up run.
type ScaleUpResult struct {
	// SecondsToFairShare is the time from the scale-out until the new
	// replica held ≥ 90 % of its fair share for 3 s; negative if never.
	SecondsToFairShare float64
	// EndShare is the new replica's share ÷ fair share over the last 3 s.
	EndShare float64
	Failed   int
	Calls    int
	PerSec   []map[string]int
	NewName  string
}

// Run runs the scenario in cluster c.
func (s ScaleUpL4) Run(ctx context.Context, c *Cluster) (ScaleUpResult, error) {
	ips := make([]string, s.Replicas+1)
	for i := range ips {
		ips[i] = fmt.Sprintf("127.0.0.%d", i+2)
	}
	port, err := FreePort(ips...)
	if err != nil {
		return ScaleUpResult{}, err
	}
	args, dns, err := c.replicaSetDNS(s.ReplicaSetDNS, ips[:s.Replicas], s.ServerArgs)
	if err != nil {
		return ScaleUpResult{}, err
	}
	var reps []*Replica
	var names []string
	for i, ip := range ips {
		r, err := c.StartReplica(s.ServerBin, fmt.Sprintf("r%d", i+1), ip, port, args...)
		if err != nil {
			return ScaleUpResult{}, err
		}
		reps = append(reps, r)
		if i < s.Replicas {
			names = append(names, r.Name)
		}
	}
	newName := reps[s.Replicas].Name
	lb, err := c.StartHAProxy(0, reps, names...)
	if err != nil {
		return ScaleUpResult{}, err
	}
	rec, err := c.loadThenGrow(ctx, ExternalLoad{Stack: s.Stack, Target: "dns:///" + lb.Addr}, s.Conns, s.Callers, s.CallTimeout, s.AddAt, s.For, func() error {
		if err := lb.Enable(newName); err != nil {
			return err
		}
		if dns != nil {
			return dns.Set(ips...)
		}
		return nil
	})
	if err != nil {
		return ScaleUpResult{}, err
	}
	return fairShare(rec, s.AddAt, s.For, s.Replicas+1, newName), nil
}

// loadThenGrow runs closed-loop load from conns client connections of l's
// client (l.Stack to l.Target) with round_robin for dur, and calls grow
// (the scale-out) at addAt.
func (c *Cluster) loadThenGrow(ctx context.Context, l ExternalLoad, conns, callers int, callTimeout, addAt, dur time.Duration, grow func() error) (*Recorder, error) {
	rec := NewRecorder()
	l.ServiceConfig = `{"loadBalancingConfig":[{"round_robin":{}}]}`
	l.Channels, l.Callers, l.CallTimeout = conns, callers, callTimeout
	stop, err := c.startLoad(ctx, l, rec)
	if err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithTimeout(ctx, dur)
	defer cancel()
	select {
	case <-time.After(addAt):
	case <-runCtx.Done():
	}
	growErr := grow()
	<-runCtx.Done()
	return rec, errors.Join(stop(), growErr)
}
