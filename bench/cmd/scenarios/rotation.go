package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/grpcmgmt/grpcmgmt/bench/cluster"
)

// rotation: every connection rotated about every second (by age and by the
// load policy) for 60 s, with grpc-go, @grpc/grpc-js, grpc-java and C-core
// (Python) clients calling at once.
func runRotation(ctx context.Context, e *env) error {
	res, err := cluster.Rotation{For: 60 * time.Second, GoCallers: 32, NodeCallers: 8,
		Stacks: []cluster.Stack{cluster.JavaStack, cluster.PythonStack}, StackCallers: 8}.Run(ctx, e.c)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "   go %d calls %d failed, node %d calls %d failed %v, %d connections rotated\n",
		res.GoCalls, res.GoFailed, res.NodeCalls, res.NodeFailed, res.NodeErrors, res.ConnsRotated)
	e.results["rotation.go.failed"] = float64(res.GoFailed)
	e.results["rotation.go.calls"] = float64(res.GoCalls)
	e.results["rotation.node.failed"] = float64(res.NodeFailed)
	e.results["rotation.node.calls"] = float64(res.NodeCalls)
	for st, out := range res.Stacks {
		fmt.Fprintf(os.Stderr, "   %s %d calls %d failed %v\n", st.Name(), out.Calls, out.Failed, out.Errors)
		e.results["rotation."+st.Name()+".failed"] = float64(out.Failed)
		e.results["rotation."+st.Name()+".calls"] = float64(out.Calls)
	}
	e.results["rotation.conns_rotated"] = float64(res.ConnsRotated)
	return nil
}
