package cluster

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Results are figures by BENCH.md name. A figure that could not be measured
// is absent, never invented.
type Results map[string]float64

// Merge writes r into the JSON file at path, keeping figures already there
// that r does not replace, and stamps meta.commit, meta.date, meta.cpus and
// meta.machine (the CPU model, where /proc/cpuinfo tells).
func (r Results) Merge(path, root string) error {
	all := map[string]any{}
	if b, err := os.ReadFile(path); err == nil {
		_ = json.Unmarshal(b, &all)
	}
	for k, v := range r {
		all[k] = v
	}
	all["meta.date"] = time.Now().UTC().Format(time.RFC3339)
	all["meta.cpus"] = runtime.NumCPU()
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				all["meta.machine"] = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := exec.Command("git", "-C", root, "rev-parse", "--short", "HEAD").Output(); err == nil {
		all["meta.commit"] = strings.TrimSpace(string(b))
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

// PrintTable writes the figures as a Markdown table, sorted by name.
func (r Results) PrintTable(w io.Writer) {
	fmt.Fprintln(w, "| figure | value |")
	fmt.Fprintln(w, "|---|---|")
	for _, k := range slices.Sorted(maps.Keys(r)) {
		fmt.Fprintf(w, "| `%s` | %s |\n", k, fmtFigure(r[k]))
	}
}

func fmtFigure(v float64) string {
	switch {
	case v == float64(int64(v)):
		return fmt.Sprintf("%d", int64(v))
	case v < 10:
		return fmt.Sprintf("%.3f", v)
	default:
		return fmt.Sprintf("%.1f", v)
	}
}
