package sim

import (
	"fmt"
	"io"
	"math"
	"slices"
	"time"
)

// Case is a row of the simulation table: a scenario run with several
// seeds.
type Case struct {
	Name string // e.g. "random 500→1000"
	Scenario
}

// Spread is the median of a figure over seeds, with its extremes.
type Spread struct{ Median, Min, Max float64 }

func spread(v []float64) Spread {
	s := slices.Clone(v)
	slices.Sort(s)
	return Spread{Median: s[len(s)/2], Min: s[0], Max: s[len(s)-1]}
}

// String formats the median with the range when the seeds disagree.
func (s Spread) String() string {
	f := func(v float64) string {
		switch {
		case v < 0:
			return "never"
		case v >= 100 || v == math.Trunc(v):
			return fmt.Sprintf("%.0f", v)
		default:
			return fmt.Sprintf("%.2f", v)
		}
	}
	if s.Min == s.Max {
		return f(s.Median)
	}
	return fmt.Sprintf("%s (%s–%s)", f(s.Median), f(s.Min), f(s.Max))
}

// Row is a Case's figures over its seeds.
type Row struct {
	Case
	Seeds                                               int
	SecondsToFairShare, GoAwaysPerMovedConn             Spread
	PeakReconnectsPerSec, PeakOverFair                  Spread
	MaxOverMean, PlacementMaxOverMean, GoAwaysPerClient Spread
	HeavyMoves, OverloadedSecs                          Spread
	GoAways                                             Spread
	// Last is the last seed's result (its NewShare series, for a chart).
	Last Result
	CPU  time.Duration
}

// RunCase runs c with seeds 1..seeds.
func RunCase(c Case, seeds int) (Row, error) {
	var fair, per, peak, peakRel, mom, place, perClient, heavy, over, sent []float64
	row := Row{Case: c, Seeds: seeds}
	start := time.Now()
	for seed := 1; seed <= seeds; seed++ {
		s := c.Scenario
		s.Seed = uint64(seed)
		r, err := Run(s)
		if err != nil {
			return Row{}, fmt.Errorf("%s: %w", c.Name, err)
		}
		fair = append(fair, r.SecondsToFairShare)
		per = append(per, r.GoAwaysPerMovedConn)
		peak = append(peak, float64(r.PeakReconnectsPerSec))
		peakRel = append(peakRel, r.PeakOverFair)
		mom = append(mom, r.MaxOverMean)
		place = append(place, r.PlacementMaxOverMean)
		perClient = append(perClient, r.GoAwaysPerClient)
		heavy = append(heavy, float64(r.HeavyMoves))
		over = append(over, r.OverloadedSecs)
		total := 0
		for _, n := range r.GoAways {
			total += n
		}
		sent = append(sent, float64(total))
		row.Last = r
	}
	row.CPU = time.Since(start)
	// "never" (negative) sorts first; a median that is never means most
	// seeds never got there.
	row.SecondsToFairShare = spread(fair)
	row.GoAwaysPerMovedConn = spread(per)
	row.PeakReconnectsPerSec = spread(peak)
	row.PeakOverFair = spread(peakRel)
	row.MaxOverMean = spread(mom)
	row.PlacementMaxOverMean = spread(place)
	row.GoAwaysPerClient = spread(perClient)
	row.HeavyMoves = spread(heavy)
	row.OverloadedSecs = spread(over)
	row.GoAways = spread(sent)
	return row, nil
}

// Floor is the fewest GOAWAYs per moved connection any server-side policy
// can expect behind c's balancer: 1 where reconnections go to the replicas
// that need them (least connections), After ÷ (After − Before) behind a
// uniform random one (only that share of reconnections reaches an added
// replica). 0 where it does not apply.
func (c Case) Floor() float64 {
	switch {
	case c.After <= c.Before || c.Balancer == DNS:
		return 0
	case c.Balancer == Random:
		return float64(c.After) / float64(c.After-c.Before)
	}
	return 1
}

// WriteLoadMarkdown writes the rows of the load Policy's cases (those
// with a Policy) as a Markdown table.
func WriteLoadMarkdown(w io.Writer, rows []Row) {
	fmt.Fprintln(w, "| case | GOAWAYs (load) in 2 min | heavy connections moved | replica-seconds overloaded (of 1 200) | max/mean conns at the end |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	for _, r := range rows {
		if r.Policy == nil {
			continue
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", r.Name, r.GoAways, r.HeavyMoves, r.OverloadedSecs, r.MaxOverMean)
	}
}

// WriteMarkdown writes the rows of the rebalancing cases (those without a
// Policy) as a Markdown table, or nothing if there are none.
func WriteMarkdown(w io.Writer, rows []Row) {
	if !slices.ContainsFunc(rows, func(r Row) bool { return r.Policy == nil }) {
		return
	}
	fmt.Fprintln(w, "| case | seconds to fair share | GOAWAYs per moved conn (floor) | peak reconnects/s on a replica (÷ mean conns) | max/mean conns at the end (balancer alone) | GOAWAYs |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	for _, r := range rows {
		if r.Policy != nil {
			continue
		}
		per := "–"
		if r.After > r.Before && r.Balancer != DNS {
			per = fmt.Sprintf("%s (%.2f)", r.GoAwaysPerMovedConn, r.Floor())
		} else if r.Balancer == DNS {
			per = fmt.Sprintf("%s per client", r.GoAwaysPerClient)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s (%s) | %s (%s) | %s |\n", r.Name, r.SecondsToFairShare, per,
			r.PeakReconnectsPerSec, r.PeakOverFair, r.MaxOverMean, r.PlacementMaxOverMean, r.GoAways)
	}
}
