package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
)

// pool reads the slice logs of earlier runs (-slice-log) and writes to w
// the unary figures of each run and of all of them pooled: the per-pair
// ratios, full stack ÷ bare, of CPU per call (as the run's own figure
// reads them), of calls a second, of the collector's CPU per call and of
// collections per call, each as median, mean, standard error of the mean,
// min and max; and the p99 ratio over every round (the geometric mean of
// neighbouring slices' ratios, overhead.unary_p99_ratio). Two runs of the
// same code differ by up to about four of their own standard errors on
// this machine (bench/NOTES.md, "Twelfth session"), so a claim about a
// difference under 1 % pools several runs; this is the command that pools
// them.
func pool(w io.Writer, files []string) error {
	var all pooled
	for _, name := range files {
		run, err := readSliceLog(name)
		if err != nil {
			return err
		}
		p := run.pairs()
		if len(p.cpu) == 0 {
			return fmt.Errorf("%s: no unary pair with both kinds", name)
		}
		p.write(w, name)
		all.add(p)
	}
	if len(files) > 1 {
		all.write(w, "pooled")
	}
	return nil
}

// sliceRun is one run's slice log: its unary slices by pair and kind, and
// each round's p99s.
type sliceRun struct {
	raw  map[int]map[string]*sliceRaw  // pair → kind → the slices summed
	p99s map[[2]int]map[string]float64 // (pair, round) → kind → p99 µs
}

func readSliceLog(name string) (*sliceRun, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	run := &sliceRun{raw: map[int]map[string]*sliceRaw{}, p99s: map[[2]int]map[string]float64{}}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		var l sliceLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return nil, fmt.Errorf("%s:%d: %v", name, n, err)
		}
		if l.Stream || (l.Kind != "bare" && l.Kind != "on") {
			continue
		}
		if run.raw[l.Pair] == nil {
			run.raw[l.Pair] = map[string]*sliceRaw{"bare": {}, "on": {}}
		}
		run.raw[l.Pair][l.Kind].add(sliceRaw{calls: l.Calls, elapsedNs: l.ClientNs,
			serverReport: serverReport{cpuNs: l.CPUNs, wallNs: l.WallNs, gcs: l.GCs, gcNs: l.GCNs},
			p99us:        []float64{l.P99us}})
		k := [2]int{l.Pair, l.Round}
		if run.p99s[k] == nil {
			run.p99s[k] = map[string]float64{}
		}
		run.p99s[k][l.Kind] = max(l.P99us, 1)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	return run, nil
}

// pooled holds per-pair ratios (full stack ÷ bare) and per-round p99 log
// ratios.
type pooled struct {
	cpu, qps, gcCPU, gcs []float64
	p99LogR              []float64
}

func (r *sliceRun) pairs() pooled {
	var p pooled
	ids := make([]int, 0, len(r.raw))
	for id := range r.raw {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		b, o := r.raw[id]["bare"], r.raw[id]["on"]
		if b.calls == 0 || o.calls == 0 {
			continue
		}
		rb, ro := b.result(), o.result()
		p.cpu = append(p.cpu, ro.cpuPerCall/rb.cpuPerCall)
		p.qps = append(p.qps, ro.qps/rb.qps)
		if rb.gcPerCall > 0 {
			p.gcCPU = append(p.gcCPU, ro.gcPerCall/rb.gcPerCall)
		}
		if rb.gcsPer1k > 0 {
			p.gcs = append(p.gcs, ro.gcsPer1k/rb.gcsPer1k)
		}
	}
	keys := make([][2]int, 0, len(r.p99s))
	for k := range r.p99s {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b [2]int) int {
		if a[0] != b[0] {
			return a[0] - b[0]
		}
		return a[1] - b[1]
	})
	for _, k := range keys {
		if v := r.p99s[k]; v["bare"] > 0 && v["on"] > 0 {
			p.p99LogR = append(p.p99LogR, math.Log(v["on"]/v["bare"]))
		}
	}
	return p
}

func (p *pooled) add(o pooled) {
	p.cpu = append(p.cpu, o.cpu...)
	p.qps = append(p.qps, o.qps...)
	p.gcCPU = append(p.gcCPU, o.gcCPU...)
	p.gcs = append(p.gcs, o.gcs...)
	p.p99LogR = append(p.p99LogR, o.p99LogR...)
}

func (p pooled) write(w io.Writer, name string) {
	fmt.Fprintf(w, "%s: %d pairs\n", name, len(p.cpu))
	for _, f := range []struct {
		name string
		v    []float64
	}{
		{"overhead.unary_cpu_per_call_ratio", p.cpu},
		{"overhead.unary_qps_ratio", p.qps},
		{"the collector's CPU per call, full ÷ bare", p.gcCPU},
		{"collections per call, full ÷ bare", p.gcs},
	} {
		if len(f.v) == 0 {
			continue
		}
		fmt.Fprintf(w, "  %-42s median %.4f  mean %.4f  se %.4f  min %.3f  max %.3f\n",
			f.name, median(f.v), mean(f.v), stdErr(f.v), slices.Min(f.v), slices.Max(f.v))
	}
	if len(p.p99LogR) > 0 {
		fmt.Fprintf(w, "  %-42s %.3f over %d rounds\n", "overhead.unary_p99_ratio", math.Exp(mean(p.p99LogR)), len(p.p99LogR))
	}
}

// stdErr returns the standard error of the mean of v (0 for fewer than two
// values).
func stdErr(v []float64) float64 {
	if len(v) < 2 {
		return 0
	}
	m := mean(v)
	var ss float64
	for _, x := range v {
		ss += (x - m) * (x - m)
	}
	return math.Sqrt(ss/float64(len(v)-1)) / math.Sqrt(float64(len(v)))
}
