package health

import (
	"cmp"
	"hash/fnv"
	"math"
	"slices"
)

// watchStream is one Watch stream of a service that follows load.
type watchStream struct {
	// Immutable:
	key    uint64        // hash of the stream's peer address: the order of removal
	seq    uint64        // arrival order, to order equal keys
	notify chan struct{} // capacity 1: the stream's status may have changed

	removed bool // guarded by the Reporter's mu: answered NOT_SERVING for load
}

// peerKey hashes a peer address (FNV-1a, then a finalizer so that
// addresses differing in one port digit land far apart).
func peerKey(addr string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(addr))
	x := h.Sum64()
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	return x
}

// streamSet is the Watch streams of one service, sorted by (key, seq).
// Guarded by the Reporter's mu.
//
// Which streams are removed is sticky: when the number to remove grows,
// the lowest keys not yet removed are added; when it shrinks, the highest
// removed keys return; a new stream is not removed unless the number grows
// with it; a removed stream that ends is replaced by the lowest key not
// removed. So a client's status changes only when the share changes, or
// when a removed stream ends and another must take its place: it never
// flaps with the arrival of other clients.
type streamSet struct {
	list []*watchStream
}

func compareStreams(a, b *watchStream) int {
	if c := cmp.Compare(a.key, b.key); c != 0 {
		return c
	}
	return cmp.Compare(a.seq, b.seq)
}

// add inserts s (not removed).
func (ss *streamSet) add(s *watchStream) {
	i, _ := slices.BinarySearchFunc(ss.list, s, compareStreams)
	ss.list = slices.Insert(ss.list, i, s)
}

// remove deletes s.
func (ss *streamSet) remove(s *watchStream) {
	if i, ok := slices.BinarySearchFunc(ss.list, s, compareStreams); ok {
		ss.list = slices.Delete(ss.list, i, i+1)
	}
}

// target is the number of streams to remove for share out of n, at most
// maxShare of them but at least one (a single health-checking client is
// turned away all the same): ⌈share·n⌉, so that a replica out of rotation
// removes at least its excess.
func target(share, maxShare float64, n int) int {
	if share <= 0 || n == 0 {
		return 0
	}
	k := int(math.Ceil(share*float64(n) - 1e-9))
	return min(k, max(1, int(math.Floor(maxShare*float64(n)+1e-9))), n)
}

// apply removes exactly k streams (see streamSet) and notifies those whose
// status changed. It returns the number of streams that changed.
func (ss *streamSet) apply(k int) int {
	n := 0
	for _, s := range ss.list {
		if s.removed {
			n++
		}
	}
	changed := 0
	for i := len(ss.list) - 1; i >= 0 && n > k; i-- {
		if s := ss.list[i]; s.removed {
			s.removed = false
			n--
			changed++
			s.wake()
		}
	}
	for _, s := range ss.list {
		if n >= k {
			break
		}
		if !s.removed {
			s.removed = true
			n++
			changed++
			s.wake()
		}
	}
	return changed
}

// removedCount returns the number of removed streams.
func (ss *streamSet) removedCount() int {
	n := 0
	for _, s := range ss.list {
		if s.removed {
			n++
		}
	}
	return n
}

// wakeAll notifies every stream (a change of the service's status).
func (ss *streamSet) wakeAll() {
	for _, s := range ss.list {
		s.wake()
	}
}

func (s *watchStream) wake() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}
