// Command bench runs the Go micro-benchmarks and the overhead comparison of
// BENCH.md and merges their figures into bench/out/results.json.
//
//	go -C bench run ./cmd/bench          (make bench)
//
// Each micro-benchmark suite runs -count times as separate `go test`
// invocations (go test -count repeats each leg back to back; separate runs
// interleave the legs: A B A B …), and each figure is the median. The overhead figures come from bench/overhead, which
// interleaves bare and full-stack legs itself.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/grpcmgmt/grpcmgmt/bench/cluster"
)

// figure maps one benchmark metric to a BENCH.md figure.
type figure struct {
	name  string // BENCH.md figure
	bench string // full benchmark name, without the -N suffix
	unit  string // "ns/op", "allocs/op", or a custom unit
}

// suite is one `go test -bench` invocation.
type suite struct {
	pkg     string
	pattern string
	figures []figure
}

var suites = []suite{
	{"./loadshed/", "^BenchmarkAdmit$", []figure{
		{"loadshed.admit_ns", "BenchmarkAdmit/loadshed/all", "ns/op"},
		{"loadshed.admit_allocs", "BenchmarkAdmit/loadshed/all", "allocs/op"},
		{"peer.semaphore.admit_ns", "BenchmarkAdmit/peer/semaphore", "ns/op"},
	}},
	// Peers that the library's go.mod must not require (bench/peers).
	{"./bench/peers/", "^BenchmarkAdmit$", []figure{
		{"peer.bbr.admit_ns", "BenchmarkAdmit/peer/bbr", "ns/op"},
	}},
	{"./goaway/", "^BenchmarkWrite", []figure{
		{"goaway.write_ns_per_frame", "BenchmarkWrite/small_frames", "ns/frame"},
		{"goaway.write_bare_ns_per_frame", "BenchmarkWriteBare", "ns/frame"},
	}},
	// The Tracker's bookkeeping per connection at scale, without sockets
	// (bench/cmd/idleconns measures memory and GoAwayAll on real ones).
	{"./goaway/", "^(BenchmarkTrack|BenchmarkActive|BenchmarkGoAwayAll)$", []figure{
		{"goaway.track_ns", "BenchmarkTrack", "ns/op"},
		{"goaway.track_bytes", "BenchmarkTrack", "B/op"},
		{"goaway.active_10k_us", "BenchmarkActive/conns=10000", "µs/call"},
		{"goaway.all_10k_inproc_ms", "BenchmarkGoAwayAll", "ms/call"},
	}},
}

func main() {
	out := flag.String("out", "out", "output directory for results.json (bench/out: paths are relative to bench/, where make bench runs it)")
	count := flag.Int("count", 5, "benchmark repetitions (median is reported)")
	overhead := flag.Bool("overhead", true, "also run bench/overhead")
	idle := flag.Bool("idle", true, "also run bench/cmd/idleconns (10 000 idle connections, bare and with the library)")
	flag.Parse()
	if err := run(*out, *count, *overhead, *idle); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(out string, count int, overhead, idle bool) error {
	c, err := cluster.New(os.TempDir())
	if err != nil {
		return err
	}
	results := cluster.Results{}
	for _, s := range suites {
		var buf bytes.Buffer
		var runs []string // each run's output
		for i := range count {
			fmt.Fprintf(os.Stderr, "== go test -bench %s %s (run %d of %d)\n", s.pattern, s.pkg, i+1, count)
			cmd, err := c.GoCommand("test", []string{"-run", "^$", "-bench", s.pattern, "-benchmem", "-count", "1"}, s.pkg)
			if err != nil {
				return err
			}
			var one bytes.Buffer
			cmd.Stdout = &one
			cmd.Stderr = os.Stderr
			err = cmd.Run()
			os.Stderr.Write(one.Bytes())
			if err != nil {
				return fmt.Errorf("%s: %w", s.pkg, err)
			}
			buf.Write(one.Bytes())
			runs = append(runs, one.String())
		}
		if s.pkg == "./loadshed/" {
			admitRatios(results, runs)
		}
		samples := parse(buf.String())
		for _, f := range s.figures {
			if v := samples[f.bench+" "+f.unit]; len(v) > 0 {
				results[f.name] = median(v)
			}
		}
	}
	// Absolute: the overhead and idleconns legs run in the bench module's
	// directory.
	path, err := filepath.Abs(filepath.Join(out, "results.json"))
	if err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	if err := results.Merge(path, c.Root); err != nil {
		return err
	}
	if overhead {
		fmt.Fprintln(os.Stderr, "== go -C bench run ./overhead")
		cmd, err := c.GoCommand("run", nil, "./bench/overhead", "-pairs", "9", "-out", path)
		if err != nil {
			return err
		}
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("overhead: %w", err)
		}
	}
	if idle {
		fmt.Fprintln(os.Stderr, "== go -C bench run ./cmd/idleconns")
		cmd, err := c.GoCommand("run", nil, "./bench/cmd/idleconns", "-conns", "10000", "-pairs", "9", "-burst-pairs", "5", "-out", path)
		if err != nil {
			return err
		}
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("idleconns: %w", err)
		}
	}
	results.PrintTable(os.Stdout)
	fmt.Printf("\nmerged into %s\n", path)
	return nil
}

// admitRatios sets loadshed.admit_semaphore_ratio: loadshed.admit_ns ÷
// peer.semaphore.admit_ns within each run (the legs of one run share the
// machine's state), the median over runs, and _max, the worst run (the aim
// holds for every run).
func admitRatios(results cluster.Results, runs []string) {
	var r []float64
	for _, out := range runs {
		m := parse(out)
		a, b := m["BenchmarkAdmit/loadshed/all ns/op"], m["BenchmarkAdmit/peer/semaphore ns/op"]
		if len(a) == 1 && len(b) == 1 && b[0] > 0 {
			r = append(r, a[0]/b[0])
		}
	}
	if len(r) == 0 {
		return
	}
	fmt.Fprintf(os.Stderr, "loadshed admit ÷ semaphore per run: %.2f\n", r)
	results["loadshed.admit_semaphore_ratio"] = median(r)
	results["loadshed.admit_semaphore_ratio_max"] = slices.Max(r)
}

// parse returns every metric of every benchmark line, keyed by
// "name unit" (the -N GOMAXPROCS suffix removed).
func parse(out string) map[string][]float64 {
	m := map[string][]float64{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name := f[0]
		if i := strings.LastIndex(name, "-"); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i]
			}
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			m[name+" "+f[i+1]] = append(m[name+" "+f[i+1]], v)
		}
	}
	return m
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
