// Command report writes docs/benchmarks.md from bench/out/results.json and
// copies the scenario charts into docs/img, so the committed page shows the
// figures of one run with its date, commit and machine.
//
//	go -C bench run ./cmd/report        (after make bench and make scenarios)
//
// With several results files (-in a.json,b.json; a later file's figure
// replaces an earlier one's), every figure names the run it comes from, and
// the page lists the runs with their dates and commits: a page assembled
// from scenarios run at different commits says so figure by figure.
//
// The results files stay on the machine that ran them, so the committed
// page is also read back as a source: -base ../docs/benchmarks.md takes its
// runs (every figure with the run it names, and its charts) before the -in
// files, so that
//
//	go -C bench run ./cmd/report -base ../docs/benchmarks.md -in out/results.json
//
// adds a run to the page, and with -in "" writes the page again unchanged
// (TestCommittedPage).
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// aim is a BENCH.md figure with its aim ("" for a reference figure).
type aim struct {
	figure, meaning, aim string
	ok                   func(v float64) bool
}

func le(x float64) func(float64) bool { return func(v float64) bool { return v <= x } }
func ge(x float64) func(float64) bool { return func(v float64) bool { return v >= x } }

// absent says what a figure's absence from every results file means when
// it is not "not measured": the scenario ran and the event never came.
var absent = map[string]string{
	"scaleup_dns.java.seconds_to_fair_share": "not reached within 42 s: grpc-java drops a re-resolution asked for inside its cache TTL (Client stacks other than grpc-go, below)",
}

var aims = []aim{
	{"overhead.unary_qps_ratio", "unary calls/s, full stack ÷ bare grpc-go, pinned legs, median of ≥ 9 per-pair ratios", "≥ 0.98", ge(0.98)},
	{"overhead.unary_qps_ratio_min", "the lowest per-pair ratio", "≥ 0.95", ge(0.95)},
	{"overhead.unary_qps_ratio_max", "the highest per-pair ratio", "", nil},
	{"overhead.unary_cpu_per_call_ratio", "server CPU time per unary call, full ÷ bare, pinned", "≤ 1.02", le(1.02)},
	{"overhead.unary_extra_allocs", "server allocations per unary call, full − bare with one interceptor", "≤ 2", le(2)},
	{"overhead.unary_cpu_us_per_call_bare", "server CPU µs per call, bare grpc-go (pinned)", "", nil},
	{"overhead.unary_cpu_us_per_call_on", "the same, full stack", "", nil},
	{"overhead.unary_gc_us_per_call_bare", "the garbage collector's share of it (runtime/metrics), bare grpc-go", "", nil},
	{"overhead.unary_gc_us_per_call_on", "the same, full stack", "", nil},
	{"overhead.unary_gc_share_of_extra_cpu", "the collector's extra CPU per call ÷ the full stack's extra CPU per call", "", nil},
	{"overhead.unary_allocs_per_call_bare", "server allocations per call, bare grpc-go", "", nil},
	{"overhead.unary_allocs_per_call_bare1", "the same with one no-op interceptor", "", nil},
	{"overhead.unary_allocs_per_call_on", "the same, full stack", "", nil},
	{"overhead.unary_qps_ratio_unpinned", "unary calls/s ratio with client and server in one process (ratio of medians)", "", nil},
	{"overhead.unary_p99_ratio", "unary p99, full stack ÷ bare (pinned; since the fourteenth session the geometric mean over every round of the ratio of the two neighbouring slices' p99s)", "≤ 1.05", le(1.05)},
	{"overhead.unary_p99_ratio_legs", "the same as the median over pairs of the ratio of the legs' p99s (each the median of its slices'): the figure before the fourteenth session", "", nil},
	{"overhead.stream_mbps_ratio", "bidi streaming MB/s, full stack ÷ bare (pinned legs since the tenth session, median of the per-pair ratios)", "≥ 0.98", ge(0.98)},
	{"overhead.stream_mbps_ratio_min", "the lowest per-pair ratio", "", nil},
	{"overhead.stream_mbps_ratio_max", "the highest per-pair ratio", "", nil},
	{"overhead.stream_cpu_per_mb_ratio", "server CPU time per MB streamed, full ÷ bare, pinned", "", nil},
	{"overhead.stream_mbps_ratio_unpinned", "bidi streaming MB/s ratio with client and server in one process (ratio of medians; the main figure before the tenth session)", "", nil},
	{"loadshed.admit_ns", "shedder admit+done, parallel", "≤ 50 ns", le(50)},
	{"loadshed.admit_semaphore_ratio_max", "loadshed.admit_ns ÷ peer.semaphore.admit_ns in the same run, the worst of 5 runs", "≤ 0.8", le(0.8)},
	{"loadshed.admit_semaphore_ratio", "the same, median of the runs", "", nil},
	{"loadshed.admit_allocs", "allocations per admit+done", "0", le(0)},
	{"peer.bbr.admit_ns", "aegis bbr Allow+done, same run", "", nil},
	{"peer.semaphore.admit_ns", "channel semaphore, same run", "", nil},
	{"goaway.write_ns_per_frame", "frame tracking per written frame", "≤ 5 ns", le(5)},
	{"conn.idle_bytes_overhead", "server RSS per idle connection, library − bare, 10 000 connections (after 500 warm-up ones, opened 500 at a time with a garbage collection between), median of 9 pairs", "≤ 1 KiB", le(1024)},
	{"conn.idle_heap_bytes_overhead", "the same in live heap bytes (the rest is span fragmentation)", "", nil},
	{"conn.idle_bytes_overhead_burst", "the same with the 10 000 connections opened in one burst (the garbage of the handshakes since the last collection is in it)", "", nil},
	{"goaway.all_10k_ms", "Tracker.GoAwayAll over 10 000 idle connections (real sockets)", "≤ 100", le(100)},
	{"goaway.all_10k_written_ms", "the same until every frame is written", "", nil},
	{"goaway.track_ns", "Tracker bookkeeping of one connection, handshake to close", "", nil},
	{"goaway.active_10k_us", "Tracker.Active with 10 000 connections (each policy round, each lookup)", "", nil},
	{"overload.goodput_ratio_3x", "goodput ÷ capacity at 3× offered load", "≥ 0.95", ge(0.95)},
	{"overload.goodput_ratio_10x", "goodput ÷ capacity at 10×", "≥ 0.90", ge(0.90)},
	{"overload.recovery_seconds", "p99 back within 1.2× after the 3× load", "≤ 1", le(1)},
	{"overload.p99_ratio_3x", "p99 of admitted calls at 3× ÷ at 0.5×", "≤ 2.0", le(2)},
	{"overload.p99_ratio_10x", "p99 of admitted calls at 10× ÷ at 0.5×", "≤ 2.0", le(2)},
	{"overload.baseline_goodput_ratio_3x", "no shedding", "", nil},
	{"overload.failsafe_goodput_ratio_3x", "failsafe-go adaptive limiter peer", "", nil},
	{"overload.failsafe_goodput_ratio_10x", "failsafe-go peer at 10×", "", nil},
	{"overload.failsafe_p99_ratio_3x", "failsafe-go peer: p99 at 3× ÷ at 0.5×", "", nil},
	{"overload.failsafe_p99_ratio_10x", "failsafe-go peer: p99 at 10× ÷ at 0.5×", "", nil},
	{"overload.bbr_goodput_ratio_3x", "aegis bbr peer", "", nil},
	{"overload.semaphore_goodput_ratio_3x", "static semaphore peer", "", nil},
	{"rotation.go.failed", "failed grpc-go calls, every connection rotated every second for 60 s", "0", le(0)},
	{"rotation.node.failed", "failed @grpc/grpc-js calls, same", "0", le(0)},
	{"rotation.go.calls", "grpc-go calls made", "", nil},
	{"rotation.node.calls", "grpc-js calls made", "", nil},
	{"rotation.java.failed", "failed grpc-java 1.41 (Netty) calls, same", "0", le(0)},
	{"rotation.java.calls", "grpc-java calls made", "≥ 10 000", ge(10000)},
	{"rotation.python.failed", "failed C-core 1.51 (python grpcio) calls, same", "0", le(0)},
	{"rotation.python.calls", "C-core calls made", "≥ 10 000", ge(10000)},
	{"rotation.conns_rotated", "connections rotated", "", nil},
	{"scaleup_l4.seconds_to_fair_share", "behind HAProxy, 3 → 4 replicas", "≤ 5", le(5)},
	{"scaleup_l4.failed", "failed calls", "0", le(0)},
	{"scaleup_l4.baseline_new_share", "new replica's share ÷ fair share, no library", "", nil},
	{"scaleup_l4.java.seconds_to_fair_share", "the same with grpc-java clients", "≤ 5", le(5)},
	{"scaleup_l4.python.seconds_to_fair_share", "the same with C-core clients", "≤ 5", le(5)},
	{"scaleup_dns.seconds_to_fair_share", "real DNS, default grpc-go client", "≤ 35", le(35)},
	{"scaleup_dns.python.seconds_to_fair_share", "real DNS, default C-core client", "≤ 35", le(35)},
	{"scaleup_dns.java.seconds_to_fair_share", "grpc-java, default 30 s cache (`networkaddress.cache.ttl`), on the hosts file dnsmasq serves", "", nil},
	{"scaleup_dns.failed", "failed calls", "0", le(0)},
	{"scale.random.seconds_to_fair_share", "16 replicas, 2 000 connections, HAProxy balance random(1) (kube-proxy model), 8 → 16", "≤ 10", le(10)},
	{"scale.leastconn.seconds_to_fair_share", "the same behind leastconn (IPVS model)", "≤ 5", le(5)},
	{"scale.random.goaways_per_moved_conn", "rebalancing GOAWAYs ÷ connections that had to move, random(1) (floor 16/8 = 2)", "≤ 2.0", le(2)},
	{"scale.leastconn.goaways_per_moved_conn", "the same behind leastconn (floor 1)", "", nil},
	{"scale.random.max_over_mean_conns", "most connections on a replica ÷ mean, at the end", "≤ 1.25", le(1.25)},
	{"scale.scalein.max_over_mean_conns", "the same after 16 → 12 (random(1)): the removed replicas' connections landed", "", nil},
	{"scale.peak_reconnects_per_s", "most reconnections one replica received in a second (the policy's bound: MaxArrivalRate, 1000/s)", "", nil},
	{"scale.failed", "failed calls, all scale legs", "0", le(0)},
	{"sim.10.seconds_to_fair_share", "simulation, 5 → 10 replicas, 100 000 connections, uniform random balancer", "", nil},
	{"sim.10.goaways_per_moved_conn", "the same: GOAWAYs per moved connection (floor 2.0)", "≤ 2.0", le(2)},
	{"sim.100.seconds_to_fair_share", "simulation, 50 → 100 replicas", "", nil},
	{"sim.100.goaways_per_moved_conn", "the same", "≤ 2.0", le(2)},
	{"sim.1000.seconds_to_fair_share", "simulation, 500 → 1 000 replicas", "", nil},
	{"sim.1000.goaways_per_moved_conn", "the same", "≤ 2.0", le(2)},
	{"hot.rr.p99_ratio", "p99 with one replica at half capacity ÷ all equal (round_robin, health, retries)", "≤ 1.5", le(1.5)},
	{"hot.baseline.p99_ratio", "the same without the library", "", nil},
	{"hot.python.p99_ratio", "the same with the C-core client (round_robin, health checking, retries)", "", nil},
	{"hot.wrr.share_error", "weighted_round_robin: abs(hot share − capacity share) ÷ capacity share", "≤ 0.10", le(0.10)},
	{"hot.wrr_wait.share_error", "the same, the replicas waiting instead of burning CPU (hot one slow, not CPU-bound)", "≤ 0.10", le(0.10)},
	{"hot.defaults.p99_ratio", "library defaults (no shedding), health-checking round_robin: p99 ÷ equal fleet with defaults", "≤ 2.0", le(2)},
	{"hot.defaults_set.p99_ratio", "the same with the replica set named (-health-peers: the health guard and the peers' latency comparison)", "", nil},
	{"hot.failsafe.p99_ratio", "failsafe-go peer on every replica ÷ bare equal fleet", "", nil},
	{"hot.health_only.p99_ratio", "the same with shedding off and no client retries (health checking only)", "≤ 1.5", le(1.5)},
	{"hot.seconds_out", "share of r1's health Watch streams turned away, averaged over the measured window (rr)", "", nil},
	{"fleet_overload.failed_unavailable", "3 replicas at 2× capacity with the recommended config (shedding on), health-checking round_robin: calls failed because no replica was SERVING", "0", le(0)},
	{"fleet_overload.goodput_ratio", "the same: goodput ÷ capacity measured in the same round", "≥ 0.80", ge(0.80)},
	{"fleet_overload.time_bounded.failed_unavailable", "the same without a replica set (time-bounded health)", "", nil},
	{"fleet_overload.closed.failed_unavailable", "closed loop of 150 callers (about 2× what the fleet serves in 1 s deadlines), guard: calls failed because no replica was SERVING", "0", le(0)},
	{"fleet_overload.closed.goodput_ratio", "the same: goodput ÷ capacity", "≥ 0.80", ge(0.80)},
	{"fleet_overload.closed.failed_share", "the same: share of calls failed", "", nil},
	{"fleet_overload.closed.time_bounded.failed_share", "the same without a replica set", "", nil},
	{"fleet_overload.no_shed.goodput_ratio", "open loop, replicas without shedding (reference): goodput ÷ capacity", "", nil},
	{"fleet_overload.no_shed.failed_unavailable", "the same: calls failed because no replica was SERVING", "", nil},
	{"drain.failed", "failed calls during a rolling restart", "0", le(0)},
	{"drain.java.failed", "the same with grpc-java clients (no client-side health checking)", "0", le(0)},
	{"drain.python.failed", "the same with C-core clients", "0", le(0)},
	{"adaptive.drift.seconds_to_follow", "service time doubles, then returns: seconds until the limit settles, the slower way", "≤ 3", le(3)},
	{"drain.seconds", "median SIGTERM → exit", "", nil},
	{"streams.cut_at_grace", "64 long-lived streams, max age 5 s, grace 10 s, 60 s, handlers use the drain signal: streams cut at grace", "0", le(0)},
	{"streams.failed", "the same: streams ended with a status other than OK or UNAVAILABLE", "0", le(0)},
	{"streams.baseline_cut_at_grace", "the same with handlers that ignore the signal", "", nil},
	{"streams.gap_p99_ms", "p99 of the delay a resume added between two messages (gap − interval)", "≤ 50", le(50)},
	{"streams.rotation_share_error", "streams per replica at the end vs fair share", "≤ 0.2", le(0.2)},
	{"streams.node.cut_at_grace", "the same with @grpc/grpc-js clients: cut at grace", "0", le(0)},
	{"streams.node.failed", "grpc-js: failed streams", "0", le(0)},
	{"streams.node.gap_p99_ms", "grpc-js: p99 delay a resume added", "≤ 50", le(50)},
	{"streams.defaults.signal.cut_at_grace", "library defaults (max age 2 min ± 10 %, grace 30 s), 3 min: streams cut at grace, handlers use the signal", "0", le(0)},
	{"streams.defaults.signal.resumes", "the same: streams resumed after a drain (each connection rotates about once)", "", nil},
	{"streams.defaults.signal.failed", "the same: failed streams", "0", le(0)},
	{"streams.defaults.baseline.cut_at_grace", "library defaults, handlers that ignore the signal: streams cut at grace", "", nil},
}

// adaptiveProfiles are the profiles of the adaptive scenario; each has the
// three figures of BENCH.md.
var adaptiveProfiles = []string{"cpu1", "cpu4", "io", "mixed", "drift"}

func init() {
	var a []aim
	for _, p := range adaptiveProfiles {
		a = append(a,
			aim{"adaptive." + p + ".goodput_1x", p + ": goodput ÷ offered at 1× (no false shedding)", "≥ 0.97", ge(0.97)},
			aim{"adaptive." + p + ".p99_ratio_3x", p + ": p99 at 3× ÷ at 0.5×", "≤ 2.0", le(2)},
			aim{"adaptive." + p + ".goodput_ratio_3x", p + ": goodput ÷ capacity at 3×", "≥ 0.95", ge(0.95)},
			aim{"adaptive." + p + ".goodput_start", p + ": goodput ÷ offered at 0.5× in the replica's first phase, seconds 1–4 after its start (what it shed while its limit learned the service)", "", nil})
	}
	// Before the drift figure, which closes the adaptive block.
	for i := range aims {
		if aims[i].figure == "adaptive.drift.seconds_to_follow" {
			aims = append(aims[:i], append(a, aims[i:]...)...)
			return
		}
	}
}

func main() {
	in := flag.String("in", "out/results.json", `results file, or several comma-separated (a later file's figure replaces an earlier one's; paths are relative to bench/, where it runs); "" for none`)
	base := flag.String("base", "", "a page this command wrote (e.g. ../docs/benchmarks.md): its runs come first, as if their results files were given before -in")
	notes := flag.String("notes", "NOTES.md", "the hand-written reading of the figures, appended after them")
	doc := flag.String("doc", "../docs/benchmarks.md", "page to write")
	flag.Parse()
	if err := run(*base, *in, *notes, *doc); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}

// runName names the i-th run: A to Z, then AA, AB, and so on.
func runName(i int) string {
	if i < 26 {
		return string(rune('A' + i))
	}
	return runName(i/26-1) + string(rune('A'+i%26))
}

// run writes the page doc from the runs of the page base (fromPage; none
// if base is ""), then the results files in (comma-separated; none if ""),
// a later run's figure replacing an earlier one's, with the notes file
// after the figures.
func run(base, in, notes, doc string) error {
	var sets []results
	if base != "" {
		rs, err := fromPage(base)
		if err != nil {
			return err
		}
		sets = rs
	}
	if in != "" {
		for _, f := range strings.Split(in, ",") {
			r, err := fromFile(f)
			if err != nil {
				return err
			}
			sets = append(sets, r)
		}
	}
	if len(sets) == 0 {
		return fmt.Errorf("no runs: give -in, -base or both")
	}
	res := map[string]any{}
	src := map[string]int{} // figure -> index of its run in sets
	for i, r := range sets {
		for k, v := range r.figs {
			res[k] = v
			src[k] = i
		}
	}
	img := filepath.Join(filepath.Dir(doc), "img")
	if err := os.MkdirAll(img, 0o755); err != nil {
		return err
	}
	var charts []string // a later run's chart replaces an earlier one's of the same name
	byName := map[string]int{}
	for _, r := range sets {
		for _, c := range r.charts {
			if i, ok := byName[filepath.Base(c)]; ok {
				charts[i] = c
				continue
			}
			byName[filepath.Base(c)] = len(charts)
			charts = append(charts, c)
		}
	}
	for _, c := range charts {
		if err := copyFile(c, filepath.Join(img, filepath.Base(c))); err != nil {
			return err
		}
	}
	// run names the run a figure comes from, when there are several.
	run := func(k string) string {
		if len(sets) < 2 {
			return ""
		}
		return " " + runName(src[k]) + " |"
	}
	var w strings.Builder
	what := "Figures of one run"
	if len(sets) > 1 {
		what = "Figures of several runs"
	}
	fmt.Fprintf(&w, "# Benchmarks\n\n%s of `make bench` and `make scenarios` (each scenario is described in\n", what)
	fmt.Fprintf(&w, "`bench/cmd/scenarios`, the cluster they run on in `bench/cluster`), written by `go -C bench run ./cmd/report`.\n\n")
	if len(sets) < 2 {
		fmt.Fprintf(&w, "- date: %v\n- commit: %v\n- machine: %v CPUs, %s\n\n", res["meta.date"], res["meta.commit"], res["meta.cpus"], machine())
		fmt.Fprintf(&w, "| figure | meaning | value | aim | met |\n|---|---|---|---|---|\n")
	} else {
		fmt.Fprintf(&w, "The figures come from %d runs, each on a machine of %v CPUs (its CPU model beside it), named in the last column:\n\n", len(sets), res["meta.cpus"])
		for i, r := range sets {
			fmt.Fprintf(&w, "- %s: %s\n", runName(i), r.label)
		}
		fmt.Fprintf(&w, "\n| figure | meaning | value | aim | met | run |\n|---|---|---|---|---|---|\n")
	}
	seen := map[string]bool{}
	for _, a := range aims {
		seen[a.figure] = true
		v, ok := res[a.figure].(float64)
		val, met := "not measured", ""
		if why, known := absent[a.figure]; known {
			val = why
		}
		if ok {
			val = format(v)
			if a.ok != nil {
				met = map[bool]string{true: "yes", false: "**no**"}[a.ok(v)]
			}
		} else if a.ok != nil {
			met = "**no**"
		}
		r := run(a.figure)
		if !ok && r != "" {
			r = " |"
		}
		fmt.Fprintf(&w, "| `%s` | %s | %s | %s | %s |%s\n", a.figure, a.meaning, val, a.aim, met, r)
	}
	var extra []string
	for k, v := range res {
		if f, ok := v.(float64); ok && !seen[k] && !strings.HasPrefix(k, "meta.") {
			extra = append(extra, fmt.Sprintf("| `%s` | %s |%s", k, format(f), run(k)))
		}
	}
	if len(extra) > 0 {
		sortStrings(extra)
		head := "\nOther figures of the same run:\n\n| figure | value |\n|---|---|\n"
		if len(sets) > 1 {
			head = "\nOther figures of the same runs:\n\n| figure | value | run |\n|---|---|---|\n"
		}
		fmt.Fprintf(&w, "%s%s\n", head, strings.Join(extra, "\n"))
	}
	// The hand-written reading of the figures (aims not met, and why).
	if text, err := os.ReadFile(notes); err == nil {
		fmt.Fprintf(&w, "\n%s\n", strings.TrimSpace(string(text)))
	}
	if len(charts) > 0 {
		fmt.Fprintf(&w, "\n## Charts\n\n")
		for _, c := range charts {
			name := filepath.Base(c)
			fmt.Fprintf(&w, "### %s\n\n![%s](img/%s)\n\n", strings.TrimSuffix(name, ".svg"), name, name)
		}
	}
	return os.WriteFile(doc, []byte(w.String()), 0o644)
}

func machine() string {
	model, err := exec.Command("sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").Output()
	if err != nil {
		return runtime.GOARCH
	}
	mem, _ := exec.Command("sh", "-c", "free -g | awk '/Mem:/{print $2}'").Output()
	return fmt.Sprintf("%s, %s GiB memory", strings.TrimSpace(string(model)), strings.TrimSpace(string(mem)))
}

func format(v float64) string {
	switch {
	case v == float64(int64(v)):
		return fmt.Sprintf("%d", int64(v))
	case v < 10:
		return fmt.Sprintf("%.3f", v)
	default:
		return fmt.Sprintf("%.1f", v)
	}
}

// copyFile copies src to dst; nothing when they are the same file (a
// chart of the page's own, with -base).
func copyFile(src, dst string) error {
	if a, err := os.Stat(src); err == nil {
		if b, err := os.Stat(dst); err == nil && os.SameFile(a, b) {
			return nil
		}
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}
