package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/stats"

	"github.com/grpcmgmt/grpcmgmt"
	"github.com/grpcmgmt/grpcmgmt/clientconfig"
	"github.com/grpcmgmt/grpcmgmt/goaway"
	"github.com/grpcmgmt/grpcmgmt/health"
	"github.com/grpcmgmt/grpcmgmt/internal/replica"
	"github.com/grpcmgmt/grpcmgmt/load"
	"github.com/grpcmgmt/grpcmgmt/maxage"
)

// Rotation is the rotation scenario: one server whose every connection is
// rotated about every second, by age (MAX_CONNECTION_AGE 1 s) and by policy
// (the load-triggered GOAWAY policy, driven by an injected CPU reading of
// 95 %, moving half the connections every second), while a standard grpc-go
// client and a standard @grpc/grpc-js client call it in closed loops.
type Rotation struct {
	For       time.Duration
	GoCallers int
	// NodeCallers is the number of concurrent callers of the Node client
	// (0: no Node client).
	NodeCallers int
	// Stacks are more clients (Java, Python), each with StackCallers
	// callers on one channel with the documented service config
	// (clientconfig.RoundRobin: round_robin, health checking, retries).
	Stacks       []Stack
	StackCallers int
}

// RotationResult counts what was exercised and what failed.
type RotationResult struct {
	GoCalls, GoFailed     int
	NodeCalls, NodeFailed int
	NodeErrors            []string
	// Stacks holds each of Rotation.Stacks' reports.
	Stacks map[Stack]ExternalResult
	// ConnsRotated counts connections the server saw begin, beyond the
	// first of each client.
	ConnsRotated int
}

type connCount struct{ began atomic.Int64 }

func (c *connCount) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context   { return ctx }
func (c *connCount) HandleRPC(context.Context, stats.RPCStats)                         {}
func (c *connCount) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (c *connCount) HandleConn(_ context.Context, s stats.ConnStats) {
	if _, ok := s.(*stats.ConnBegin); ok {
		c.began.Add(1)
	}
}

// Run runs the scenario; the Node client runs from c.Root/test/node.
func (s Rotation) Run(ctx context.Context, c *Cluster) (RotationResult, error) {
	var res RotationResult
	m, err := grpcmgmt.New(grpcmgmt.WithInsecure(),
		grpcmgmt.WithLogger(slog.New(slog.DiscardHandler)),
		grpcmgmt.WithLoad(load.Config{CPU: load.SourceFunc(func() (float64, error) { return 0.95, nil })}),
		grpcmgmt.WithMaxAge(maxage.Config{MaxConnectionAge: time.Second, MaxConnectionAgeGrace: 10 * time.Second}),
		grpcmgmt.WithGoAway(goaway.Config{}, goaway.PolicyConfig{CPUEnter: 0.9, Fraction: 0.5, Interval: time.Second}),
		// The injected CPU reading is for the GOAWAY policy; health keeps
		// serving so the clients keep calling.
		grpcmgmt.WithHealth(health.Config{DisableLoad: true, PropagationDelay: 10 * time.Millisecond}),
	)
	if err != nil {
		return res, err
	}
	conns := &connCount{}
	srv := grpc.NewServer(append(m.ServerOptions(), grpc.StatsHandler(conns))...)
	// Through the Registrar, the documented form: the other stacks' clients
	// see its handlers (the interceptor's form is the Go tests' default).
	replica.New(replica.Config{Name: "rot"}).Register(m.Registrar(srv))
	if err := m.Register(srv); err != nil {
		return res, err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return res, err
	}
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.Serve(lis) }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		_ = m.Shutdown(sctx)
		cancel()
		srv.Stop()
		<-served
	}()
	addr := lis.Addr().String()

	var node *exec.Cmd
	var nodeOut, nodeErr bytes.Buffer
	clients := 1
	if s.NodeCallers > 0 {
		bin, err := lookPath("node")
		if err != nil {
			return res, Require("node")
		}
		dir := filepath.Join(c.Root, "test", "node")
		node = exec.CommandContext(ctx, bin, "rotation_client.js", addr, fmt.Sprint(s.For.Milliseconds()), fmt.Sprint(s.NodeCallers))
		node.Dir = dir
		node.Stdout, node.Stderr = &nodeOut, &nodeErr
		if err := node.Start(); err != nil {
			return res, err
		}
		clients++
	}
	var runs []*ExternalRun
	for _, st := range s.Stacks {
		r, err := c.StartExternal(ctx, ExternalLoad{Stack: st, Target: "dns:///" + addr, ServiceConfig: clientconfig.RoundRobin,
			Channels: 1, Callers: s.StackCallers, CallTimeout: 10 * time.Second, For: s.For})
		if err != nil {
			return res, err
		}
		runs = append(runs, r)
		clients++
	}
	client, err := Dial(addr, `{"loadBalancingConfig":[{"round_robin":{}}]}`, 1)
	if err != nil {
		return res, err
	}
	defer client.Close()
	rec := NewRecorder()
	runCtx, cancel := context.WithTimeout(ctx, s.For)
	client.ClosedLoop(runCtx, s.GoCallers, 10*time.Second, rec)
	cancel()
	w := rec.Window(0, time.Hour)
	res.GoCalls, res.GoFailed = w.OK+w.Failed, w.Failed
	if node != nil {
		if err := node.Wait(); err != nil {
			return res, fmt.Errorf("node client: %v: %s", err, nodeErr.String())
		}
		var out struct {
			Calls, Failed int
			Errors        []string
		}
		if err := json.Unmarshal(nodeOut.Bytes(), &out); err != nil {
			return res, fmt.Errorf("node client output %q: %v (stderr %s)", nodeOut.String(), err, nodeErr.String())
		}
		res.NodeCalls, res.NodeFailed, res.NodeErrors = out.Calls, out.Failed, out.Errors
	}
	res.Stacks = map[Stack]ExternalResult{}
	for i, r := range runs {
		out, err := r.Wait(NewRecorder())
		if err != nil {
			return res, err
		}
		res.Stacks[s.Stacks[i]] = out
	}
	res.ConnsRotated = int(conns.began.Load()) - clients
	return res, nil
}
