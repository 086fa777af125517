package grpcmgmt_test

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc"

	"github.com/grpcmgmt/grpcmgmt/internal/replica"
)

// heldBudget is the most live heap, in bytes, that the full stack (a
// Manager with every lever on, and a server built with its options) may
// keep beyond a bare grpc-go server (issue 15). On a server whose live heap
// is under Go's 4 MiB minimum heap goal, every kilobyte kept makes the
// collector run more often and mark more (bench/NOTES.md, "Fourteenth
// session" and "Fifteenth session"). Measured: 27.1 to 32.7 KB in 16 runs
// out of 16 (two modes, ≈ 27.2 and ≈ 32.7 KB), with OpenTelemetry's global
// delegating meter (no MeterProvider set); 29.4 to 35.1 KB (and once 39.7)
// while the shedder made its status errors, pushback trailer and metric
// attribute sets up front (bench/NOTES.md, "Sixteenth session"); 57.5 to
// 57.8 KB with the per-call ORCA trailer marshalled by proto.Marshal, which
// builds protobuf's tables for OrcaLoadReport. The two modes are ≈ 5.5 KB
// apart, about as much as the shedder's change, so the budget guards
// against larger ones, such as the tables'.
const heldBudget = 44 << 10

// heldProcessEnv makes TestAllocHeldProcess, run in a process of its own,
// measure.
const heldProcessEnv = "GRPCMGMT_HELD_PROCESS"

// TestAllocHeldBudget measures, in a fresh process (TestAllocHeldProcess:
// nothing of an earlier test on its heap), the live heap the full stack
// keeps beyond a bare grpc-go server, and fails above heldBudget. Skipped
// under the race detector, which allocates on its own account; make test
// runs it without it.
func TestAllocHeldBudget(t *testing.T) {
	if raceEnabled {
		t.Skip("heap sizes are not the program's own under -race; make test runs this test without it")
	}
	if testing.Short() {
		t.Skip("short")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestAllocHeldProcess$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), heldProcessEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("measuring process: %v\n%s", err, out)
	}
	_, after, ok := strings.Cut(string(out), "held extra: ")
	if !ok {
		t.Fatalf("measuring process said no figure:\n%s", out)
	}
	extra, err := strconv.ParseInt(strings.Fields(after)[0], 10, 64)
	if err != nil {
		t.Fatalf("measuring process: %v\n%s", err, out)
	}
	t.Logf("live heap kept by the full stack beyond bare grpc-go: %.1f KB (budget %.1f KB)", float64(extra)/1024, float64(heldBudget)/1024)
	if extra > heldBudget {
		t.Errorf("the full stack keeps %.1f KB of live heap beyond bare grpc-go, over the budget of %.1f KB", float64(extra)/1024, float64(heldBudget)/1024)
	}
}

// TestAllocHeldProcess is TestAllocHeldBudget's measuring process. It
// builds a bare grpc-go server (so that grpc-go's lazily built state is on
// the heap before anything is measured), a second one, then the full stack
// (all levers on, as in TestAllocBudget) and a server with its options,
// each registering internal/replica and kept until the end. The figure is
// the full stack's growth of the live heap less the second bare server's.
// No connection is made: what a connection costs moves the live heap by
// tens of kilobytes from run to run (grpc-go's buffers, its goroutines).
func TestAllocHeldProcess(t *testing.T) {
	if os.Getenv(heldProcessEnv) == "" {
		t.Skip("the measuring process of TestAllocHeldBudget")
	}
	var keep []*grpc.Server
	server := func(opts ...grpc.ServerOption) *grpc.Server {
		srv := grpc.NewServer(opts...)
		replica.New(replica.Config{Name: "held"}).Register(srv)
		keep = append(keep, srv)
		return srv
	}
	server(grpc.ChainUnaryInterceptor(noopUnary))
	h0 := liveHeap()
	server(grpc.ChainUnaryInterceptor(noopUnary))
	h1 := liveHeap()

	m := fullStack(t, "")
	if err := m.Register(server(m.ServerOptions()...)); err != nil {
		t.Fatal(err)
	}
	h2 := liveHeap()
	fmt.Printf("held extra: %d (bare %d, full stack %d)\n", (h2-h1)-(h1-h0), h1-h0, h2-h1)
	runtime.KeepAlive(keep)
}

// liveHeap returns the bytes of live heap objects after two collections
// (the second empties sync.Pool's victim caches).
func liveHeap() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}
