package goaway

import (
	"context"
)

// Audit compares served, the number of calls the server has started on all
// its connections (counted by an interceptor), with the streams the Tracker
// has seen open on the connections it wraps, and reports the difference:
// calls that arrived on connections the Tracker never saw. Every call
// starts with a HEADERS frame the Tracker reads before grpc-go dispatches
// it, so on a server whose credentials are all wrapped served never exceeds
// what the Tracker saw.
//
// A difference means a grpc.Creds option replaced the wrapped credentials
// (placed after the Tracker's in grpc.NewServer's options), or the server
// also serves through a path that bypasses credentials (grpc.Server's
// ServeHTTP): GOAWAY cannot reach those connections. Audit then logs an
// error (once per Tracker) and adds the new untracked calls to
// grpcmgmt.goaway.untracked_calls. It returns the untracked calls seen so
// far. The grpcmgmt Manager calls it on every load sample; call it
// yourself when you wrap credentials without a Manager.
func (t *Tracker) Audit(served uint64) uint64 {
	seen := t.streams()
	t.auditMu.Lock()
	defer t.auditMu.Unlock()
	if served <= seen || served-seen <= t.untracked {
		return t.untracked
	}
	n := served - seen
	t.m.untrackedC.Add(context.Background(), int64(n-t.untracked))
	if t.untracked == 0 {
		t.log.Error("goaway: calls arrive on connections the Tracker never saw, and GOAWAY cannot reach them: "+
			"a grpc.Creds option after the library's server options replaced its credentials "+
			"(pass yours with grpcmgmt.WithCredentials instead), or the server also serves through ServeHTTP",
			"untracked_calls", n, "tracked_streams", seen, "tracked_connections", t.Len())
	}
	first := t.untracked == 0
	t.untracked = n
	if first { // Count is no longer complete: see Count
		t.mu.Lock()
		g := t.gen.Add(1)
		t.mu.Unlock()
		t.moved(g)
	}
	return n
}

// streams returns how many streams clients opened on the connections the
// Tracker wraps, live or closed, since it was created. It never
// undercounts (a stream counted as its connection closes may count twice),
// so Audit never reports a tracked call as untracked.
func (t *Tracker) streams() uint64 {
	t.sweep()
	t.mu.Lock()
	defer t.mu.Unlock()
	n := t.closedCalls.Load()
	for _, c := range t.conns {
		n += c.calls.Load()
	}
	return n
}
