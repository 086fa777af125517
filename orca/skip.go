package orca

// The skip: once every connection the server has open has had its report
// in the current epoch, no call of the epoch is due one, and due returns
// false without looking the call's connection up (a context walk, a cache
// slot and the connection's entry: in a profile of a pinned server under
// load, ≈ 0.5 % of its CPU; bench/NOTES.md "Eleventh session"). It needs
// to know which connections are open (conns.src, a goaway.Tracker), and is
// safe only while the reports counted are those of the connections
// counted. At each epoch's start (startSkip) the sampler goroutine takes
// the count n of open connections and their generation; a call skips
// while
//
//   - the generation has not moved (no connection opened or closed since
//     the count; the source pushes each move, see conns.gen), and
//   - n calls of the epoch reported, on n different connections, and
//   - no call of the epoch came on a connection that conns did not know
//     (taint): a connection new to conns, one past maxConns, or a call
//     without a peer.
//
// Then the n reports were on n connections open at the count (a report
// counts only on the first due of an entry in the epoch, and a connection
// that opened later moved the generation), and conns knew each of them
// before the epoch began or had its call taint it. Every connection open
// has reported: skipping is exact. A server that also serves calls the
// count does not include (grpc.Server.ServeHTTP, where every call has its
// own peer, or a server whose credentials the Tracker does not wrap) taints
// every epoch with its first such call, and Connections.Count reports
// itself incomplete once goaway.Tracker.Audit has seen them.
//
// Any open or close stops the skip until the next epoch, so a server whose
// connections churn every few seconds rarely skips: it then costs one load
// a call. Where it skips, it saves about 0.2 % of a pinned server's CPU
// (bench/NOTES.md "Twelfth session": the lookup's cache misses, less the
// skip's own two lines). A connection that has only streams never reports (streams
// report on every stream, not through conns), so a server with one never
// skips.

// The tally of an epoch, one word so that a report is counted in the epoch
// it was made in: the epoch's low 32 bits, a taint bit, and 31 bits of
// reports. conns.target is the tally of the epoch with as many reports as
// connections counted, and no taint; conns.gen0 the generation of the
// count; conns.gen the latest generation the source pushed
// (Connections.OnGeneration: for a connection that opens, before its first
// call). All four are in the Reporter's first cache line, so that a call
// that skips reads that line and nothing else (the source's generation,
// read on every call until the seventeenth session, was two lines more: its
// interface's method table and the Tracker's word). advance clears target
// before the epoch moves and stores gen0 before target, and skip loads
// target, then gen0, then the tally, so a call that reads a target and a
// tally of the same epoch reads that epoch's gen0. A push that has not
// come yet leaves gen behind gen0: no skip, never a wrong one.
const (
	tallyTaint = 1 << 31
	tallyCount = tallyTaint - 1
)

// tallyOf returns the tally of epoch e with no report.
func tallyOf(e uint64) uint64 { return uint64(uint32(e)) << 32 }

// skip reports whether the call may skip the lookup: every connection open
// has reported in this epoch.
func (c *conns) skip() bool {
	t := c.target.Load()
	if t == 0 {
		return false
	}
	g := c.gen0.Load()
	tl := c.tally.Load()
	// The same epoch, at least the reports counted, no taint.
	return tl >= t && tl < t&^tallyCount|tallyTaint && c.gen.Load() == g
}

// startSkip counts the open connections at the start of epoch e and turns
// the skip on for it. Sampler goroutine only (advance), after the tally of
// e is stored.
func (c *conns) startSkip(e uint64) {
	if c.src == nil {
		return
	}
	n, gen, complete := c.src.Count()
	if !complete || n <= 0 || n > tallyCount {
		return
	}
	c.gen0.Store(gen)
	c.target.Store(tallyOf(e) | uint64(n))
}

// reported counts a report of epoch e, unless the epoch has moved on (the
// report then counts in none: the skip waits for one more) or the tally
// is full.
func (c *conns) reported(e uint64) {
	for {
		tl := c.tally.Load()
		if tl>>32 != uint64(uint32(e)) || tl&tallyCount == tallyCount {
			return
		}
		if c.tally.CompareAndSwap(tl, tl+1) {
			return
		}
	}
}

// taint turns the skip off for the rest of epoch e: a call came on a
// connection conns did not know.
func (c *conns) taint(e uint64) {
	for {
		tl := c.tally.Load()
		if tl>>32 != uint64(uint32(e)) || tl&tallyTaint != 0 {
			return
		}
		if c.tally.CompareAndSwap(tl, tl|tallyTaint) {
			return
		}
	}
}
