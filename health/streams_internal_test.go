package health

import (
	"fmt"
	"slices"
	"testing"
)

// The streams turned away are the lowest hashes of their peers, and the
// choice is sticky: arrivals do not flip anyone, a smaller share returns the
// highest of those turned away, a removed stream that ends is replaced by the
// lowest of the others.
func TestStreamSelection(t *testing.T) {
	var ss streamSet
	var all []*watchStream
	add := func(addr string) *watchStream {
		s := &watchStream{key: peerKey(addr), seq: uint64(len(all)), notify: make(chan struct{}, 1)}
		all = append(all, s)
		ss.add(s)
		return s
	}
	for i := range 10 {
		add(fmt.Sprintf("10.0.0.%d:4000%d", i, i))
	}
	removed := func() []uint64 {
		var out []uint64
		for _, s := range ss.list {
			if s.removed {
				out = append(out, s.key)
			}
		}
		return out
	}
	keys := func() []uint64 {
		var out []uint64
		for _, s := range ss.list {
			out = append(out, s.key)
		}
		return out
	}
	if !slices.IsSorted(keys()) {
		t.Fatal("streams are not kept in key order")
	}
	if n := ss.apply(target(0.3, 0.9, len(ss.list))); n != 3 {
		t.Fatalf("share 0.3 of 10 changed %d streams, want 3", n)
	}
	if got, want := removed(), keys()[:3]; !slices.Equal(got, want) {
		t.Fatalf("removed %v, want the three lowest keys %v", got, want)
	}
	before := removed()
	// An arrival with the lowest key of all: the number to remove
	// (⌈0.3·11⌉ = 4) grows by one, and the lowest key not removed is taken,
	// which is the newcomer; the three already removed stay so.
	var low *watchStream
	for i := 0; low == nil; i++ {
		if k := peerKey(fmt.Sprintf("10.0.1.1:%d", i)); k < ss.list[0].key {
			low = add(fmt.Sprintf("10.0.1.1:%d", i))
		}
	}
	ss.apply(target(0.3, 0.9, len(ss.list)))
	if got := removed(); len(got) != 4 || !slices.Equal(got[1:], before) || got[0] != low.key {
		t.Fatalf("after an arrival: removed %v, want the newcomer %v and the three before %v", got, low.key, before)
	}
	// Another arrival, with the number to remove unchanged (⌈0.3·12⌉ = 4):
	// nobody flips.
	add("10.0.2.1:1")
	if n := ss.apply(target(0.3, 0.9, len(ss.list))); n != 0 {
		t.Fatalf("an arrival that leaves the count unchanged flipped %d streams", n)
	}
	// A smaller share returns the highest keys of those removed.
	ss.apply(target(0.1, 0.9, len(ss.list)))
	if got, want := removed(), keys()[:2]; !slices.Equal(got, want) {
		t.Fatalf("share 0.1 of 12: removed %v, want %v", got, want)
	}
	// A removed stream that ends is replaced by the lowest key not removed.
	gone := ss.list[0]
	ss.remove(gone)
	ss.apply(target(0.1, 0.9, len(ss.list)))
	if got, want := removed(), keys()[:2]; !slices.Equal(got, want) {
		t.Fatalf("after a removed stream ended: removed %v, want %v", got, want)
	}
	// MaxShare keeps some streams; one stream alone is turned away.
	if k := target(1, 0.9, 12); k != 10 {
		t.Errorf("target(1, 0.9, 12) = %d, want 10", k)
	}
	if k := target(0.2, 0.9, 1); k != 1 {
		t.Errorf("target(0.2, 0.9, 1) = %d, want 1", k)
	}
	if k := target(0, 0.9, 5); k != 0 {
		t.Errorf("target(0, 0.9, 5) = %d, want 0", k)
	}
}
