package goaway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/grpcmgmt/grpcmgmt/goaway"
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
