package goaway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"

	"github.com/grpcmgmt/grpcmgmt/goaway"
	"github.com/grpcmgmt/grpcmgmt/internal/replica"
)

// nodeDir is the npm tree with @grpc/grpc-js, installed by make test-deps.
const nodeDir = "../test/node"

func needNode(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is not installed: run make test-deps")
	}
	if _, err := os.Stat(filepath.Join(nodeDir, "node_modules", "@grpc", "grpc-js")); err != nil {
		t.Fatal("@grpc/grpc-js is not installed in test/node: run make test-deps")
	}
	return node
}

// TestNodeClientAcrossGoAways: a standard @grpc/grpc-js client sees zero
// failed calls while every connection receives a GOAWAY every 200 ms, and
// reconnects each time (counted server side).
func TestNodeClientAcrossGoAways(t *testing.T) {
	node := needNode(t)
	tr := newTracker(t, goaway.Config{Grace: 10 * time.Second})
	addr, _ := startServer(t, grpc.Creds(tr.WrapCredentials(insecure.NewCredentials())))

	const duration = 4 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), duration+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "rotation_client.js", addr, "4000", "8")
	cmd.Dir = nodeDir
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	seen := map[uint64]bool{}
	sent := 0
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var werr error
loop:
	for {
		select {
		case werr = <-done:
			break loop
		case <-tick.C:
			for _, c := range tr.Conns() {
				seen[c.ID] = true
			}
			sent += tr.GoAwayAll(goaway.ReasonManual)
		}
	}
	if werr != nil {
		t.Fatalf("node client: %v\n%s", werr, errOut.String())
	}
	var res struct {
		Calls, Failed int
		Errors        []string
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("node output %q: %v (stderr %s)", out.String(), err, errOut.String())
	}
	t.Logf("node: %d calls, %d failed; %d GOAWAYs sent, %d connections seen", res.Calls, res.Failed, sent, len(seen))
	if res.Failed != 0 {
		t.Fatalf("%d of %d node calls failed: %v", res.Failed, res.Calls, res.Errors)
	}
	if res.Calls < 100 || sent < 5 || len(seen) < 5 {
		t.Fatalf("not exercised: %d calls, %d GOAWAYs, %d connections", res.Calls, sent, len(seen))
	}
}

// TestNodeStreamsResumeOnDrain: a standard @grpc/grpc-js client of
// long-lived server streams, on a server whose every connection reaches its
// max age (grpc-go's own GOAWAY) about every 500 ms, and for the first 2 s
// is sent a GOAWAY of ours (reason load) every 300 ms, and whose handlers
// listen to
// goaway.Draining: every stream ends with OK at the drain and resumes on a
// new connection; none fails, none is cut at the grace.
func TestNodeStreamsResumeOnDrain(t *testing.T) {
	node := needNode(t)
	m := newMeter()
	tr := newTracker(t, goaway.Config{Grace: time.Minute, MeterProvider: m})
	addr := serveStreams(t, replica.Config{Name: "r1"}, []grpc.ServerOption{
		grpc.Creds(tr.WrapCredentials(insecure.NewCredentials())),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionAge: 500 * time.Millisecond, MaxConnectionAgeGrace: time.Minute}),
	}, tr.StreamServerInterceptor())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "stream_client.js", fmt.Sprintf(`{"target":%q,"streams":8,"intervalMs":20,"durationMs":4000}`, addr))
	cmd.Dir = nodeDir
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	tick := time.NewTicker(300 * time.Millisecond)
	defer tick.Stop()
	ours := time.Now().Add(2 * time.Second)
	var werr error
wait:
	for {
		select {
		case werr = <-done:
			break wait
		case now := <-tick.C:
			if now.Before(ours) {
				tr.GoAwayAll(goaway.ReasonLoad)
			}
		}
	}
	if werr != nil {
		t.Fatalf("node stream client: %v\n%s", werr, errOut.String())
	}
	var res struct {
		Messages, Resumes, Failed int
		Errors                    []string
		GapsMs                    []int
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("node output %q: %v (stderr %s)", out.String(), err, errOut.String())
	}
	t.Logf("grpc-js: %d messages, %d resumes, %d failed %v, gaps %v ms", res.Messages, res.Resumes, res.Failed, res.Errors, res.GapsMs)
	if res.Failed != 0 || res.Resumes < 8 || res.Messages < 500 {
		t.Errorf("%d streams failed (%v), %d resumed, %d messages: want 0 failed, ≥ 8 resumed (every stream at least once), ≥ 500 messages", res.Failed, res.Errors, res.Resumes, res.Messages)
	}
	if cut := m.sum(t, "grpcmgmt.goaway.drained_streams", attribute.String("ended", "cut")); cut != 0 {
		t.Errorf("%d streams cut at grace, want 0", cut)
	}
	for _, r := range []string{"max_age", "load"} {
		if n := m.sum(t, "grpcmgmt.goaway.drained_streams", attribute.String("reason", r), attribute.String("ended", "handler")); n == 0 {
			t.Errorf("no stream drained for reason %s", r)
		}
	}
}
