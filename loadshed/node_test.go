package loadshed_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/grpcmgmt/grpcmgmt/clientconfig"
	"github.com/grpcmgmt/grpcmgmt/internal/replica"
	"github.com/grpcmgmt/grpcmgmt/loadshed"
)

// nodeModules returns test/node/node_modules, failing the test when node or
// @grpc/grpc-js is missing.
func nodeModules(t *testing.T) (node, modules string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node not found: run make test-deps")
	}
	modules, err = filepath.Abs(filepath.Join("..", "test", "node", "node_modules"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(modules, "@grpc", "grpc-js", "package.json")); err != nil {
		t.Fatalf("@grpc/grpc-js not installed in %s: run make test-deps", modules)
	}
	return node, modules
}

// TestNodeClientRetriesOnOtherReplica: a standard @grpc/grpc-js client with
// ClientServiceConfig, over two replicas of which one is at its limit, sees
// zero failures: grpc-js honours the pushback and retries on the other
// replica.
func TestNodeClientRetriesOnOtherReplica(t *testing.T) {
	node, modules := nodeModules(t)
	sa := newShedder(t, loadshed.Config{MaxInFlight: 1})
	ga := newGate()
	addrA := serve(t, replica.New(replica.Config{Name: "a"}), shedOpts(sa, nil, []grpc.UnaryServerInterceptor{ga.unary})...)
	addrB := serve(t, replica.New(replica.Config{Name: "b"}))

	holder := dial(t, addrA)
	var held sync.WaitGroup
	held.Add(1)
	go func() {
		defer held.Done()
		_, _ = holder.EmptyCall(withTest(t.Context(), "block"), &testpb.Empty{})
	}()
	waitUntil(t, 5*time.Second, "replica a at its limit", func() bool { return sa.InFlight() == 1 })

	const calls = 100
	cmd := exec.CommandContext(t.Context(), node, filepath.Join("testdata", "retry_client.js"),
		"ipv4:"+addrA+","+addrB, strconv.Itoa(calls), clientconfig.RoundRobin)
	cmd.Env = append(os.Environ(), "NODE_PATH="+modules)
	out, err := cmd.Output()
	close(ga.release)
	held.Wait()
	if err != nil {
		t.Fatalf("node client: %v\n%s", err, out)
	}
	var res struct {
		OK, Failed int
		Served     map[string]int
		Errors     []string
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("node client output %q: %v", out, err)
	}
	shed := shedCount(t, sa)
	t.Logf("grpc-js: %d ok, %d failed, served %v; replica a shed %d attempts", res.OK, res.Failed, res.Served, shed)
	if res.Failed != 0 || res.OK != calls {
		t.Fatalf("grpc-js: %d of %d calls failed (%v), want 0", res.Failed, calls, res.Errors)
	}
	if res.Served["b"] != calls {
		t.Errorf("served %v, want every call on b", res.Served)
	}
	if shed == 0 {
		t.Errorf("replica a shed nothing: the client never tried it, so retries were not exercised")
	}
}
