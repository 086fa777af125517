// Command simulate runs the fleet simulation of bench/sim (the library's
// rebalancing and load-policy decisions on simulated replicas) over the
// table of BENCH.md: n = 10, 100 and 1 000 replicas, 100 000 connections,
// behind a uniform random, a power-of-two-choices and a least-connections
// balancer and with DNS clients, for a doubling, a 10 % growth, one replica
// more and a scale-in; each case with several seeds (median and range).
//
//	go -C bench run ./cmd/simulate                 (make simulate)
//	go -C bench run ./cmd/simulate -quick          (n ≤ 100, 3 seeds)
//	go -C bench run ./cmd/simulate -table ../docs/sim.md -charts ../docs/img
//
// It merges sim.<n>.* figures into bench/out/results.json: the headline is
// the kube-proxy model (uniform random) at a doubling, n/2 → n.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/grpcmgmt/grpcmgmt/bench/cluster"
	"github.com/grpcmgmt/grpcmgmt/bench/sim"
	"github.com/grpcmgmt/grpcmgmt/goaway"
	"github.com/grpcmgmt/grpcmgmt/internal/chart"
)

func main() {
	out := flag.String("out", "out", "directory of results.json (bench/out: paths are relative to bench/, where make simulate runs it)")
	seeds := flag.Int("seeds", 5, "seeds per case (median and range are reported)")
	quick := flag.Bool("quick", false, "n ≤ 100 and 3 seeds")
	table := flag.String("table", "", "also write the Markdown table to this file")
	charts := flag.String("charts", "", "write the share-over-time charts to this directory (default: -out)")
	only := flag.String("only", "", "run only the cases whose name contains this")
	flag.Parse()
	if err := run(*out, *seeds, *quick, *table, *charts, *only); err != nil {
		fmt.Fprintln(os.Stderr, "simulate:", err)
		os.Exit(1)
	}
}

// cases is the table: for each n, each balancer and each scale event.
func cases(quick bool) []sim.Case {
	ns := []int{10, 100, 1000}
	if quick {
		ns = ns[:2]
	}
	var out []sim.Case
	for _, n := range ns {
		for _, b := range []sim.Balancer{sim.Random, sim.P2C, sim.LeastConn, sim.DNS} {
			growths := [][2]int{{n / 2, n}, {n - n/10, n}, {n - 1, n}}
			if n-n/10 == n-1 {
				growths = append(growths[:1], growths[2])
			}
			if b != sim.DNS {
				growths = append(growths, [2]int{n, n * 3 / 4})
			}
			for _, g := range growths {
				out = append(out, sim.Case{Name: fmt.Sprintf("n=%d %s %d→%d", n, b, g[0], g[1]),
					Scenario: sim.Scenario{Before: g[0], After: g[1], Conns: 100_000, Balancer: b}})
			}
		}
	}
	// The one-machine scale scenario's fleet (bench/cluster, scale): 16
	// replicas, 2 000 connections, HAProxy (no lag), dnsmasq with a 1 s TTL
	// and lookups every 500 ms.
	for _, b := range []sim.Balancer{sim.Random, sim.LeastConn} {
		for _, g := range [][2]int{{8, 16}, {16, 12}} {
			out = append(out, sim.Case{Name: fmt.Sprintf("cluster16 %s %d→%d", b, g[0], g[1]),
				Scenario: sim.Scenario{Before: g[0], After: g[1], Conns: 2000, Balancer: b,
					Interval: 500 * time.Millisecond, DNSLag: time.Second}})
		}
	}
	return append(out, loadCases()...)
}

// loadCases are the load Policy's: 10 replicas, 1 000 connections behind
// a uniform random balancer, the fleet's load at 80, 88 and 95 % of its
// capacity, with 0, 1 or 3 heavy clients (a connection carrying 10× a
// light one's calls), for two minutes; the policy at its defaults (enter at
// 90 % CPU, leave at 75 %).
func loadCases() []sim.Case {
	var out []sim.Case
	pc := goaway.PolicyConfig{}
	for _, capacity := range []float64{125, 115, 105} {
		for _, heavy := range []int{0, 1, 3} {
			load := (1000 + float64(heavy)*9) / (10 * capacity)
			out = append(out, sim.Case{Name: fmt.Sprintf("load: fleet at %.0f %%, %d heavy", load*100, heavy),
				Scenario: sim.Scenario{Before: 10, After: 10, Conns: 1000, Balancer: sim.Random, Off: true,
					Heavy: heavy, HeavyWeight: 10, Capacity: capacity, Policy: &pc,
					ScaleAt: 10 * time.Second, For: 130 * time.Second}})
		}
	}
	return out
}

func run(out string, seeds int, quick bool, table, charts, only string) error {
	if quick {
		seeds = min(seeds, 3)
	}
	if charts == "" {
		charts = out
	}
	var rows []sim.Row
	results := cluster.Results{}
	for _, c := range cases(quick) {
		if only != "" && !strings.Contains(c.Name, only) {
			continue
		}
		row, err := sim.RunCase(c, seeds)
		if err != nil {
			return err
		}
		rows = append(rows, row)
		fmt.Fprintf(os.Stderr, "%-40s fair %-18s per-moved %-18s peak %-16s max/mean %-18s heavy moves %s  (%v)\n",
			c.Name, row.SecondsToFairShare, row.GoAwaysPerMovedConn, row.PeakReconnectsPerSec, row.MaxOverMean,
			row.HeavyMoves, row.CPU.Round(time.Millisecond))
		record(results, row)
		if err := shareChart(charts, row); err != nil {
			return err
		}
	}
	sim.WriteMarkdown(os.Stdout, rows)
	if table != "" {
		f, err := os.Create(table)
		if err != nil {
			return err
		}
		sim.WriteMarkdown(f, rows)
		fmt.Fprintln(f)
		sim.WriteLoadMarkdown(f, rows)
		if err := f.Close(); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	root, _ := os.Getwd()
	path := filepath.Join(out, "results.json")
	if err := results.Merge(path, root); err != nil {
		return err
	}
	results.PrintTable(os.Stdout)
	fmt.Printf("\nmerged into %s\n", path)
	return nil
}

// record adds a row's figures: the headline (uniform random, n/2 → n) as
// sim.<n>.*, least connections as sim.<n>.leastconn.*.
func record(res cluster.Results, r sim.Row) {
	if r.Before*2 != r.After || r.Conns != 100_000 {
		return
	}
	prefix := fmt.Sprintf("sim.%d.", r.After)
	switch r.Balancer {
	case sim.Random:
	case sim.LeastConn, sim.P2C:
		prefix += string(r.Balancer) + "."
	default:
		return
	}
	if r.SecondsToFairShare.Median >= 0 {
		res[prefix+"seconds_to_fair_share"] = r.SecondsToFairShare.Median
	}
	res[prefix+"goaways_per_moved_conn"] = r.GoAwaysPerMovedConn.Median
	res[prefix+"goaways_per_moved_conn_max"] = r.GoAwaysPerMovedConn.Max
	res[prefix+"peak_reconnects_per_s"] = r.PeakReconnectsPerSec.Median
	res[prefix+"max_over_mean_conns"] = r.MaxOverMean.Median
}

// shareChart draws the added replicas' share of the connections over time
// (÷ fair share) for the doublings at n = 1 000 and the cluster16 cases.
func shareChart(dir string, r sim.Row) error {
	if !(r.After == 1000 && r.Before == 500) && !strings.HasPrefix(r.Name, "cluster16") || r.After < r.Before {
		return nil
	}
	name := strings.NewReplacer(" ", "_", "=", "", "→", "-").Replace(r.Name)
	c := chart.Line{Title: "simulated " + r.Name + ": added replicas' share of connections ÷ fair share",
		XLabel: "seconds", YLabel: "share ÷ fair", Markers: []chart.Marker{{X: r.Last.ScaleAt.Seconds(), Label: "scale-out"}}}
	s := chart.Series{Name: "added replicas"}
	for i, v := range r.Last.NewShare {
		s.Points = append(s.Points, chart.Point{X: float64(i), Y: v})
	}
	c.Series = append(c.Series, s)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, "sim_"+name+".svg"))
	if err != nil {
		return err
	}
	if err := c.WriteSVG(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
