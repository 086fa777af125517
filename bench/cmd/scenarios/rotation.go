package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/grpcmgmt/grpcmgmt/bench/cluster"
)

// rotation: every connection rotated about every second (by age and by the
// load policy) for 60 s, with a grpc-go and a @grpc/grpc-js client.
func runRotation(ctx context.Context, e *env) error {
	res, err := cluster.Rotation{For: 60 * time.Second, GoCallers: 32, NodeCallers: 8}.Run(ctx, e.c)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "   go %d calls %d failed, node %d calls %d failed %v, %d connections rotated\n",
		res.GoCalls, res.GoFailed, res.NodeCalls, res.NodeFailed, res.NodeErrors, res.ConnsRotated)
	e.results["rotation.go.failed"] = float64(res.GoFailed)
	e.results["rotation.go.calls"] = float64(res.GoCalls)
	e.results["rotation.node.failed"] = float64(res.NodeFailed)
	e.results["rotation.node.calls"] = float64(res.NodeCalls)
	e.results["rotation.conns_rotated"] = float64(res.ConnsRotated)
	return nil
}
