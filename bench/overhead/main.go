// Command overhead measures what the library costs a gRPC server: unary
// calls per second, CPU time and allocations per call, and bidi streaming
// throughput with the library on, against bare grpc-go, side by side in one
// run. Legs are interleaved (bare, on, on, bare, ...: pairs alternate which
// leg runs first; at least 3 pairs, make bench runs 9).
//
//	go -C bench run ./overhead                 # the Manager's default stack
//	go -C bench run ./overhead -stack goaway   # only the GOAWAY credentials wrapper
//	go -C bench run ./overhead -stack insecure # grpc-go's insecure credentials, unwrapped
//	go -C bench run ./overhead -out out/results.json
//	go -C bench run ./overhead -in-process=false -server-profiles /tmp/prof
//	                                          # pinned legs only, each server's CPU profile
//
// Unary legs run 64 closed-loop callers with 1 KiB requests and responses;
// stream legs run 16 bidi streams exchanging 64 KiB messages.
//
// Where the machine has two CPUs and taskset, the unary and the stream
// legs run pinned first (server and client in processes of their own, on
// one CPU each; sliced.go: 11 pairs of legs, each unary leg 128 slices of
// 200 ms and each stream leg 32, taken in turn with the other kind's, on
// four sets of new processes a pair; about 15 and 4.5 minutes), which is
// what resolves a few percent (BENCH.md; the variance of a pair's ratio
// goes as one over its counted time, and at 32 slices the lowest of 11
// pairs fell below 0.95 in one run of four for the same executable against
// itself: bench/NOTES.md, "Thirteenth session", "Twentieth session"): their
// figures are overhead.unary_qps_ratio (the median of the per-pair ratios,
// with _min and _max), overhead.unary_p99_ratio (sliced legs: the
// geometric mean over every round of the ratio of its two neighbouring
// slices' p99s; _legs: the median over pairs of the legs' ratio, the
// figure before the fourteenth session),
// overhead.unary_cpu_per_call_ratio (server CPU time per call; _min,
// _max), overhead.unary_extra_allocs (server allocations per call, full
// stack − bare grpc-go with one no-op interceptor; the full stack registers
// the service through Manager.Registrar, as the package documentation
// recommends, unless -registrar=false) and the per-leg values
// behind them (overhead.unary_cpu_us_per_call_bare/_on,
// overhead.unary_allocs_per_call_bare/_bare1/_on), the garbage
// collector's part of the CPU per call (overhead.unary_gc_us_per_call_bare/_on,
// and overhead.unary_gc_share_of_extra_cpu: the collector's share of the
// full stack's extra CPU per call), and
// overhead.stream_mbps_ratio (_min, _max) with
// overhead.stream_cpu_per_mb_ratio. Then every leg runs in this process
// (client and server sharing the CPUs): those figures get the suffix
// _unpinned (overhead.unary_qps_ratio_unpinned,
// overhead.stream_mbps_ratio_unpinned: ratios of medians, as before).
//
// For looking into the figures: -server-profiles writes each pinned
// server's CPU profile over its measured window; -slice 0 runs the pinned
// legs whole, a pair of processes per leg of -leg (pinned.go, the method
// before the ninth session); -base-exe, -base-kind and -base-args put another build or
// setting in the bare role, e.g. the full stack of two builds:
//
//	go -C bench run ./overhead -in-process=false -base-kind on -base-exe /tmp/overhead.main
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/tap"

	"github.com/grpcmgmt/grpcmgmt"
	"github.com/grpcmgmt/grpcmgmt/goaway"
	"github.com/grpcmgmt/grpcmgmt/health"
	"github.com/grpcmgmt/grpcmgmt/internal/replica"
	"github.com/grpcmgmt/grpcmgmt/load"
	"github.com/grpcmgmt/grpcmgmt/loadshed"
	"github.com/grpcmgmt/grpcmgmt/orca"
)

// orcaPerCall and orcaInterval are the -orca-per-call and
// -orca-per-call-interval flags.
var (
	orcaPerCall  bool
	orcaInterval time.Duration
	// priorityHeader is the -priority-header flag: the shedder reads the
	// priority header (loadshed.DefaultPriorityHeader, in the tap); false,
	// the library's default, reads none (no tap).
	priorityHeader bool
	// registrar is the -registrar flag: the on server registers its
	// service through Manager.Registrar (the documented form); false: on
	// the server directly, served by ServerOptions' interceptor alone.
	registrar bool
	// serverProfiles is the -server-profiles flag: "" or the directory for
	// the pinned servers' CPU profiles.
	serverProfiles string
	// profileHz is the -server-profile-hz flag: the servers' profiling
	// rate (0: Go's default).
	profileHz int
	// without is the -without flag: levers the on server turns off
	// (grpcmgmt.Without), comma-separated.
	without string
	// streamWorkers is the -stream-workers flag: grpc.NumStreamWorkers for
	// every server of the run (0: grpc-go's default, a goroutine a stream).
	streamWorkers int
	// sliceLog is the -slice-log flag: "" or a file that gets one line a
	// counted slice (sliceLine), to study the spread within a pair.
	sliceLog string
)

func main() {
	pairs := flag.Int("pairs", 3, "interleaved bare/on pairs per figure (at least 3)")
	leg := flag.Duration("leg", 2*time.Second, "measured time of one leg (after a 300ms warm-up)")
	stack := flag.String("stack", "manager", `what "on" means: "manager" (grpcmgmt.New() defaults), "goaway" (only the credentials wrapper) or "insecure" (grpc-go's own insecure credentials, unwrapped: the control for "goaway")`)
	out := flag.String("out", "", "merge the figures into this results.json")
	flag.BoolVar(&orcaPerCall, "orca-per-call", true, "with -stack manager: per-call ORCA reports on (off: out-of-band only), to see their share of the overhead")
	flag.BoolVar(&registrar, "registrar", true, "with -stack manager: register the service through Manager.Registrar (its unary handler does the levers' work; grpc-go's interceptor allocations are skipped); false: on the server directly, served by ServerOptions' interceptor, to compare the two forms")
	flag.BoolVar(&priorityHeader, "priority-header", false, "with -stack manager: the shedder reads the priority header (loadshed.DefaultPriorityHeader, in a tap handle), to see its share of the overhead; false, the library's default: no header, no tap")
	flag.DurationVar(&orcaInterval, "orca-per-call-interval", 0, "with -stack manager: orca.Config.PerCallInterval (each connection's first unary call in each interval carries the report; 0: the default)")
	flag.StringVar(&without, "without", "", `with -stack manager: levers to turn off on the on server, comma-separated (grpcmgmt.Without: "goaway,health"); with -base-kind on and -base-args "-without X", the figures are one lever's share`)
	flag.IntVar(&streamWorkers, "stream-workers", 0, "grpc.NumStreamWorkers(N) on every server (bare and on alike; with -base-args \"-stream-workers=0\" only the on role's): grpc-go's pool of stream goroutines, whose stacks stay grown; 0: a new goroutine a stream")
	only := flag.String("only", "", `run only the figure whose name contains this ("unary", "stream")`)
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file (split the legs with pprof -tagfocus leg=on or leg=bare); with -serve, of the measured window only")
	pinned := flag.Bool("pinned", true, "also run the unary legs pinned (server on CPU 0, client on CPU 1, separate processes) where the machine has 2 CPUs and taskset; their figures take the main names, the in-process ones get the suffix _unpinned")
	inProcess := flag.Bool("in-process", true, "also run the in-process legs (client and server sharing the CPUs: the _unpinned unary figures and overhead.stream_mbps_ratio); false with pinned legs runs only those")
	flag.IntVar(&profileHz, "server-profile-hz", 0, "with -server-profiles: the profiles' sampling rate in Hz (runtime.SetCPUProfileRate; both roles' servers must be builds that have this flag); 0: Go's 100 Hz, too coarse for items under 1 % of a leg's CPU")
	flag.StringVar(&sliceLog, "slice-log", "", "sliced legs: write each counted slice's raw figures to this file, one JSON object a line (pair, round, set, kind, calls, client ns, server CPU ns, server wall ns, GCs, the collector's CPU ns, the client's p99 µs)")
	flag.StringVar(&serverProfiles, "server-profiles", "", "write a CPU profile of each pinned leg's server, over its measured window, into this directory (<kind>-<pair>.pprof; compare with go tool pprof -diff_base)")
	slice := flag.Duration("slice", 200*time.Millisecond, "pinned legs in slices of this long (sliced.go: both servers run throughout, their clients call in turn), after -slice-warmup; 0: whole legs of -leg, a pair of processes per leg (pinned.go)")
	sliceWarm := flag.Duration("slice-warmup", 50*time.Millisecond, "the uncounted start of each slice")
	slicePairs := flag.Int("slice-pairs", 11, "pairs of sliced legs (at least 9)")
	sliceRounds := flag.Int("slice-rounds", 128, "slices of each kind that make one sliced unary leg, taken in turn (at least -slice-sets); the per-pair spread falls as one over the square root of it")
	streamRounds := flag.Int("stream-slice-rounds", 32, "the same for a sliced stream leg (at least -slice-sets)")
	sliceSets := flag.Int("slice-sets", 4, "sliced legs: each pair's rounds run on this many sets of new server and client processes in turn, started bare first and full stack first by turns (at least 1, at most -slice-rounds and -stream-slice-rounds)")
	flag.StringVar(&baseExe, "base-exe", "", "pinned legs: the executable (a build of this command) whose server takes the bare role; default this one")
	flag.StringVar(&baseKind, "base-kind", "bare", `pinned legs: the server kind of the bare role ("on" with -base-exe compares two builds of the library; the figures are then "on ÷ base")`)
	flag.StringVar(&baseArgs, "base-args", "", `pinned legs: more flags for the bare role's server (e.g. "-orca-per-call=false" with -base-kind on)`)
	poolLogs := flag.Bool("pool", false, "measure nothing: read the slice logs (-slice-log) named as arguments and print each run's unary figures and all of them pooled (per-pair ratios: median, mean, standard error; the p99 ratio over every round)")
	serve := flag.String("serve", "", "internal: serve a server of this kind (bare, bare1, bare1tap, bareheld, on) for a pinned leg")
	profileAll := flag.Bool("profile-all", false, "internal: with -serve and -cpuprofile, profile from the first measured window to the end")
	memRate := flag.Int("memprofilerate", 0, "with -serve: runtime.MemProfileRate (1 records every allocation, for the heap profiles a server writes when told \"heapprofile PATH\" on its stdin); 0 leaves the default")
	client := flag.String("client", "", "internal: run a pinned leg's client against this address")
	sliced := flag.Bool("sliced", false, "internal: with -client, the client of sliced legs")
	slicedStream := flag.Bool("sliced-stream", false, "internal: with -client -sliced, bidi streams instead of unary calls")
	flag.Parse()
	if *cpuprofile != "" && *serve == "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			log.Fatalf("overhead: -cpuprofile: %v", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatalf("overhead: -cpuprofile: %v", err)
		}
		defer pprof.StopCPUProfile()
	}
	if *poolLogs {
		if flag.NArg() == 0 {
			log.Fatal("overhead: -pool: name the slice logs to pool")
		}
		if err := pool(os.Stdout, flag.Args()); err != nil {
			log.Fatalf("overhead: -pool: %v", err)
		}
		return
	}
	// A pinned leg's children (pinned.go); with -cpuprofile, the profile is
	// theirs (the server's covers its measured window only).
	if *serve != "" {
		if *memRate > 0 {
			runtime.MemProfileRate = *memRate
		}
		serveMain(*serve, *stack, *cpuprofile, *profileAll)
		return
	}
	if *client != "" {
		if *sliced {
			slicedClientMain(*client, *slicedStream)
		} else {
			clientMain(*client, *leg)
		}
		return
	}
	if *pairs < 3 {
		log.Fatal("overhead: -pairs must be at least 3")
	}
	if serverProfiles != "" {
		if err := os.MkdirAll(serverProfiles, 0o755); err != nil {
			log.Fatalf("overhead: -server-profiles: %v", err)
		}
	}
	if sliceLog != "" {
		// Empty now; the sliced runs (unary, then stream) append to it.
		if err := os.WriteFile(sliceLog, nil, 0o644); err != nil {
			log.Fatalf("overhead: -slice-log: %v", err)
		}
	}
	if *stack != "manager" && *stack != "goaway" && *stack != "insecure" {
		log.Fatalf("overhead: -stack must be manager, goaway or insecure, got %q", *stack)
	}
	if *slice > 0 {
		if *slicePairs < 9 {
			log.Fatal("overhead: -slice-pairs must be at least 9")
		}
		if *sliceSets < 1 {
			log.Fatal("overhead: -slice-sets must be at least 1")
		}
		if *sliceRounds < *sliceSets || *streamRounds < *sliceSets {
			log.Fatal("overhead: -slice-rounds and -stream-slice-rounds must be at least -slice-sets")
		}
	}
	figures := map[string]float64{}
	pin := *pinned && canPin() && (*only == "" || strings.Contains("overhead.unary_qps_ratio", *only))
	if *pinned && !canPin() {
		fmt.Println("overhead: fewer than 2 CPUs or no taskset: unary legs unpinned only")
	}
	if pin {
		var f map[string]float64
		var err error
		if *slice > 0 {
			f, err = slicedFigures(*slicePairs, *sliceRounds, *sliceSets, *stack, *sliceWarm, *slice, false)
		} else {
			f, err = pinnedFigures(*pairs, *stack, *leg)
		}
		if err != nil {
			log.Fatalf("overhead: %v", err)
		}
		for k, v := range f {
			figures[k] = v
		}
	}
	// The stream legs pinned and sliced as well (-slice > 0): the same
	// method, 16 bidi streams of 64 KiB exchanges for a client's load.
	pinStream := *pinned && canPin() && *slice > 0 && (*only == "" || strings.Contains("overhead.stream_mbps_ratio", *only))
	if pinStream {
		f, err := slicedFigures(*slicePairs, *streamRounds, *sliceSets, *stack, *sliceWarm, *slice, true)
		if err != nil {
			log.Fatalf("overhead: %v", err)
		}
		for k, v := range f {
			figures[k] = v
		}
	}
	// The in-process legs: client and server share both CPUs. With pinned
	// legs of the same kind their figures keep the suffix _unpinned.
	unpinned := func(name string) string {
		if pin && strings.HasPrefix(name, "overhead.unary_") || pinStream && strings.HasPrefix(name, "overhead.stream_") {
			return name + "_unpinned"
		}
		return name
	}
	for _, m := range []struct {
		figure string
		unit   string
		run    func(*grpc.ClientConn, time.Duration) (float64, error)
	}{
		{"overhead.unary_qps_ratio", "calls/s", unaryLeg},
		{"overhead.unary_p99_ratio", "µs p99", unaryP99Leg},
		{"overhead.stream_mbps_ratio", "MB/s", streamLeg},
	} {
		if (pin || pinStream) && !*inProcess || pin && m.figure == "overhead.unary_p99_ratio" {
			continue // measured by the pinned legs
		}
		m.figure = unpinned(m.figure)
		var bare, on []float64
		if *only != "" && !strings.Contains(m.figure, *only) {
			continue
		}
		for i := range *pairs {
			// ABBA: the leg that runs first alternates, so that an order
			// effect (warm caches, a previous leg's teardown) cancels out.
			order := []bool{false, true}
			if i%2 == 1 {
				order = []bool{true, false}
			}
			for _, withLib := range order {
				var v float64
				var err error
				// The leg's goroutines (server and client) carry a "leg"
				// label, so a -cpuprofile can be split: pprof -tagfocus leg=on.
				pprof.Do(context.Background(), pprof.Labels("leg", map[bool]string{false: "bare", true: "on"}[withLib]), func(context.Context) {
					v, err = measure(withLib, *stack, *leg, m.run)
				})
				if err != nil {
					log.Fatalf("overhead: %s pair %d: %v", m.figure, i, err)
				}
				if withLib {
					on = append(on, v)
				} else {
					bare = append(bare, v)
				}
				fmt.Printf("%-28s pair %d %-4s %10.1f %s\n", m.figure, i, map[bool]string{false: "bare", true: "on"}[withLib], v, m.unit)
			}
		}
		ratio := median(on) / median(bare)
		fmt.Printf("%-28s median bare %.1f, on %.1f %s -> %.3f (stack %s)\n", m.figure, median(bare), median(on), m.unit, ratio, *stack)
		figures[m.figure] = ratio
	}
	for k, v := range figures {
		fmt.Printf("%s %.3f\n", k, v)
	}
	if *out != "" {
		if err := merge(*out, figures); err != nil {
			log.Fatal(err)
		}
	}
}

// shedConfig is the full stack's shedder: a static limit out of reach, the
// CPU and queueing limits off (see startServer).
// withoutList returns the -without flag's levers.
func withoutList() []grpcmgmt.Feature {
	var f []grpcmgmt.Feature
	for _, n := range strings.Split(without, ",") {
		if n != "" {
			f = append(f, grpcmgmt.Feature(n))
		}
	}
	return f
}

func shedConfig() loadshed.Config {
	c := loadshed.Config{MaxInFlight: 1 << 20, CPUThreshold: loadshed.Off, QueueingThreshold: loadshed.Off}
	if priorityHeader {
		c.PriorityHeader = loadshed.DefaultPriorityHeader
	}
	return c
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// mean returns the mean of v.
func mean(v []float64) float64 {
	var sum float64
	for _, x := range v {
		sum += x
	}
	return sum / float64(len(v))
}

// measure starts a server (bare or with the library), runs one leg against
// it and stops everything.
func measure(withLib bool, stack string, d time.Duration, run func(*grpc.ClientConn, time.Duration) (float64, error)) (float64, error) {
	kind := "bare"
	if withLib {
		kind = "on"
	}
	addr, stop, err := startServer(kind, stack)
	if err != nil {
		return 0, err
	}
	defer stop()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return 0, err
	}
	defer cc.Close()
	return run(cc, d)
}

// startServer serves internal/replica on 127.0.0.1:0 and returns its
// address and the function that stops it. kind is "bare" (grpc-go with no
// option), "bare1" (grpc-go with one no-op unary interceptor: the baseline
// of overhead.unary_extra_allocs), "bare1tap" (bare1 and a no-op tap
// handle: -base-kind bare1tap measures the library's own work beyond what
// grpc-go charges for those) or "on" (the library, as stack says).
func startServer(kind, stack string) (string, func(), error) {
	var opts []grpc.ServerOption
	var mgr, held *grpcmgmt.Manager // held: bareheld's, on no call's path
	switch kind {
	case "bare":
	case "bare1":
		opts = []grpc.ServerOption{grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			return h(ctx, req)
		})}
	case "bare1tap":
		// What any library with a tap handle and an interceptor costs
		// through grpc-go alone (the tap.Info, the interceptor's info and
		// closure): the base against which the full stack's figure is the
		// library's own work.
		opts = []grpc.ServerOption{
			grpc.InTapHandle(func(ctx context.Context, _ *tap.Info) (context.Context, error) { return ctx, nil }),
			grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
				return h(ctx, req)
			}),
		}
	case "bareheld":
		// Bare grpc-go serving, beside a full stack (the "manager" stack's
		// Manager, its services registered on a server that serves
		// nothing) that is built and running but on no call's path: its
		// live heap, its sampler goroutine and its metrics, and nothing
		// else. -base-kind bareheld then measures the full stack's cost
		// beyond what the Manager costs a server by existing (the
		// collector's share of it: bench/NOTES.md).
		m, err := managerStack()
		if err != nil {
			return "", nil, err
		}
		held = m
		idle := grpc.NewServer(m.ServerOptions()...)
		replica.New(replica.Config{Name: "overhead"}).Register(m.Registrar(idle))
		if err := m.Register(idle); err != nil {
			return "", nil, err
		}
	case "on":
		switch stack {
		case "manager":
			// BENCH.md: all features on, no threshold crossed. The closed
			// loop saturates the CPU and queues calls (64 callers on a
			// pinned server: the queueing signal is high), so every CPU
			// threshold is set out of reach and the queueing signal off
			// (else the levers would act and the legs would measure
			// reconnects and shed calls, not overhead); every per-call path
			// still runs: credentials wrapper and frame tracking, call
			// counter and timer, shedder (static limit, priority tap), ORCA
			// per-call reports.
			m, err := managerStack()
			if err != nil {
				return "", nil, err
			}
			mgr = m
			opts = m.ServerOptions()
		case "insecure":
			// What grpc-go does with credentials of any kind (a handshake,
			// an AuthInfo): the control for "goaway", so that the wrapper's
			// share is goaway ÷ insecure.
			opts = []grpc.ServerOption{grpc.Creds(insecure.NewCredentials())}
		case "goaway":
			t, err := goaway.NewTracker(goaway.Config{Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				return "", nil, err
			}
			opts = []grpc.ServerOption{grpc.Creds(t.WrapCredentials(insecure.NewCredentials()))}
		}
	default:
		return "", nil, fmt.Errorf("unknown server kind %q", kind)
	}
	if streamWorkers > 0 {
		opts = append(opts, grpc.NumStreamWorkers(uint32(streamWorkers)))
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := grpc.NewServer(opts...)
	if mgr != nil && registrar {
		replica.New(replica.Config{Name: "overhead"}).Register(mgr.Registrar(srv))
	} else {
		replica.New(replica.Config{Name: "overhead"}).Register(srv)
	}
	if mgr != nil {
		if err := mgr.Register(srv); err != nil {
			return "", nil, err
		}
	}
	go func() { _ = srv.Serve(lis) }()
	stop := func() {
		for _, m := range []*grpcmgmt.Manager{mgr, held} {
			if m != nil {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_ = m.Shutdown(ctx) // stops the servers registered with it
				cancel()
			}
		}
		srv.Stop()
	}
	return lis.Addr().String(), stop, nil
}

// managerStack returns the "manager" stack's Manager (see startServer).
func managerStack() (*grpcmgmt.Manager, error) {
	return grpcmgmt.New(grpcmgmt.WithInsecure(), grpcmgmt.WithLogger(slog.New(slog.DiscardHandler)),
		grpcmgmt.WithLoad(load.Config{QueueingEnter: load.Off}),
		grpcmgmt.WithGoAway(goaway.Config{}, goaway.PolicyConfig{CPUEnter: 4}),
		grpcmgmt.WithHealth(health.Config{CPUEnter: 10}),
		grpcmgmt.WithLoadShed(shedConfig()),
		grpcmgmt.WithORCA(orca.Config{DisablePerCall: !orcaPerCall, PerCallInterval: orcaInterval}),
		grpcmgmt.Without(withoutList()...))
}

const warmup = 300 * time.Millisecond

// unaryLeg: 64 callers, 1 KiB request and response; calls per second.
func unaryLeg(cc *grpc.ClientConn, d time.Duration) (float64, error) {
	qps, _, err := unaryRun(cc, d, nil)
	return qps, err
}

// unaryP99Leg is the unary leg's p99 latency in microseconds.
func unaryP99Leg(cc *grpc.ClientConn, d time.Duration) (float64, error) {
	_, p99, err := unaryRun(cc, d, nil)
	return float64(p99.Microseconds()), err
}

// unaryRun: 64 closed-loop callers, 1 KiB requests and responses; calls/s
// and the p99 latency of the calls made while counting. window, if not
// nil, is called as counting starts (true) and stops (false).
func unaryRun(cc *grpc.ClientConn, d time.Duration, window func(start bool)) (float64, time.Duration, error) {
	client := testgrpc.NewTestServiceClient(cc)
	payload := make([]byte, 1024)
	var (
		count    atomic.Int64
		counting atomic.Bool
		stop     atomic.Bool
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
		mu       sync.Mutex
		lats     []time.Duration
	)
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := &testgrpc.SimpleRequest{ResponseSize: 1024, Payload: &testgrpc.Payload{Body: payload}}
			mine := make([]time.Duration, 0, 4096)
			defer func() { mu.Lock(); lats = append(lats, mine...); mu.Unlock() }()
			for !stop.Load() {
				t0 := time.Now()
				if _, err := client.UnaryCall(context.Background(), req); err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
				if counting.Load() {
					count.Add(1)
					mine = append(mine, time.Since(t0))
				}
			}
		}()
	}
	time.Sleep(warmup)
	if window != nil {
		window(true)
	}
	counting.Store(true)
	start := time.Now()
	time.Sleep(d)
	counting.Store(false)
	elapsed := time.Since(start)
	if window != nil {
		window(false)
	}
	stop.Store(true)
	wg.Wait()
	var p99 time.Duration
	if len(lats) > 0 {
		slices.Sort(lats)
		p99 = lats[len(lats)*99/100]
	}
	return float64(count.Load()) / elapsed.Seconds(), p99, firstErr
}

// streamLeg: 16 bidi streams, each sending 64 KiB messages and receiving
// 64 KiB back; MB/s received by the client.
func streamLeg(cc *grpc.ClientConn, d time.Duration) (float64, error) {
	client := testgrpc.NewTestServiceClient(cc)
	const size = 64 << 10
	payload := make([]byte, size)
	var (
		bytes    atomic.Int64
		counting atomic.Bool
		stop     atomic.Bool
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	fail := func(err error) { errOnce.Do(func() { firstErr = err }) }
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := client.FullDuplexCall(context.Background())
			if err != nil {
				fail(err)
				return
			}
			req := &testgrpc.StreamingOutputCallRequest{
				ResponseParameters: []*testgrpc.ResponseParameters{{Size: size}},
				Payload:            &testgrpc.Payload{Body: payload},
			}
			for !stop.Load() {
				if err := s.Send(req); err != nil {
					fail(err)
					return
				}
				r, err := s.Recv()
				if err != nil {
					fail(err)
					return
				}
				if counting.Load() {
					bytes.Add(int64(len(r.GetPayload().GetBody())))
				}
			}
			_ = s.CloseSend()
			if _, err := s.Recv(); !errors.Is(err, io.EOF) {
				fail(fmt.Errorf("stream end: %v", err))
			}
		}()
	}
	time.Sleep(warmup)
	counting.Store(true)
	start := time.Now()
	time.Sleep(d)
	counting.Store(false)
	elapsed := time.Since(start)
	stop.Store(true)
	wg.Wait()
	return float64(bytes.Load()) / 1e6 / elapsed.Seconds(), firstErr
}

// merge adds figures to the flat JSON object in path (BENCH.md's
// results.json), keeping what is there.
func merge(path string, figures map[string]float64) error {
	all := map[string]any{}
	if b, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(b, &all); err != nil {
			return fmt.Errorf("overhead: %s: %w", path, err)
		}
	}
	for k, v := range figures {
		all[k] = v
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(all, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
