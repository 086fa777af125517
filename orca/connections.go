package orca

import "errors"

// Connections is the set of client connections a server has open, as the
// goaway.Tracker that wraps its credentials knows them. Given one
// (WithConnections), the Reporter stops looking up the connection of each
// unary call once every open connection has had its per-call report in
// the current Config.PerCallInterval: from then until the interval ends,
// or a connection opens or closes, no call is due a report, and the call
// path skips the lookup (skip.go; a call on a connection the Reporter did
// not know turns it off for the interval). *goaway.Tracker implements it;
// the grpcmgmt Manager passes its own when both levers are on.
type Connections interface {
	// Count returns the number of connections open now and their
	// generation, a number that grows whenever one opens or closes.
	// complete is false when calls may arrive on connections the count
	// does not include (goaway.Tracker: once its Audit has found such
	// calls); the Reporter then never skips.
	Count() (n int, gen uint64, complete bool)
	// OnGeneration registers f, called with the new generation every time
	// it grows: for a connection that opens, before any call can arrive
	// on it. f is quick and never blocks (the Reporter's stores one word);
	// it may be called from several goroutines at once, and not in the
	// order of the generations. cancel stops the calls. Pushing the
	// generation, rather than having every call read it, keeps the
	// skipping calls on the Reporter's own cache line.
	OnGeneration(f func(gen uint64)) (cancel func())
}

// WithConnections tells the Reporter which connections the server has
// open, so that the calls of an interval in which every connection already
// had its report skip the per-call connection lookup (Connections). The
// reports sent are the same as without it. Without a grpcmgmt Manager,
// call the Tracker's Audit once per sample period, as the Manager does, so
// that connections the Tracker does not wrap turn the skip off.
func WithConnections(c Connections) Option {
	return func(o *options) {
		if c == nil {
			o.errs = append(o.errs, errors.New("orca: WithConnections: argument must not be nil"))
			return
		}
		o.conns = c
	}
}
