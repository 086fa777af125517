package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunName: runs are named A to Z, then AA, AB, … (a page of more than
// 26 runs named the 27th "[").
func TestRunName(t *testing.T) {
	for i, want := range map[int]string{0: "A", 25: "Z", 26: "AA", 27: "AB", 51: "AZ", 52: "BA", 701: "ZZ", 702: "AAA"} {
		if got := runName(i); got != want {
			t.Errorf("runName(%d) = %q, want %q", i, got, want)
		}
	}
}

// TestCommittedPage: the committed page, read back as the base of a page
// with no new run, is written again byte for byte: every figure keeps its
// value and its run, the runs their labels, the charts their order. It
// also fails when bench/NOTES.md changed and the page was not written
// again.
func TestCommittedPage(t *testing.T) {
	page := filepath.Join("..", "..", "..", "docs", "benchmarks.md")
	want, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "benchmarks.md")
	if err := run(page, "", filepath.Join("..", "..", "NOTES.md"), out); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("docs/benchmarks.md is not what the page and bench/NOTES.md give (first difference at line %d); write it again: go -C bench run ./cmd/report -base ../docs/benchmarks.md -in ''",
			firstDiffLine(got, want))
	}
}

// TestPageRoundTrip: a page written from results files, read back with
// -base, gives the same page; with one more file, the page those files
// give together. The values are those format writes in a way that does
// not read back as itself (1.000, 10.000), and a later run's chart
// replaces an earlier one's in place.
func TestPageRoundTrip(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, figs map[string]any, charts ...string) string {
		d := filepath.Join(dir, name)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, c := range charts {
			if err := os.WriteFile(filepath.Join(d, c), []byte("<svg>"+name+"</svg>"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		b, err := json.Marshal(figs)
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(d, "results.json")
		if err := os.WriteFile(f, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return f
	}
	meta := func(date, commit string, figs map[string]any) map[string]any {
		figs["meta.date"], figs["meta.commit"], figs["meta.machine"], figs["meta.cpus"] = date, commit, "a machine, 8 GiB memory (a note, with commas)", 2
		return figs
	}
	a := write("a", meta("2026-01-01T00:00:00Z", "aaaaaaa", map[string]any{
		"overhead.unary_qps_ratio": 0.99996, "overhead.unary_cpu_per_call_ratio": 9.9996,
		"overhead.unary_extra_allocs": 1.0, "zz.other": 12.34, "zz.ratio": 1.00004,
	}), "b_chart.svg", "a_chart.svg")
	b := write("b", meta("2026-01-02T00:00:00Z", "bbbbbbb", map[string]any{
		"overhead.unary_qps_ratio": 0.981, "zz.new": 3.0,
	}), "a_chart.svg", "c_chart.svg")
	c := write("c", meta("2026-01-03T00:00:00Z", "ccccccc", map[string]any{
		"overhead.unary_extra_allocs": 0.5, "zz.other": 7.0,
	}), "d_chart.svg")
	notes := filepath.Join(dir, "NOTES.md")
	if err := os.WriteFile(notes, []byte("## Reading these figures\n\n| figure | value | run |\n|---|---|---|\n| `zz.other` | 1 | Q |\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	page := func(name, base, in string) []byte {
		t.Helper()
		out := filepath.Join(dir, name, "benchmarks.md")
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := run(base, in, notes, out); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	ab := page("ab", "", a+","+b)
	for _, want := range []string{"| `zz.ratio` | 1.000 | A |", "| 10.000 | ≤ 1.02 | **no** | A |", "| `zz.other` | 12.3 | A |", "![a_chart.svg](img/a_chart.svg)"} {
		if !bytes.Contains(ab, []byte(want)) {
			t.Fatalf("the page of a and b has no %q:\n%s", want, ab)
		}
	}
	if got := page("again", filepath.Join(dir, "ab", "benchmarks.md"), ""); !bytes.Equal(got, ab) {
		t.Errorf("the page read back and written again differs at line %d:\n%s", firstDiffLine(got, ab), got)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "again", "img", "a_chart.svg")); err != nil || string(got) != "<svg>b</svg>" {
		t.Errorf("the later run's a_chart.svg: %q, %v; want b's", got, err)
	}
	abc := page("abc", "", a+","+b+","+c)
	if got := page("abplus", filepath.Join(dir, "ab", "benchmarks.md"), c); !bytes.Equal(got, abc) {
		t.Errorf("the page of a and b with c added differs from the page of a, b and c at line %d:\n%s", firstDiffLine(got, abc), got)
	}
}

// firstDiffLine returns the first line (from 1) where a and b differ.
func firstDiffLine(a, b []byte) int {
	la, lb := strings.Split(string(a), "\n"), strings.Split(string(b), "\n")
	for i := range min(len(la), len(lb)) {
		if la[i] != lb[i] {
			return i + 1
		}
	}
	return min(len(la), len(lb)) + 1
}
