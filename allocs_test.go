package grpcmgmt_test

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"

	"github.com/grpcmgmt/grpcmgmt"
	"github.com/grpcmgmt/grpcmgmt/goaway"
	"github.com/grpcmgmt/grpcmgmt/health"
	"github.com/grpcmgmt/grpcmgmt/internal/replica"
	"github.com/grpcmgmt/grpcmgmt/load"
	"github.com/grpcmgmt/grpcmgmt/loadshed"
	"github.com/grpcmgmt/grpcmgmt/orca"
)

// allocBudget is the most allocations the full stack, as New makes it by
// default, may add to the server's work for a unary call over bare grpc-go
// with one interceptor installed (issue 15: at most 2, what the design
// achieves). Measured when this was written: 0.00 in every run. The
// per-call ORCA report, on each connection's first call of every second,
// adds nothing a call (on one call in 8, before, 0.50: 4 per report in
// grpc-go's trailer handling, metadata.Join in SetTrailer 3 and the header
// field 1). A quarter of an allocation of headroom: two allocations in one
// run of callsPerRun calls.
const allocBudget = 0.25

// allocBudgetHeader is allocBudget for a server that reads a priority
// header (loadshed.Config.PriorityHeader set): one allocation more,
// grpc-go's tap.Info, which it allocates a call for any tap handle (the
// shedder's reads the header where it is a plain map). 1.00 in 8 runs out
// of 8 when this was written.
const allocBudgetHeader = 1.25

// TestAllocBudget measures the server's allocations for a real unary call
// over loopback (the client runs in a process of its own) with
// testing.AllocsPerRun: bare
// grpc-go with one no-op interceptor, against the Manager with every lever
// on (shedding with a static limit, ORCA per-call reports at their default
// rate, GOAWAY tracking, health, max age), and fails if the difference
// exceeds allocBudget. It is skipped under the race detector, which
// allocates on its own account; make test runs it once more without it.
func TestAllocBudget(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not the program's own under -race; make test runs this test without it")
	}
	if testing.Short() {
		t.Skip("short")
	}
	bare := allocsPerCall(t, []grpc.ServerOption{grpc.ChainUnaryInterceptor(noopUnary)}, nil, false)
	for _, tc := range []struct {
		name   string
		header string
		budget float64
	}{
		{"full stack", "", allocBudget},
		{"full stack reading the priority header", loadshed.DefaultPriorityHeader, allocBudgetHeader},
	} {
		m := fullStack(t, tc.header)
		full := allocsPerCall(t, m.ServerOptions(), m, false)
		t.Logf("server allocations per unary call: bare grpc-go with one interceptor %.2f, %s %.2f, extra %.2f (budget %.2f)",
			bare, tc.name, full, full-bare, tc.budget)
		if full-bare > tc.budget {
			t.Errorf("the %s adds %.2f allocations per unary call (%.2f against %.2f), over the budget of %.2f",
				tc.name, full-bare, full, bare, tc.budget)
		}
	}
}

// TestAllocRegistrar holds what Manager.Registrar is for: with the
// service registered through it, the full stack adds at most allocBudget
// allocations a unary call to bare grpc-go with no interceptor at all
// (0.00 when this was written), where through ServerOptions' interceptor
// alone it adds two (the interceptor's info and handler closure that
// grpc-go's generated code allocates for any interceptor).
func TestAllocRegistrar(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not the program's own under -race; make test runs this test without it")
	}
	if testing.Short() {
		t.Skip("short")
	}
	bare := allocsPerCall(t, nil, nil, false)

	m := fullStack(t, "")
	full := allocsPerCall(t, m.ServerOptions(), m, true)

	t.Logf("server allocations per unary call: bare grpc-go %.2f, full stack through the Registrar %.2f, extra %.2f (budget %.2f)",
		bare, full, full-bare, allocBudget)
	if full-bare > allocBudget {
		t.Errorf("through the Registrar the full stack adds %.2f allocations per unary call (%.2f against %.2f with no interceptor), over the budget of %.2f",
			full-bare, full, bare, allocBudget)
	}
}

// noopUnary is the one interceptor of the bare server the budgets compare
// with: grpc-go charges any interceptor, so the full stack is not charged
// for having one.
func noopUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	return h(ctx, req)
}

// fullStack returns a Manager with every lever on, as the budgets measure
// it (shedding with a static limit, ORCA per-call reports at their default
// rate, GOAWAY tracking, health, max age), shut down when the test ends;
// header is the shedder's PriorityHeader.
// The sampler's own work (a sample every Period, reading /proc) is a cost
// per second, not per call: a long period and injected readings keep it
// out of the count, which would otherwise grow with the machine's slowness.
func fullStack(t *testing.T, header string) *grpcmgmt.Manager {
	t.Helper()
	fixed := load.SourceFunc(func() (float64, error) { return 0.1, nil })
	m, err := grpcmgmt.New(grpcmgmt.WithInsecure(), grpcmgmt.WithLogger(slog.New(slog.DiscardHandler)),
		grpcmgmt.WithLoad(load.Config{Period: 10 * time.Second, CPU: fixed, Memory: fixed}),
		grpcmgmt.WithGoAway(goaway.Config{}, goaway.PolicyConfig{CPUEnter: 4}),
		grpcmgmt.WithHealth(health.Config{CPUEnter: 10}),
		grpcmgmt.WithLoadShed(loadshed.Config{MaxInFlight: 1 << 20, CPUThreshold: loadshed.Off, PriorityHeader: header}),
		grpcmgmt.WithORCA(orca.Config{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Shutdown(context.Background()) })
	return m
}

// allocClientEnv names the server address for the client process of
// allocsPerCall (TestAllocClient).
const allocClientEnv = "GRPCMGMT_ALLOC_CLIENT"

// callsPerRun is the calls the client makes for each byte it reads: one
// testing.AllocsPerRun run. AllocsPerRun reports whole allocations per run,
// so 8 calls resolve an eighth of an allocation per call.
const callsPerRun = 8

// allocsPerCall serves internal/replica with opts on 127.0.0.1:0 (through
// m.Registrar with viaRegistrar) and returns the mean allocations this
// process (the server) makes for one unary call with a 1 KiB payload. The
// client runs in a process of its own (this test binary, TestAllocClient),
// so only the server's allocations are counted.
func allocsPerCall(t *testing.T, opts []grpc.ServerOption, m *grpcmgmt.Manager, viaRegistrar bool) float64 {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(opts...)
	if viaRegistrar {
		replica.New(replica.Config{Name: "allocs"}).Register(m.Registrar(srv))
	} else {
		replica.New(replica.Config{Name: "allocs"}).Register(srv)
	}
	if m != nil {
		if err := m.Register(srv); err != nil {
			t.Fatal(err)
		}
	}
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()

	cmd := exec.Command(os.Args[0], "-test.run=^TestAllocClient$", "-test.count=1")
	cmd.Env = append(os.Environ(), allocClientEnv+"="+lis.Addr().String())
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = in.Close() // the client exits at EOF
		_ = cmd.Wait()
	}()
	buf := []byte{'c'}
	run := func() {
		if _, err := in.Write(buf); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(out, buf); err != nil || buf[0] != 'c' {
			rest, _ := io.ReadAll(out)
			t.Fatalf("client: %v: %s", err, append(buf, rest...))
		}
	}
	for range 25 { // connect, warm grpc-go's buffer pools
		run()
	}
	return testing.AllocsPerRun(1000, run) / callsPerRun
}

// TestAllocClient is allocsPerCall's client process: it makes callsPerRun
// calls for each byte it reads, and answers each run with the byte.
func TestAllocClient(t *testing.T) {
	addr := os.Getenv(allocClientEnv)
	if addr == "" {
		t.Skip("the client process of TestAllocBudget")
	}
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	client := testgrpc.NewTestServiceClient(cc)
	req := &testgrpc.SimpleRequest{ResponseSize: 1024, Payload: &testgrpc.Payload{Body: make([]byte, 1024)}}
	in, out := bufio.NewReader(os.Stdin), bufio.NewWriter(os.Stdout)
	for {
		b, err := in.ReadByte()
		if err != nil {
			return // EOF: the test is done
		}
		for range callsPerRun {
			if _, err := client.UnaryCall(context.Background(), req); err != nil {
				t.Fatal(err)
			}
		}
		_ = out.WriteByte(b)
		_ = out.Flush()
	}
}
