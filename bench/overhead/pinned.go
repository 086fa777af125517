package main

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Pinned legs (BENCH.md, "a ratio that must resolve a few percent"): the
// server runs in a process of its own on CPU 0 and the client in another on
// CPU 1 (taskset; each process's GOMAXPROCS follows its affinity to 1), so
// that neither leg's server competes with its client or with the other
// leg's garbage, and the server's own CPU time and allocations can be read
// per call. The parent only coordinates, over the children's stdin and
// stdout:
//
//	server: "addr A" | parent "mark" -> "ok" | parent "report" -> "cpu_ns C wall_ns W mallocs M bytes B gcs G gc_ns GC"
//	        (and "heap" -> the live heap after a collection, for a look by hand)
//	client: "start" -> parent marks the server -> "go" | "end" -> parent reads the server -> "go" | "result QPS P99US"

// pinnedResult is one pinned leg.
type pinnedResult struct {
	qps         float64
	p99us       float64
	cpuPerCall  float64 // server CPU µs per call
	mallocsCall float64 // server heap allocations per call
	bytesCall   float64 // server heap bytes allocated per call
	gcsPer1k    float64 // server garbage collections per 1000 calls
	gcPerCall   float64 // server CPU µs per call spent by the garbage collector (NaN: a -base-exe that does not say)
	// Sliced legs: the share of its CPU the server and the client used.
	srvCPU, cliCPU float64
}

// canPin reports whether the machine has two CPUs for pinned legs and
// taskset to pin them.
func canPin() bool {
	if runtime.NumCPU() < 2 {
		return false
	}
	_, err := exec.LookPath("taskset")
	return err == nil
}

// pinnedLeg runs one unary leg with the server of the given kind ("bare",
// "bare1", "on") pinned to CPU 0 and the client to CPU 1.
// profile is "" or the file for the server's CPU profile of the measured
// window.
//
// The "bare" kind is the bare role: -base-exe, -base-kind and -base-args
// say what it runs (bare grpc-go from this executable by default).
func pinnedLeg(kind, stack string, d time.Duration, profile string) (pinnedResult, error) {
	self, err := os.Executable()
	if err != nil {
		return pinnedResult{}, err
	}
	exe, serve, extra := self, kind, []string(nil)
	if kind == "bare" {
		serve, extra = baseKind, strings.Fields(baseArgs)
		if baseExe != "" {
			exe = baseExe
		}
	}
	args := append([]string{"-c", "0", exe, "-serve", serve, "-stack", stack,
		"-orca-per-call=" + strconv.FormatBool(orcaPerCall),
		"-priority-header=" + strconv.FormatBool(priorityHeader), "-cpuprofile", profile}, serverFlags()...)
	srv := exec.Command("taskset", append(args, extra...)...)
	srv.Stderr = os.Stderr
	srvIn, _ := srv.StdinPipe()
	srvOutPipe, _ := srv.StdoutPipe()
	if err := srv.Start(); err != nil {
		return pinnedResult{}, err
	}
	defer func() { _ = srvIn.Close(); _ = srv.Wait() }()
	srvOut := bufio.NewScanner(srvOutPipe)
	line := func(sc *bufio.Scanner, who string) (string, error) {
		if !sc.Scan() {
			return "", fmt.Errorf("%s ended: %v", who, sc.Err())
		}
		return sc.Text(), nil
	}
	l, err := line(srvOut, "server")
	if err != nil {
		return pinnedResult{}, err
	}
	addr, ok := strings.CutPrefix(l, "addr ")
	if !ok {
		return pinnedResult{}, fmt.Errorf("server said %q", l)
	}
	cli := exec.Command("taskset", "-c", "1", self, "-client", addr, "-leg", d.String())
	cli.Stderr = os.Stderr
	cliIn, _ := cli.StdinPipe()
	cliOutPipe, _ := cli.StdoutPipe()
	if err := cli.Start(); err != nil {
		return pinnedResult{}, err
	}
	defer func() { _ = cliIn.Close(); _ = cli.Wait() }()
	cliOut := bufio.NewScanner(cliOutPipe)
	var rep serverReport
	for {
		l, err := line(cliOut, "client")
		if err != nil {
			return pinnedResult{}, err
		}
		f := strings.Fields(l)
		switch {
		case l == "start":
			fmt.Fprintln(srvIn, "mark")
			if l, err := line(srvOut, "server"); err != nil || l != "ok" {
				return pinnedResult{}, fmt.Errorf("server mark: %q %v", l, err)
			}
			fmt.Fprintln(cliIn, "go")
		case l == "end":
			fmt.Fprintln(srvIn, "report")
			l, err := line(srvOut, "server")
			if err != nil {
				return pinnedResult{}, err
			}
			if rep, err = parseReport(l); err != nil {
				return pinnedResult{}, err
			}
			fmt.Fprintln(cliIn, "go")
		case len(f) == 3 && f[0] == "result":
			qps, _ := strconv.ParseFloat(f[1], 64)
			p99, _ := strconv.ParseFloat(f[2], 64)
			if qps <= 0 || rep.wallNs <= 0 {
				return pinnedResult{}, fmt.Errorf("no calls measured (%q)", l)
			}
			return rep.perCall(qps, p99), nil
		default:
			return pinnedResult{}, fmt.Errorf("client said %q", l)
		}
	}
}

// serveMain is the -serve child: a server of the given kind, measured
// between "mark" and "report" on stdin; it stops at EOF. With a profile
// file, the CPU profile covers the same window.
//
// With profileAll, the profile starts at the first "mark" and ends when
// the server exits (sliced legs: every slice in one profile).
func serveMain(kind, stack, profile string, profileAll bool) {
	addr, stop, err := startServer(kind, stack)
	if err != nil {
		fmt.Fprintln(os.Stderr, "overhead -serve:", err)
		os.Exit(1)
	}
	defer stop()
	fmt.Println("addr " + addr)
	var cpu0 time.Duration
	var wall0 time.Time
	var mallocs0, bytes0, gcs0 uint64
	var gc0 float64
	profiling := false
	defer func() {
		if profiling {
			pprof.StopCPUProfile()
		}
	}()
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		if path, ok := strings.CutPrefix(in.Text(), "heapprofile "); ok {
			// By hand: the live heap's allocation sites.
			runtime.GC()
			f, err := os.Create(path)
			if err == nil {
				err = pprof.Lookup("heap").WriteTo(f, 0)
				_ = f.Close()
			}
			fmt.Println("heapprofile", err)
			continue
		}
		switch in.Text() {
		case "mark":
			if profile != "" && !profiling {
				f, err := os.Create(profile)
				if err == nil {
					if profileHz > 0 {
						// Before StartCPUProfile, which then keeps this
						// rate (and prints that it cannot set its own).
						runtime.SetCPUProfileRate(profileHz)
					}
					err = pprof.StartCPUProfile(f)
				}
				if err != nil {
					fmt.Fprintln(os.Stderr, "overhead -serve: -cpuprofile:", err)
					os.Exit(1)
				}
				profiling = true
			}
			mallocs0, bytes0, gcs0 = mallocs()
			gc0 = gcCPUSeconds()
			wall0, cpu0 = time.Now(), cpuTime()
			fmt.Println("ok")
		case "report":
			cpu, wall := cpuTime()-cpu0, time.Since(wall0)
			m, b, g := mallocs()
			m, b, g = m-mallocs0, b-bytes0, g-gcs0
			gcNs := (gcCPUSeconds() - gc0) * 1e9
			if profiling && !profileAll {
				pprof.StopCPUProfile()
				profiling = false
			}
			fmt.Printf("cpu_ns %d wall_ns %d mallocs %d bytes %d gcs %d gc_ns %.0f\n", cpu.Nanoseconds(), wall.Nanoseconds(), m, b, g, gcNs)
		case "heap":
			// For a look at what the garbage collector works on: the live
			// heap after a collection, the goroutines (their stacks are
			// roots) and the collections so far.
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			fmt.Printf("heap_live %d heap_objects %d goroutines %d gcs %d stack_inuse %d\n",
				ms.HeapAlloc, ms.HeapObjects, runtime.NumGoroutine(), ms.NumGC, ms.StackInuse)
		}
	}
}

// clientMain is the -client child: one unary leg against addr, its window
// coordinated with the parent.
func clientMain(addr string, d time.Duration) {
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Fprintln(os.Stderr, "overhead -client:", err)
		os.Exit(1)
	}
	defer cc.Close()
	in := bufio.NewReader(os.Stdin)
	wait := func() {
		if _, err := in.ReadString('\n'); err != nil && err != io.EOF {
			fmt.Fprintln(os.Stderr, "overhead -client:", err)
		}
	}
	qps, p99, err := unaryRun(cc, d, func(start bool) {
		if start {
			fmt.Println("start")
		} else {
			fmt.Println("end")
		}
		wait()
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "overhead -client:", err)
		os.Exit(1)
	}
	fmt.Printf("result %.1f %d\n", qps, p99.Microseconds())
}

// cpuTime returns the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// gcCPUSeconds returns the CPU time the garbage collector has spent so far
// (runtime/metrics' estimate: mark assists, mark workers and pauses), so
// that a leg can say how much of its CPU per call is collection.
func gcCPUSeconds() float64 {
	s := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindFloat64 {
		return math.NaN()
	}
	return s[0].Value.Float64()
}

// serverReport is a server's "report" line: its CPU time, wall time,
// allocations, bytes, collections and the collector's CPU time over the
// measured window.
type serverReport struct{ cpuNs, wallNs, mallocs, bytes, gcs, gcNs float64 }

// add sums o into r (the windows of a leg's slices).
func (r *serverReport) add(o serverReport) {
	r.cpuNs += o.cpuNs
	r.wallNs += o.wallNs
	r.mallocs += o.mallocs
	r.bytes += o.bytes
	r.gcs += o.gcs
	r.gcNs += o.gcNs
}

// perCall returns the leg that r measured with qps calls a second and the
// given p99: per call over the server's own window, its CPU time and
// allocations per second over the calls per second the client saw (the
// two windows differ by the coordination's few ms).
func (r serverReport) perCall(qps, p99us float64) pinnedResult {
	perSec := 1e9 / r.wallNs
	return pinnedResult{qps: qps, p99us: p99us,
		cpuPerCall:  r.cpuNs * perSec / 1e3 / qps,
		mallocsCall: r.mallocs * perSec / qps,
		bytesCall:   r.bytes * perSec / qps,
		gcsPer1k:    1e3 * r.gcs * perSec / qps,
		gcPerCall:   r.gcNs * perSec / 1e3 / qps}
}

// parseReport reads a "report" line. gc_ns came last: a -base-exe built
// before it leaves it out, and gcNs is then NaN (no GC figures).
func parseReport(l string) (serverReport, error) {
	var r serverReport
	if _, err := fmt.Sscanf(l, "cpu_ns %g wall_ns %g mallocs %g bytes %g gcs %g", &r.cpuNs, &r.wallNs, &r.mallocs, &r.bytes, &r.gcs); err != nil {
		return serverReport{}, fmt.Errorf("server report %q: %v", l, err)
	}
	r.gcNs = math.NaN()
	if _, v, ok := strings.Cut(l, " gc_ns "); ok {
		if x, err := strconv.ParseFloat(v, 64); err == nil {
			r.gcNs = x
		}
	}
	return r, nil
}

// mallocs returns the heap allocations the process has made, their bytes
// and the garbage collections so far.
func mallocs() (n, bytes, gcs uint64) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.Mallocs, ms.TotalAlloc, uint64(ms.NumGC)
}

// pinnedFigures runs pairs of pinned unary legs, bare and on interleaved
// (the leg that runs first alternates), then three legs of bare grpc-go
// with one no-op interceptor for the allocation baseline, and returns the
// figures: per-pair ratios' median, min and max for calls per second, the
// medians of the p99 and CPU-per-call ratios, and allocations per call.
func pinnedFigures(pairs int, stack string, d time.Duration) (map[string]float64, error) {
	var qpsR, p99R, cpuR, cpuBare, cpuOn, allocBare, allocOn, allocBare1, gcBare, gcOn []float64
	for i := range pairs {
		order := []string{"bare", "on"}
		if i%2 == 1 {
			order = []string{"on", "bare"}
		}
		res := map[string]pinnedResult{}
		for _, kind := range order {
			r, err := pinnedLeg(kind, stack, d, profilePath(kind, i))
			if err != nil {
				return nil, fmt.Errorf("pinned pair %d %s: %w", i, kind, err)
			}
			res[kind] = r
			fmt.Printf("%-28s pair %d %-4s %10.1f calls/s  p99 %6.0f µs  server %6.2f µs CPU/call  %6.2f allocs/call  %6.0f B/call  %5.2f GCs/1k calls  %5.2f µs GC/call\n",
				"overhead.unary (pinned)", i, kind, r.qps, r.p99us, r.cpuPerCall, r.mallocsCall, r.bytesCall, r.gcsPer1k, r.gcPerCall)
		}
		b, o := res["bare"], res["on"]
		qpsR = append(qpsR, o.qps/b.qps)
		p99R = append(p99R, o.p99us/b.p99us)
		cpuR = append(cpuR, o.cpuPerCall/b.cpuPerCall)
		cpuBare, cpuOn = append(cpuBare, b.cpuPerCall), append(cpuOn, o.cpuPerCall)
		allocBare, allocOn = append(allocBare, b.mallocsCall), append(allocOn, o.mallocsCall)
		gcBare, gcOn = append(gcBare, b.gcPerCall), append(gcOn, o.gcPerCall)
	}
	for i := range 3 {
		r, err := pinnedLeg("bare1", stack, d, profilePath("bare1", i))
		if err != nil {
			return nil, fmt.Errorf("pinned bare1 leg %d: %w", i, err)
		}
		fmt.Printf("%-28s leg %d  bare1 %10.1f calls/s  server %6.2f allocs/call\n", "overhead.unary (pinned)", i, r.qps, r.mallocsCall)
		allocBare1 = append(allocBare1, r.mallocsCall)
	}
	f := overheadFigures("pinned", pairs, qpsR, p99R, cpuR, cpuBare, cpuOn, allocBare, allocOn, allocBare1)
	gcFigures(f, gcBare, gcOn, cpuBare, cpuOn)
	return f, nil
}

// overheadFigures returns the pinned figures from the per-pair ratios and
// per-leg values, and prints their summary.
func overheadFigures(how string, pairs int, qpsR, p99R, cpuR, cpuBare, cpuOn, allocBare, allocOn, allocBare1 []float64) map[string]float64 {
	f := map[string]float64{
		"overhead.unary_qps_ratio":              median(qpsR),
		"overhead.unary_qps_ratio_min":          slices.Min(qpsR),
		"overhead.unary_qps_ratio_max":          slices.Max(qpsR),
		"overhead.unary_p99_ratio":              median(p99R),
		"overhead.unary_cpu_per_call_ratio":     median(cpuR),
		"overhead.unary_cpu_per_call_ratio_min": slices.Min(cpuR),
		"overhead.unary_cpu_per_call_ratio_max": slices.Max(cpuR),
		"overhead.unary_cpu_us_per_call_bare":   median(cpuBare),
		"overhead.unary_cpu_us_per_call_on":     median(cpuOn),
		"overhead.unary_allocs_per_call_bare":   median(allocBare),
		"overhead.unary_allocs_per_call_bare1":  median(allocBare1),
		"overhead.unary_allocs_per_call_on":     median(allocOn),
		"overhead.unary_extra_allocs":           median(allocOn) - median(allocBare1),
	}
	fmt.Printf("overhead.unary (%s, %d pairs): calls/s ratio median %.3f (min %.3f, max %.3f); p99 ratio of the legs %.3f (min %.3f, max %.3f); CPU/call ratio %.3f (min %.3f, max %.3f); allocs/call bare %.2f, bare+1 interceptor %.2f, on %.2f\n",
		how, pairs, f["overhead.unary_qps_ratio"], f["overhead.unary_qps_ratio_min"], f["overhead.unary_qps_ratio_max"],
		f["overhead.unary_p99_ratio"], slices.Min(p99R), slices.Max(p99R),
		f["overhead.unary_cpu_per_call_ratio"], f["overhead.unary_cpu_per_call_ratio_min"], f["overhead.unary_cpu_per_call_ratio_max"],
		median(allocBare), median(allocBare1), median(allocOn))
	return f
}

// gcFigures adds to f the collector's CPU per call in each leg (medians
// over pairs), and its share of the full stack's extra CPU per call (the
// per-pair differences summed, on − bare, the collector's over the
// process's), when every leg said it (a -base-exe built before gc_ns does
// not): how much of the overhead is collection rather than the library's
// own work.
func gcFigures(f map[string]float64, gcBare, gcOn, cpuBare, cpuOn []float64) {
	var dGC, dCPU float64
	for i := range gcBare {
		if math.IsNaN(gcBare[i]) || math.IsNaN(gcOn[i]) {
			return
		}
		dGC += gcOn[i] - gcBare[i]
		dCPU += cpuOn[i] - cpuBare[i]
	}
	f["overhead.unary_gc_us_per_call_bare"] = median(gcBare)
	f["overhead.unary_gc_us_per_call_on"] = median(gcOn)
	share := math.NaN()
	if dCPU > 0 {
		share = dGC / dCPU
		f["overhead.unary_gc_share_of_extra_cpu"] = share
	}
	fmt.Printf("overhead.unary: the collector's CPU per call: bare %.3f µs, on %.3f µs (medians); %.0f %% of the extra CPU per call\n",
		f["overhead.unary_gc_us_per_call_bare"], f["overhead.unary_gc_us_per_call_on"], 100*share)
}

// profilePath returns the file for the CPU profile of pinned leg i of kind,
// or "" without -server-profiles.
// i < 0: one profile per kind (<kind>.pprof, sliced legs).
func profilePath(kind string, i int) string {
	if serverProfiles == "" {
		return ""
	}
	if i < 0 {
		return filepath.Join(serverProfiles, kind+".pprof")
	}
	return filepath.Join(serverProfiles, fmt.Sprintf("%s-%d.pprof", kind, i))
}

// serverFlags returns -orca-per-call-interval, -stream-workers and
// -without for a server when they are set: only then, so that a -base-exe built before
// the flags existed still runs.
func serverFlags() []string {
	var f []string
	if orcaInterval != 0 {
		f = append(f, "-orca-per-call-interval", orcaInterval.String())
	}
	if streamWorkers != 0 {
		f = append(f, "-stream-workers", strconv.Itoa(streamWorkers))
	}
	if without != "" {
		f = append(f, "-without", without)
	}
	if profileHz != 0 {
		f = append(f, "-server-profile-hz", strconv.Itoa(profileHz))
	}
	if !registrar {
		f = append(f, "-registrar=false")
	}
	return f
}
