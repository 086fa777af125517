package cluster

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/grpcmgmt/grpcmgmt/clientconfig"
)

// Drain is the drain scenario: Replicas replicas behind a real dnsmasq,
// standard grpc-go clients (dns:///, round_robin, health checking, retry
// policy) under closed-loop load, and a rolling restart: each replica in
// turn gets SIGTERM (lame-duck shutdown through Manager.Shutdown), exits,
// and starts again on the same address.
type Drain struct {
	ServerBin   string
	ServerArgs  []string
	Replicas    int
	Conns       int
	Callers     int
	Settle      time.Duration // load before the first restart and after each
	StopTimeout time.Duration
	CallTimeout time.Duration
	DNSPort     int // 0: any free port
	// Stack is the client implementation (GoStack: in-process grpc-go).
	Stack Stack
}

// DrainResult is the outcome of a rolling restart.
type DrainResult struct {
	Failed, Calls int
	// StopSeconds is how long each replica took from SIGTERM to exit.
	StopSeconds []float64
	// FailedCodes counts failed calls by status code.
	FailedCodes map[string]int
	// PerSec counts successful calls per second per replica; StopAt is
	// when each replica was sent SIGTERM (seconds from the start).
	PerSec []map[string]int
	StopAt []float64
}

// MedianStopSeconds is the median of StopSeconds.
func (r DrainResult) MedianStopSeconds() float64 {
	if len(r.StopSeconds) == 0 {
		return 0
	}
	s := slices.Clone(r.StopSeconds)
	slices.Sort(s)
	return s[len(s)/2]
}

// Run runs the rolling restart in cluster c.
func (s Drain) Run(ctx context.Context, c *Cluster) (DrainResult, error) {
	ips := make([]string, s.Replicas)
	for i := range ips {
		ips[i] = fmt.Sprintf("127.0.0.%d", i+2)
	}
	port, err := FreePort(ips...)
	if err != nil {
		return DrainResult{}, err
	}
	var reps []*Replica
	for i, ip := range ips {
		r, err := c.StartReplica(s.ServerBin, fmt.Sprintf("r%d", i+1), ip, port, s.ServerArgs...)
		if err != nil {
			return DrainResult{}, err
		}
		reps = append(reps, r)
	}
	dns, err := c.StartDNS("svc.drain.test", s.DNSPort, ips...)
	if err != nil {
		return DrainResult{}, err
	}
	rec := NewRecorder()
	l := dnsLoad(s.Stack, dns, port)
	l.ServiceConfig, l.Channels, l.Callers, l.CallTimeout = clientconfig.RoundRobin, s.Conns, s.Callers, s.CallTimeout
	stopLoad, err := c.startLoad(ctx, l, rec)
	if err != nil {
		return DrainResult{}, err
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = stopLoad()
		}
	}()

	res := DrainResult{FailedCodes: map[string]int{}}
	wait := func(d time.Duration) error {
		select {
		case <-time.After(d):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := wait(s.Settle); err != nil {
		return res, err
	}
	for _, r := range reps {
		res.StopAt = append(res.StopAt, time.Since(rec.Start()).Seconds())
		took, err := r.Stop(s.StopTimeout)
		res.StopSeconds = append(res.StopSeconds, took.Seconds())
		if err != nil {
			return res, fmt.Errorf("stop %s: %w", r.Name, err)
		}
		if err := r.Restart(); err != nil {
			return res, err
		}
		if err := wait(s.Settle); err != nil {
			return res, err
		}
	}
	stopped = true
	if err := stopLoad(); err != nil {
		return res, err
	}
	w := rec.Window(0, time.Hour)
	res.Failed, res.Calls = w.Failed, w.OK+w.Failed
	res.PerSec = rec.PerSecond(int(time.Since(rec.Start()) / time.Second))
	for code, n := range w.Codes {
		res.FailedCodes[code.String()] += n
	}
	return res, nil
}
