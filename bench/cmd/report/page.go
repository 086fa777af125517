package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// results is one run's figures: a results file's, or those a page names
// the run for.
type results struct {
	label  string         // "date, commit c, machine", as the page lists the run
	figs   map[string]any // figure -> value, and the meta.* keys
	charts []string       // chart files (.svg) of the run, in the page's order
}

// fromFile reads a results file; its charts are the .svg files beside it.
func fromFile(f string) (results, error) {
	b, err := os.ReadFile(f)
	if err != nil {
		return results{}, err
	}
	r := results{figs: map[string]any{}}
	if err := json.Unmarshal(b, &r.figs); err != nil {
		return results{}, fmt.Errorf("%s: %w", f, err)
	}
	m, ok := r.figs["meta.machine"].(string)
	if !ok {
		m = machine()
	}
	r.label = fmt.Sprintf("%v, commit %v, %v", r.figs["meta.date"], r.figs["meta.commit"], m)
	r.charts, _ = filepath.Glob(filepath.Join(filepath.Dir(f), "*.svg"))
	return r, nil
}

var (
	runLine   = regexp.MustCompile(`^- ([A-Z]+): (.*)$`)
	cpusLine  = regexp.MustCompile(`each on a machine of (\d+) CPUs`)
	chartLine = regexp.MustCompile(`^!\[[^\]]*\]\(img/([^)]+)\)$`)
)

// The two tables of figures a page of several runs has.
const (
	mainHeader  = "| figure | meaning | value | aim | met | run |"
	otherHeader = "| figure | value | run |"
)

// fromPage reads back the runs of a page this command wrote (several runs,
// each figure naming its run): each run's figures with its label, and the
// page's charts (in docs/img beside it) as the first run's. Written again
// with nothing added, they give the same page (TestPageRoundTrip), so the
// committed page can take new results (-base) without the results files
// of the runs before them, which live only on the machines that ran them.
func fromPage(page string) ([]results, error) {
	f, err := os.Open(page)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var runs []results
	index := map[string]int{} // run name -> its index in runs
	var cpus any
	table := ""     // the header of the table being read
	tables := 0     // tables read
	notes := false  // past the tables: the hand-written notes
	charts := false // in the charts, the page's last section
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		switch {
		case charts:
			if m := chartLine.FindStringSubmatch(l); m != nil && len(runs) > 0 {
				runs[0].charts = append(runs[0].charts, filepath.Join(filepath.Dir(page), "img", m[1]))
			}
		case l == "## Charts":
			charts = true
		case notes:
		case strings.HasPrefix(l, "## ") || tables == 2:
			notes = true
		case table == "" && tables == 0 && runLine.MatchString(l):
			m := runLine.FindStringSubmatch(l)
			index[m[1]] = len(runs)
			r := results{label: m[2], figs: map[string]any{}}
			if date, rest, ok := strings.Cut(m[2], ", commit "); ok {
				commit, _, _ := strings.Cut(rest, ", ")
				r.figs["meta.date"], r.figs["meta.commit"] = date, commit
			}
			runs = append(runs, r)
		case tables == 0 && cpusLine.MatchString(l):
			n, _ := strconv.Atoi(cpusLine.FindStringSubmatch(l)[1])
			cpus = float64(n)
		case l == mainHeader || l == otherHeader:
			table = l
		case table != "" && strings.HasPrefix(l, "|---"):
		case table != "" && strings.HasPrefix(l, "| `"):
			if err := readRow(l, table, runs, index); err != nil {
				return nil, fmt.Errorf("%s: %w", page, err)
			}
		case table != "":
			table = ""
			tables++
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(runs) < 2 {
		return nil, fmt.Errorf("%s: not a page of several runs (the runs are read from its list of runs)", page)
	}
	for _, r := range runs {
		r.figs["meta.cpus"] = cpus
	}
	return runs, nil
}

// readRow reads one row of a figures table into the run it names. The
// cells are counted from the right, so a meaning may hold a "|". A value
// that is not a number ("not measured", or why a figure is absent) is the
// page's own text and is not read.
func readRow(l, table string, runs []results, index map[string]int) error {
	name, rest, _ := strings.Cut(strings.TrimPrefix(l, "| `"), "` |")
	cells := strings.Split(strings.TrimSuffix(strings.TrimSpace(rest), "|"), "|")
	valueAt := len(cells) - 4 // meaning … | value | aim | met | run
	if table == otherHeader {
		valueAt = len(cells) - 2 // value | run
	}
	if valueAt < 0 {
		return fmt.Errorf("row of %s: too few cells: %q", name, l)
	}
	run := strings.TrimSpace(cells[len(cells)-1])
	text := strings.TrimSpace(cells[valueAt])
	if run == "" {
		return nil // not measured in any run
	}
	i, ok := index[run]
	if !ok {
		return fmt.Errorf("row of %s: run %q is not in the page's list of runs", name, run)
	}
	v, ok := valueFor(text)
	if !ok {
		return nil
	}
	runs[i].figs[name] = v
	return nil
}

// valueFor returns a value that format writes as text: the number text
// reads as, or one next to it when that one would be written otherwise
// ("1.000" reads as 1, which format writes "1").
func valueFor(text string) (float64, bool) {
	v, err := strconv.ParseFloat(text, 64)
	if err != nil {
		return 0, false
	}
	for _, c := range []float64{v, v + 1e-9, v - 1e-9, 9.9999999} {
		if format(c) == text {
			return c, true
		}
	}
	return 0, false
}
