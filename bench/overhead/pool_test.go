package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeSliceLog writes a slice log of pairs×rounds unary slices a kind in
// which the full stack spends cpu times the bare server's CPU a call,
// collects gcs times as often and has p99 times its p99, plus one stream
// slice a pair that pooling must leave out.
func writeSliceLog(t *testing.T, name string, pairs, rounds int, cpu, gcs, p99 float64) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	enc := json.NewEncoder(f)
	for p := range pairs {
		for r := range rounds {
			for _, kind := range []string{"bare", "on"} {
				l := sliceLine{Pair: p, Round: r, Set: r, Kind: kind, Calls: 5000, ClientNs: 2e8, CPUNs: 1.5e8, WallNs: 2e8,
					GCs: 10, GCNs: 1e7, P99us: 10000 + float64(100*p)}
				if kind == "on" {
					l.CPUNs *= cpu
					l.GCs *= gcs
					l.GCNs *= gcs
					l.P99us *= p99
				}
				if err := enc.Encode(l); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := enc.Encode(sliceLine{Pair: p, Kind: "on", Stream: true, Calls: 1, ClientNs: 1, CPUNs: 1e12, WallNs: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestPool(t *testing.T) {
	a := writeSliceLog(t, "a.slices", 9, 4, 1.02, 1.04, 1.1)
	b := writeSliceLog(t, "b.slices", 11, 4, 1.04, 1.04, 1.0)
	var out strings.Builder
	if err := pool(&out, []string{a, b}); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	t.Log("\n" + got)
	for _, want := range []string{
		a + ": 9 pairs\n  overhead.unary_cpu_per_call_ratio          median 1.0200  mean 1.0200  se 0.0000",
		"overhead.unary_qps_ratio                   median 1.0000",
		"collections per call, full ÷ bare          median 1.0400",
		"overhead.unary_p99_ratio                   1.100 over 36 rounds",
		b + ": 11 pairs\n  overhead.unary_cpu_per_call_ratio          median 1.0400",
		"pooled: 20 pairs\n  overhead.unary_cpu_per_call_ratio          median 1.0400  mean 1.0310",
		"overhead.unary_p99_ratio                   1.044 over 80 rounds",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("pool output lacks %q", want)
		}
	}

	empty := filepath.Join(t.TempDir(), "empty.slices")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := pool(&out, []string{empty}); err == nil || !strings.Contains(err.Error(), "no unary pair") {
		t.Errorf("pool of an empty log: %v, want an error saying it has no pair", err)
	}
}
