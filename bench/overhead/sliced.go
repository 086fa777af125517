package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
)

// Sliced pinned legs (-slice 200ms; make bench runs them; -slice 0 runs
// the whole-leg pairs of pinned.go). On this shared machine what disturbs a
// measurement (other work, the hypervisor) comes and goes within seconds:
// with whole legs of 2 s one after the other, it lands in one leg of a pair
// and not the other. Here both servers (bare and full stack) run for the
// whole measurement, each in a process of its own on CPU 0, and each has a
// client process of its own on CPU 1; the parent lets one client call at a
// time, in short slices (-slice counted after a -slice-warmup), and a leg
// is the sum of -slice-rounds slices (-stream-slice-rounds for streams)
// taken in turn with the other kind's
// (which kind goes first alternates from round to round: A B B A …). A
// pair's two legs are then spread over the same seconds, and what disturbs
// one disturbs the other about as much. Each pair's rounds run on
// -slice-sets sets of new processes in turn, started bare first and full
// stack first by turns: a process's draw when it starts moves its CPU per
// call by ≈ 2 %, and a pair then averages several draws. The idle server
// of the moment costs nothing but its background goroutines (the full
// stack's sampler), which count against it in its own slices as before.
// With stream, the clients run streamOp's bidi streams instead of unary
// calls, and the figures are the stream ones.
//
// Measured here (bench/NOTES.md, "Ninth session", "Tenth session"): one
// standard deviation of the per-pair CPU-per-call ratios of a build against
// itself was 0.03–0.06 with 6 rounds of 250 ms, against 0.07–0.13 with
// whole legs in the same hour, 0.014–0.024 with 30 rounds of 200 ms on two
// process sets a run (whose centre then moved with those two draws: 1.012,
// 1.014), 0.017 with 32 rounds on four sets a pair (centre 0.992); the
// spread goes as one over the square root of the rounds (the counted time),
// so unary legs take 128 (the per-pair calls/s ratios of the full stack
// ÷ bare grpc-go then spanned 0.975–1.002, against 0.946–1.026 at 32).
//
// The server's protocol is pinned.go's ("mark", "report"). The client's:
//
//	client: connects, starts 64 callers, paused; "ready"
//	parent "run"   -> callers call; "ok"
//	parent "count" -> calls from now on are counted; "ok"
//	parent "stop"  -> counting stops, callers pause after their call;
//	                  "result CALLS ELAPSED_NS P99_US" once all are paused
//
// A server's CPU profile (-server-profiles) covers all its slices (it
// starts at the first "mark" and ends when the server exits).

// slicedProc is one kind's server and client processes.
type slicedProc struct {
	kind     string
	srv, cli *exec.Cmd
	srvIn    io.WriteCloser
	cliIn    io.WriteCloser
	srvOut   *bufio.Scanner
	cliOut   *bufio.Scanner
}

// The -base-exe, -base-kind and -base-args flags: what the pinned legs'
// "bare" role runs (sliced or whole). By default bare grpc-go from this
// executable; pointed at another build of this command and "on", the
// figures compare two versions of the library (or, with -base-args, two
// settings) side by side.
var (
	baseExe  string
	baseKind string
	baseArgs string
)

// startSliced starts kind's server on CPU 0 and its client on CPU 1. exe is
// the executable of the server ("" for this one); extra are more flags for
// it.
func startSliced(exe, kind, stack, profile string, stream bool, extra ...string) (*slicedProc, error) {
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return nil, err
		}
	}
	p := &slicedProc{kind: kind}
	args := append([]string{"-c", "0", exe, "-serve", kind, "-stack", stack,
		"-orca-per-call=" + strconv.FormatBool(orcaPerCall),
		"-priority-header=" + strconv.FormatBool(priorityHeader), "-cpuprofile", profile, "-profile-all"}, serverFlags()...)
	p.srv = exec.Command("taskset", append(args, extra...)...)
	p.srv.Stderr = os.Stderr
	p.srvIn, _ = p.srv.StdinPipe()
	srvOut, _ := p.srv.StdoutPipe()
	if err := p.srv.Start(); err != nil {
		return nil, err
	}
	p.srvOut = bufio.NewScanner(srvOut)
	l, err := p.line(p.srvOut, "server")
	if err != nil {
		p.close()
		return nil, err
	}
	addr, ok := strings.CutPrefix(l, "addr ")
	if !ok {
		p.close()
		return nil, fmt.Errorf("%s server said %q", kind, l)
	}
	self, err := os.Executable()
	if err != nil {
		p.close()
		return nil, err
	}
	p.cli = exec.Command("taskset", "-c", "1", self, "-client", addr, "-sliced", "-sliced-stream="+strconv.FormatBool(stream))
	p.cli.Stderr = os.Stderr
	p.cliIn, _ = p.cli.StdinPipe()
	cliOut, _ := p.cli.StdoutPipe()
	if err := p.cli.Start(); err != nil {
		p.close()
		return nil, err
	}
	p.cliOut = bufio.NewScanner(cliOut)
	if l, err := p.line(p.cliOut, "client"); err != nil || l != "ready" {
		p.close()
		return nil, fmt.Errorf("%s client: %q %v", kind, l, err)
	}
	return p, nil
}

func (p *slicedProc) line(sc *bufio.Scanner, who string) (string, error) {
	if !sc.Scan() {
		return "", fmt.Errorf("%s %s ended: %v", p.kind, who, sc.Err())
	}
	return sc.Text(), nil
}

// ask sends cmd to the client or the server and returns its answer.
func (p *slicedProc) ask(toServer bool, cmd string) (string, error) {
	w, sc, who := p.cliIn, p.cliOut, "client"
	if toServer {
		w, sc, who = p.srvIn, p.srvOut, "server"
	}
	if _, err := fmt.Fprintln(w, cmd); err != nil {
		return "", fmt.Errorf("%s %s: %w", p.kind, who, err)
	}
	return p.line(sc, who)
}

// sliceRaw is what one or more slices of a kind measured, summed, so
// that the slices of a pair's rounds add up to one leg.
type sliceRaw struct {
	calls, elapsedNs, cliCPUNs float64 // the client's
	serverReport                       // the server's
	p99us                      []float64
}

// sliceLine is one counted slice in the -slice-log file.
type sliceLine struct {
	Pair, Round, Set int
	Kind             string
	Stream           bool
	Calls, ClientNs  float64
	CPUNs, WallNs    float64
	GCs              float64
	GCNs             float64 `json:",omitempty"` // the collector's CPU time; absent when the server did not say
	P99us            float64 // the client's p99 latency over the slice
}

// zeroNaN returns v, or 0 for NaN (which JSON cannot carry).
func zeroNaN(v float64) float64 {
	if math.IsNaN(v) {
		return 0
	}
	return v
}

func (r *sliceRaw) add(o sliceRaw) {
	r.calls += o.calls
	r.elapsedNs += o.elapsedNs
	r.cliCPUNs += o.cliCPUNs
	r.serverReport.add(o.serverReport)
	r.p99us = append(r.p99us, o.p99us...)
}

// result is the leg the summed slices make: calls per second over the
// client's counted time, per-call figures over the server's measured
// windows (which differ from the client's by the coordination's few ms, as
// in pinnedLeg), and the median of the slices' p99 latencies.
func (r sliceRaw) result() pinnedResult {
	res := r.perCall(r.calls/r.elapsedNs*1e9, median(r.p99us))
	res.cliCPU, res.srvCPU = r.cliCPUNs/r.elapsedNs, r.cpuNs/r.wallNs
	return res
}

// slice runs one slice: warm-up, then d counted, the server measured over
// the same window.
func (p *slicedProc) slice(warm, d time.Duration) (sliceRaw, error) {
	if l, err := p.ask(false, "run"); err != nil || l != "ok" {
		return sliceRaw{}, fmt.Errorf("%s client run: %q %v", p.kind, l, err)
	}
	time.Sleep(warm)
	if l, err := p.ask(false, "count"); err != nil || l != "ok" {
		return sliceRaw{}, fmt.Errorf("%s client count: %q %v", p.kind, l, err)
	}
	if l, err := p.ask(true, "mark"); err != nil || l != "ok" {
		return sliceRaw{}, fmt.Errorf("%s server mark: %q %v", p.kind, l, err)
	}
	time.Sleep(d)
	l, err := p.ask(true, "report")
	if err != nil {
		return sliceRaw{}, err
	}
	rep, err := parseReport(l)
	if err != nil {
		return sliceRaw{}, fmt.Errorf("%s: %w", p.kind, err)
	}
	r := sliceRaw{serverReport: rep}
	l, err = p.ask(false, "stop")
	if err != nil {
		return sliceRaw{}, err
	}
	var p99us float64
	if _, err := fmt.Sscanf(l, "result %g %g %g %g", &r.calls, &r.elapsedNs, &p99us, &r.cliCPUNs); err != nil {
		return sliceRaw{}, fmt.Errorf("%s client result %q: %v", p.kind, l, err)
	}
	if r.calls <= 0 || r.wallNs <= 0 || r.elapsedNs <= 0 {
		return sliceRaw{}, fmt.Errorf("%s: no calls measured (%q)", p.kind, l)
	}
	r.p99us = []float64{p99us}
	return r, nil
}

func (p *slicedProc) close() {
	if p.cliIn != nil {
		_ = p.cliIn.Close()
	}
	if p.cli != nil && p.cli.Process != nil {
		_ = p.cli.Wait()
	}
	if p.srvIn != nil {
		_ = p.srvIn.Close()
	}
	if p.srv != nil && p.srv.Process != nil {
		_ = p.srv.Wait()
	}
}

// slicedFigures is pinnedFigures with sliced legs: pairs pairs of bare and
// full-stack legs, each leg the sum of rounds slices taken in turn with the
// other kind's (the kind that goes first alternates from round to round,
// and from pair to pair: ABBA) on sets sets of processes, then, for the
// unary figures, three legs of bare grpc-go with one no-op interceptor
// (the allocation baseline), and the same figures. With stream, the
// stream legs and their figures (streamFigures).
func slicedFigures(pairs, rounds, sets int, stack string, warm, d time.Duration, stream bool) (map[string]float64, error) {
	figure, unit, prefix := "overhead.unary (sliced)", "calls/s", ""
	if stream {
		figure, unit, prefix = "overhead.stream (sliced)", "MB/s", "stream-"
	}
	procs := map[string]*slicedProc{}
	stop := func() {
		for k, p := range procs {
			p.close()
			delete(procs, k)
		}
	}
	defer stop()
	// start starts the servers and clients of kinds, in that order. Each
	// pair's rounds run on sets new processes in turn (sets of rounds ÷
	// sets rounds), started bare first in even sets and the other way
	// round in odd ones, so that what a process draws when it starts
	// (where its memory lands, what the first one warmed; ≈ 2 % of CPU a
	// call from one draw to the next, bench/NOTES.md "Tenth session")
	// weighs on both roles alike, and on many draws in every pair.
	start := func(set int, kinds ...string) error {
		for _, kind := range kinds {
			exe, serve, extra := "", kind, []string(nil)
			if kind == "bare" {
				exe, serve, extra = baseExe, baseKind, strings.Fields(baseArgs)
			}
			p, err := startSliced(exe, serve, stack, profilePath(prefix+kind, set), stream, extra...)
			if err != nil {
				return err
			}
			procs[kind] = p
		}
		return nil
	}
	// restart stops the processes and starts new ones for process set
	// set, bare first in even sets, and runs their first slices
	// uncounted (a new process's first slices allocate more a call: pools
	// and stacks still growing; as for bare1 below).
	restart := func(set int) error {
		stop()
		kinds := []string{"bare", "on"}
		if set%2 == 1 {
			kinds = []string{"on", "bare"}
		}
		if err := start(set, kinds...); err != nil {
			return err
		}
		for range 2 {
			for _, kind := range kinds {
				if _, err := procs[kind].slice(warm, d); err != nil {
					return fmt.Errorf("sliced set %d warm-up: %w", set, err)
				}
			}
		}
		return nil
	}
	var lines *json.Encoder // -slice-log; main truncated the file
	if sliceLog != "" {
		f, err := os.OpenFile(sliceLog, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		lines = json.NewEncoder(f)
	}
	var qpsR, p99R, cpuR, cpuBare, cpuOn, allocBare, allocOn, allocBare1, gcBare, gcOn []float64
	// The logs of every round's p99 ratio, full stack ÷ bare, of the two
	// slices taken next to each other (overhead.unary_p99_ratio is their
	// mean, exponentiated). A slice's p99 is mostly whether a stall of the
	// host fell in it (it ranges over 3× within a leg on this machine), so
	// only neighbouring slices compare like with like, and the mean over
	// some 1 400 rounds resolves what the median of 11 pairs of legs does
	// not (bench/NOTES.md, "Fourteenth session").
	var p99LogR []float64
	for i := range pairs {
		raw := map[string]*sliceRaw{"bare": {}, "on": {}}
		var pairLogR []float64
		for j := range rounds {
			// Round j runs on the pair's set j·sets/rounds: new processes
			// at the first round of each.
			if set := j * sets / rounds; j == 0 || set != (j-1)*sets/rounds {
				if err := restart(i*sets + set); err != nil {
					return nil, err
				}
			}
			order := []string{"bare", "on"}
			if (i+j)%2 == 1 {
				order = []string{"on", "bare"}
			}
			p99 := map[string]float64{}
			for _, kind := range order {
				r, err := procs[kind].slice(warm, d)
				if err != nil {
					return nil, fmt.Errorf("sliced pair %d round %d: %w", i, j, err)
				}
				raw[kind].add(r)
				p99[kind] = max(r.p99us[0], 1)
				if lines != nil {
					if err := lines.Encode(sliceLine{Pair: i, Round: j, Set: j * sets / rounds, Kind: kind, Stream: stream,
						Calls: r.calls, ClientNs: r.elapsedNs, CPUNs: r.cpuNs, WallNs: r.wallNs, GCs: r.gcs, GCNs: zeroNaN(r.gcNs), P99us: r.p99us[0]}); err != nil {
						return nil, err
					}
				}
			}
			pairLogR = append(pairLogR, math.Log(p99["on"]/p99["bare"]))
		}
		p99LogR = append(p99LogR, pairLogR...)
		b, o := raw["bare"].result(), raw["on"].result()
		for _, leg := range []struct {
			kind string
			r    pinnedResult
		}{{"bare", b}, {"on", o}} {
			kind, r, rate := leg.kind, leg.r, leg.r.qps
			if stream {
				rate = r.qps * streamMsg / 1e6
			}
			fmt.Printf("%-28s pair %2d %-4s %10.1f %s  p99 %6.0f µs  server %6.2f µs CPU/call  %6.2f allocs/call  %6.0f B/call  %5.2f GCs/1k calls  %5.2f µs GC/call  CPU busy server %.2f client %.2f\n",
				figure, i, kind, rate, unit, r.p99us, r.cpuPerCall, r.mallocsCall, r.bytesCall, r.gcsPer1k, r.gcPerCall, r.srvCPU, r.cliCPU)
		}
		if !stream {
			fmt.Printf("%-28s pair %2d p99 ratio %.3f (the geometric mean of its rounds' ratios; of its legs' p99s %.3f)\n",
				figure, i, math.Exp(mean(pairLogR)), o.p99us/b.p99us)
		}
		qpsR = append(qpsR, o.qps/b.qps)
		p99R = append(p99R, o.p99us/b.p99us)
		cpuR = append(cpuR, o.cpuPerCall/b.cpuPerCall)
		cpuBare, cpuOn = append(cpuBare, b.cpuPerCall), append(cpuOn, o.cpuPerCall)
		allocBare, allocOn = append(allocBare, b.mallocsCall), append(allocOn, o.mallocsCall)
		gcBare, gcOn = append(gcBare, b.gcPerCall), append(gcOn, o.gcPerCall)
	}
	stop()
	if stream {
		return streamFigures(pairs, qpsR, cpuR), nil
	}
	if err := start(-1, "bare1"); err != nil {
		return nil, err
	}
	// The allocation baseline: three legs as long as the others, after a
	// slice that warms the new process up (its first slices allocate
	// more a call: pools and stacks still growing).
	if _, err := procs["bare1"].slice(warm, d); err != nil {
		return nil, fmt.Errorf("sliced bare1 warm-up: %w", err)
	}
	for i := range 3 {
		var raw sliceRaw
		for j := range rounds {
			r, err := procs["bare1"].slice(warm, d)
			if err != nil {
				return nil, fmt.Errorf("sliced bare1 leg %d slice %d: %w", i, j, err)
			}
			raw.add(r)
		}
		r := raw.result()
		fmt.Printf("%-28s leg %d  bare1 %10.1f calls/s  server %6.2f allocs/call\n", "overhead.unary (sliced)", i, r.qps, r.mallocsCall)
		allocBare1 = append(allocBare1, r.mallocsCall)
	}
	f := overheadFigures(fmt.Sprintf("sliced, %d rounds a pair", rounds), pairs, qpsR, p99R, cpuR, cpuBare, cpuOn, allocBare, allocOn, allocBare1)
	gcFigures(f, gcBare, gcOn, cpuBare, cpuOn)
	// overheadFigures's p99 ratio is the legs' (the figure before the
	// fourteenth session), kept for comparison.
	f["overhead.unary_p99_ratio_legs"] = f["overhead.unary_p99_ratio"]
	f["overhead.unary_p99_ratio"] = math.Exp(mean(p99LogR))
	fmt.Printf("overhead.unary p99 ratio: %.3f, the geometric mean of %d rounds' ratios of neighbouring slices (of the legs' p99s, the earlier figure: %.3f)\n",
		f["overhead.unary_p99_ratio"], len(p99LogR), f["overhead.unary_p99_ratio_legs"])
	return f, nil
}

// slicedClientMain is the -client -sliced child (see the protocol above).
// With stream, its callers are 16 bidi streams, each sending a 64 KiB
// message and receiving 64 KiB back in turn, and a "call" is one such
// exchange (streamLeg's load, in slices); otherwise 64 callers of 1 KiB
// unary calls (unaryRun's).
func slicedClientMain(addr string, stream bool) {
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Fprintln(os.Stderr, "overhead -client:", err)
		os.Exit(1)
	}
	defer cc.Close()
	client := testgrpc.NewTestServiceClient(cc)
	callers, newOp := 64, unaryOp
	if stream {
		callers, newOp = 16, streamOp
	}
	var (
		mu       sync.Mutex
		resume   = sync.NewCond(&mu) // callers wait on it while paused
		allIn    = sync.NewCond(&mu) // the main goroutine waits on it for every caller to pause
		running  atomic.Bool         // read by the callers without the lock
		quit     bool
		parked   int
		counting atomic.Bool
		lats     = make([][]time.Duration, callers) // each caller's, while counting; read when all are parked
		failed   atomic.Pointer[error]
	)
	for i := range callers {
		go func() {
			op, end, err := newOp(client)
			if err != nil {
				failed.CompareAndSwap(nil, &err)
			}
			defer end()
			lats[i] = make([]time.Duration, 0, 4096)
			for {
				if !running.Load() {
					mu.Lock()
					for !running.Load() && !quit {
						if parked++; parked == callers {
							allIn.Signal()
						}
						resume.Wait()
						parked--
					}
					q := quit
					mu.Unlock()
					if q {
						return
					}
				}
				t0 := time.Now()
				if err := op(); err != nil {
					failed.CompareAndSwap(nil, &err)
					time.Sleep(10 * time.Millisecond)
					continue
				}
				if counting.Load() {
					lats[i] = append(lats[i], time.Since(t0))
				}
			}
		}()
	}
	waitParked := func() {
		mu.Lock()
		for parked < callers {
			allIn.Wait()
		}
		mu.Unlock()
	}
	waitParked()
	if e := failed.Load(); e != nil {
		fmt.Fprintln(os.Stderr, "overhead -client:", *e)
		os.Exit(1)
	}
	fmt.Println("ready")
	var start time.Time
	var cpu0 time.Duration
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		if e := failed.Load(); e != nil {
			fmt.Fprintln(os.Stderr, "overhead -client:", *e)
			os.Exit(1)
		}
		switch in.Text() {
		case "run":
			mu.Lock()
			running.Store(true)
			resume.Broadcast()
			mu.Unlock()
			fmt.Println("ok")
		case "count":
			cpu0 = cpuTime()
			start = time.Now()
			counting.Store(true)
			fmt.Println("ok")
		case "stop":
			counting.Store(false)
			elapsed := time.Since(start)
			cpu := cpuTime() - cpu0
			running.Store(false)
			waitParked()
			var all []time.Duration
			for i := range lats {
				all = append(all, lats[i]...)
				lats[i] = lats[i][:0]
			}
			var p99 time.Duration
			if len(all) > 0 {
				slices.Sort(all)
				p99 = all[len(all)*99/100]
			}
			fmt.Printf("result %d %d %d %d\n", len(all), elapsed.Nanoseconds(), p99.Microseconds(), cpu.Nanoseconds())
		}
	}
	mu.Lock()
	quit = true
	resume.Broadcast()
	mu.Unlock()
}

// streamMsg is the bytes a sliced stream "call" receives (streamOp).
const streamMsg = 64 << 10

// streamFigures returns the sliced stream legs' figures from the per-pair
// ratios of exchanges per second (= MB/s) and server CPU per exchange, and
// prints their summary.
func streamFigures(pairs int, rateR, cpuR []float64) map[string]float64 {
	f := map[string]float64{
		"overhead.stream_mbps_ratio":           median(rateR),
		"overhead.stream_mbps_ratio_min":       slices.Min(rateR),
		"overhead.stream_mbps_ratio_max":       slices.Max(rateR),
		"overhead.stream_cpu_per_mb_ratio":     median(cpuR),
		"overhead.stream_cpu_per_mb_ratio_min": slices.Min(cpuR),
		"overhead.stream_cpu_per_mb_ratio_max": slices.Max(cpuR),
	}
	fmt.Printf("overhead.stream (sliced, %d pairs): MB/s ratio median %.3f (min %.3f, max %.3f); CPU/MB ratio %.3f (min %.3f, max %.3f)\n",
		pairs, f["overhead.stream_mbps_ratio"], f["overhead.stream_mbps_ratio_min"], f["overhead.stream_mbps_ratio_max"],
		f["overhead.stream_cpu_per_mb_ratio"], f["overhead.stream_cpu_per_mb_ratio_min"], f["overhead.stream_cpu_per_mb_ratio_max"])
	return f
}

// unaryOp returns a sliced client's caller's call: one 1 KiB unary call.
func unaryOp(client testgrpc.TestServiceClient) (op func() error, end func(), err error) {
	req := &testgrpc.SimpleRequest{ResponseSize: 1024, Payload: &testgrpc.Payload{Body: make([]byte, 1024)}}
	return func() error {
		_, err := client.UnaryCall(context.Background(), req)
		return err
	}, func() {}, nil
}

// streamOp opens a sliced client's caller's bidi stream and returns its
// "call": one 64 KiB message sent and one received. end closes the stream.
func streamOp(client testgrpc.TestServiceClient) (op func() error, end func(), err error) {
	const size = 64 << 10
	ctx, cancel := context.WithCancel(context.Background())
	s, err := client.FullDuplexCall(ctx)
	if err != nil {
		cancel()
		return func() error { return err }, func() {}, err
	}
	req := &testgrpc.StreamingOutputCallRequest{
		ResponseParameters: []*testgrpc.ResponseParameters{{Size: size}},
		Payload:            &testgrpc.Payload{Body: make([]byte, size)},
	}
	return func() error {
			if err := s.Send(req); err != nil {
				return err
			}
			r, err := s.Recv()
			if err == nil && len(r.GetPayload().GetBody()) != size {
				err = fmt.Errorf("stream: %d bytes received, want %d", len(r.GetPayload().GetBody()), size)
			}
			return err
		}, func() {
			_ = s.CloseSend()
			cancel()
		}, nil
}
