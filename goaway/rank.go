package goaway

import (
	"cmp"
	"slices"
	"time"
)

// Candidate is a connection a round of GOAWAYs may choose: what Rank
// needs to know of it.
type Candidate struct {
	// Age is the time since the connection's handshake.
	Age time.Duration
	// Calls is the number of calls its client has started on it.
	Calls uint64
}

func (c Candidate) rate() float64 { return float64(c.Calls) / max(c.Age.Seconds(), 1e-9) }

// Rank returns the indexes of the candidates a round may send a GOAWAY to,
// in the order it should (cands are the connections not draining, oldest
// first): by sel (OldestFirst keeps the order, BusiestFirst sorts by calls
// per second over the connection's life, Random shuffles with shuffle),
// leaving out the connections younger than their minimum age.
//
// The minimum age of a connection is minAge scaled by its share of the
// load: one that carries k times the mean calls per second must be k ×
// minAge old (k ≥ 1). A heavy client moved to another replica makes that
// replica hot, whose policy would move it on again after minAge: the fleet
// simulation showed three clients carrying 10× the others' load moved 43
// times in two minutes among ten replicas at 80 % load. A heavy connection
// now stays k times longer, while the light ones around it move (moving
// light ones relieves this replica without creating a hot spot elsewhere).
// With minAge 0 every candidate is eligible.
//
// It is the selection of Tracker.GoAwayOlder; a fleet simulation calls it
// for its simulated connections.
func Rank(cands []Candidate, sel Selector, minAge time.Duration, shuffle func(n int, swap func(i, j int))) []int {
	out := make([]int, 0, len(cands))
	mean := 0.0
	if minAge > 0 && len(cands) > 0 {
		for _, c := range cands {
			mean += c.rate()
		}
		mean /= float64(len(cands))
	}
	for i, c := range cands {
		if minAge > 0 {
			k := 1.0
			if mean > 0 {
				k = max(1, c.rate()/mean)
			}
			if c.Age < time.Duration(k*float64(minAge)) {
				continue
			}
		}
		out = append(out, i)
	}
	switch sel {
	case BusiestFirst:
		slices.SortStableFunc(out, func(a, b int) int { return cmp.Compare(cands[b].rate(), cands[a].rate()) })
	case Random:
		shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	}
	return out
}
