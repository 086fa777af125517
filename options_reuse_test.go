package grpcmgmt_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/grpcmgmt/grpcmgmt"
	"github.com/grpcmgmt/grpcmgmt/internal/replica"
	"github.com/grpcmgmt/grpcmgmt/load"
	"github.com/grpcmgmt/grpcmgmt/loadshed"
)

// TestOptionReusedAcrossManagers: one Option value given to two Managers
// configures each with its own machinery. The load shedder of the second
// must read the second Manager's sampler (CPU 1.0: every call shed), not
// the first's (CPU 0: none), whatever order they were built in.
//
// Only the CPU limit is on: the samplers here smooth over 10 ms, so one
// stall of the machine of a few milliseconds (the race detector on a busy
// CI host) reads as queueing 0.99 on the idle replica, whose EmptyCall
// takes microseconds, and the queueing limit would rightly shed a few of
// its calls. Which sampler a Manager reads is what this test is about.
func TestOptionReusedAcrossManagers(t *testing.T) {
	shed := grpcmgmt.WithLoadShed(loadshed.Config{QueueingThreshold: loadshed.Off})
	cpu := func(v float64) grpcmgmt.Option {
		return grpcmgmt.WithLoad(load.Config{Period: 10 * time.Millisecond, TimeConstant: 10 * time.Millisecond,
			CPU: load.SourceFunc(func() (float64, error) { return v, nil })})
	}
	idle, idleClient := serveReplica(t, replica.Config{Name: "idle"}, cpu(0), shed)
	hot, hotClient := serveReplica(t, replica.Config{Name: "hot"}, cpu(1), shed)
	waitUntil(t, "the samplers' readings", func() bool {
		return idle.Load().Snapshot().CPU == 0 && hot.Load().Snapshot().CPU >= 0.999999
	})
	call := func(c testgrpc.TestServiceClient) codes.Code {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := c.EmptyCall(ctx, &testgrpc.Empty{})
		return status.Code(err)
	}
	var idleShed, hotShed int
	for range 50 {
		if call(idleClient) == codes.Unavailable {
			idleShed++
		}
		if call(hotClient) == codes.Unavailable {
			hotShed++
		}
	}
	if idleShed != 0 || hotShed < 45 {
		t.Fatalf("calls shed: %d of 50 at CPU 0 (want 0), %d of 50 at CPU 1.0 (want ≥ 45): a Manager used the other's sampler", idleShed, hotShed)
	}
}
