package goaway_test

import (
	"slices"
	"testing"
	"time"

	"github.com/grpcmgmt/grpcmgmt/goaway"
)

// TestRank: the selection of a round. Oldest first keeps the order;
// busiest first sorts by calls per second; a connection younger than
// minAge is left out, and a heavy one (k times the mean calls per second)
// until it is k × minAge old.
func TestRank(t *testing.T) {
	s := time.Second
	cands := []goaway.Candidate{
		{Age: 60 * s, Calls: 600},  // 10/s: light
		{Age: 30 * s, Calls: 3000}, // 100/s: heavy, k = 100/28 ≈ 3.6: needs 18 s, has 30
		{Age: 10 * s, Calls: 1000}, // 100/s: heavy, needs 18 s, has 10: spared
		{Age: 8 * s, Calls: 80},    // 10/s: light, old enough
		{Age: 2 * s, Calls: 20},    // 10/s: too young
	}
	noShuffle := func(int, func(i, j int)) { t.Fatal("shuffled without Random") }
	for _, c := range []struct {
		sel    goaway.Selector
		minAge time.Duration
		want   []int
	}{
		{goaway.OldestFirst, 0, []int{0, 1, 2, 3, 4}},
		{goaway.OldestFirst, 5 * s, []int{0, 1, 3}},
		{goaway.BusiestFirst, 5 * s, []int{1, 0, 3}},
		{goaway.BusiestFirst, 0, []int{1, 2, 0, 3, 4}},
	} {
		if got := goaway.Rank(cands, c.sel, c.minAge, noShuffle); !slices.Equal(got, c.want) {
			t.Errorf("Rank(%v, minAge %v) = %v, want %v", c.sel, c.minAge, got, c.want)
		}
	}
	shuffled := false
	got := goaway.Rank(cands, goaway.Random, 5*s, func(n int, swap func(i, j int)) {
		shuffled = true
		swap(0, n-1)
	})
	if !shuffled || !slices.Equal(got, []int{3, 1, 0}) {
		t.Errorf("Rank(Random) = %v (shuffled %v), want the eligible [0 1 3] through the shuffle: [3 1 0]", got, shuffled)
	}
	if got := goaway.Rank(nil, goaway.BusiestFirst, s, noShuffle); len(got) != 0 {
		t.Errorf("Rank(nil) = %v", got)
	}
}
