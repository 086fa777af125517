// Command scenarios runs the one-machine cluster scenarios (one file each
// here, documented on its run function) and
// merges their figures into bench/out/results.json.
//
//	go -C bench run ./cmd/scenarios                       (make scenarios)
//	go -C bench run ./cmd/scenarios -scenarios drain,scaleup_l4
//
// For a closer look at one leg: HOT_LEGS=a,b and SCALEUP_L4_LEGS=a,b run
// only the named legs of hot and scaleup_l4, LIBRARY_LOG_LEVEL=debug sets
// the log level of the replicas that run libraryArgs, TRACE_METRICS=file
// appends the load and loadshed gauges of the replicas a fleet watches
// (hot: r1) every 250 ms to file, and KEEP=1
// keeps the cluster directory with the replicas' logs.
//
// It needs dnsmasq and haproxy (make test-deps installs them). Charts are
// written next to the results (and copied into docs/img with -docs).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"github.com/grpcmgmt/grpcmgmt/bench/cluster"
)

type scenario struct {
	name string
	run  func(ctx context.Context, e *env) error
}

// env is what every scenario gets.
type env struct {
	c         *cluster.Cluster
	serverBin string
	out       string // directory for charts
	results   cluster.Results
}

var scenarios = []scenario{
	{"overload", runOverload},
	{"adaptive", runAdaptive},
	{"rotation", runRotation},
	{"scaleup_l4", runScaleUpL4},
	{"hot", runHot},
	{"hot_python", runHotPython},
	{"fleet_overload", runFleetOverload},
	{"scaleup_dns", runScaleUpDNS},
	{"drain", runDrain},
	{"streams", runStreams},
	{"streams_defaults", runStreamsDefaults},
	{"scale", runScale},
}

func main() {
	list := flag.String("scenarios", "", "comma-separated scenarios to run (default: all)")
	out := flag.String("out", "out", "output directory (results.json and charts; bench/out: paths are relative to bench/, where make scenarios runs it)")
	flag.Parse()
	if err := run(*list, *out); err != nil {
		fmt.Fprintln(os.Stderr, "scenarios:", err)
		os.Exit(1)
	}
}

func run(list, out string) error {
	want := map[string]bool{}
	for _, s := range strings.Split(list, ",") {
		if s = strings.TrimSpace(s); s != "" {
			want[s] = true
		}
	}
	for name := range want {
		known := false
		for _, s := range scenarios {
			known = known || s.name == name
		}
		if !known {
			return fmt.Errorf("unknown scenario %q", name)
		}
	}
	if err := cluster.Require("dnsmasq", "haproxy", "node"); err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "grpcmgmt-scenarios-")
	if err != nil {
		return err
	}
	if os.Getenv("KEEP") == "" {
		defer os.RemoveAll(dir)
	} else {
		fmt.Fprintf(os.Stderr, "keeping %s (replica logs)\n", dir)
	}
	c, err := cluster.New(dir)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	bin, err := c.Build("./examples/server")
	if err != nil {
		return err
	}
	e := &env{c: c, serverBin: bin, out: out, results: cluster.Results{}}
	var failed []string
	for _, s := range scenarios {
		if len(want) > 0 && !want[s.name] {
			continue
		}
		start := time.Now()
		fmt.Fprintf(os.Stderr, "== %s\n", s.name)
		if err := s.run(ctx, e); err != nil {
			fmt.Fprintf(os.Stderr, "   %s failed: %v\n", s.name, err)
			failed = append(failed, s.name)
		}
		fmt.Fprintf(os.Stderr, "   %s took %.0fs\n", s.name, time.Since(start).Seconds())
		c.Close() // stop this scenario's processes before the next one
		if ctx.Err() != nil {
			break
		}
	}
	path := filepath.Join(out, "results.json")
	if err := e.results.Merge(path, c.Root); err != nil {
		return err
	}
	e.results.PrintTable(os.Stdout)
	fmt.Printf("\nwritten to %s\n", path)
	if len(failed) > 0 {
		return fmt.Errorf("scenarios failed: %s", strings.Join(failed, ", "))
	}
	return nil
}
