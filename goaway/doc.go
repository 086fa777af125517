// Package goaway sends an HTTP/2 GOAWAY on chosen server connections, now:
// the lever that makes standard gRPC clients move when the server decides.
//
// # Why
//
// grpc-go has no API to end one server connection: keepalive's
// MaxConnectionAge is a timer, and GracefulStop ends every connection and
// the server. Yet moving a client is exactly what a server needs when it is
// overloaded (behind an L4 balancer the client reconnects, possibly to
// another backend), when a replica was added (fair-share rebalancing), or
// when a connection has carried enough calls.
//
// # How
//
// Tracker.WrapCredentials wraps the server's transport credentials
// (insecure, TLS and mTLS alike): the handshake is the inner one, and the
// net.Conn handed to grpc-go is a wrapper. After the handshake (after TLS)
// grpc-go writes plain HTTP/2 frames through it, so the wrapper follows the
// outgoing byte stream frame by frame (9-byte header, 24-bit length; no
// buffering, no allocation) and can insert a GOAWAY frame (last-stream-id
// 2^31-1, NO_ERROR, debug data "grpcmgmt: <reason>") exactly at a frame
// boundary. The rules it keeps:
//
//   - insert only at a frame boundary, after the server's SETTINGS preface
//     and never inside a HEADERS+CONTINUATION field block; a write that ends
//     mid-frame is split, never interleaved;
//   - at most one inserted GOAWAY per connection, and none once grpc-go has
//     written a GOAWAY of its own (max age, GracefulStop): the
//     last-stream-id never rises (RFC 9113 §6.8);
//   - an idle connection gets the frame written directly (no grpc-go write
//     is coming), serialised with grpc-go's writes by the wrapper's mutex;
//     the caller never blocks on the network;
//   - the server transport does not know about the GOAWAY, so streams the
//     client opened before it saw the frame are served; after Config.Grace
//     the connection is closed if the client has not closed it, as
//     MaxConnectionAgeGrace does, so a client that ignores GOAWAY cannot pin
//     it.
//
// The wrapper also follows the frames the client sends, to count the calls
// each connection started (a HEADERS frame that opens a new client stream).
// That costs nothing per call beyond a few comparisons per frame, where a
// stats.Handler would need a lookup from the call to its connection.
//
// A connection leaves the Tracker however it ends, not only through the
// wrapper's Close: when a read or write fails (the client's EOF or reset),
// and when its socket was closed underneath the wrapper. grpc-go does the
// latter when setting up its transport fails after the handshake (it closes
// the raw connection, never the one the handshake returned): a client that
// resets its connection right after the handshake, which a small
// grpc.WriteBufferSize turns into a failed first write, would otherwise
// leave an entry behind each time (TestTrackerForgetsConnectionsResetAfterHandshake).
//
// The wrapper keeps what grpc-go does with a bare connection: channelz
// still reads socket options through syscall.Conn, and on Linux a plain
// TCP or Unix socket still offers grpc-go's ReadOnReady (read only once the
// socket is readable, into a pooled buffer), so an idle connection pins no
// 32 KiB read buffer; a wrapper without it would cost that much per
// connection (TestIdleConnectionMemory measures both).
//
// # Installing
//
// With the grpcmgmt Manager nothing is needed: the feature is on by default
// (grpcmgmt.WithGoAway configures it, Manager.GoAwayTracker returns the
// Tracker) and wraps the credentials given to grpcmgmt.WithCredentials.
// Give your TLS credentials there rather than to grpc.Creds: grpc-go keeps
// the last grpc.Creds, so one placed after the Manager's options would
// replace the wrapped credentials and no connection could be sent a
// GOAWAY. That mistake is detected: Tracker.Audit, run by the Manager on
// every load sample, finds calls that arrived on connections the Tracker
// never saw, logs an error once and counts them. Without the Manager, wrap
// the credentials yourself (and call Audit with your own call count if you
// want the same check):
//
//	t, err := goaway.NewTracker(goaway.Config{})
//	srv := grpc.NewServer(grpc.Creds(t.WrapCredentials(creds)))
//
// # What clients see
//
// A standard client (grpc-go, grpc-js, C-core) that reads a GOAWAY with
// NO_ERROR and last-stream-id 2^31-1 finishes its calls on the connection,
// opens a new one for new calls (re-resolving its target, subject to its
// resolver's rate limit) and fails nothing. Because the last-stream-id never
// rises, grpc-go clients before v1.68, which close the whole transport on a
// GOAWAY that raises it, are safe too.
//
// # Long-lived streams
//
// A stream outlives its connection's grace unless its handler ends it:
// Draining(ctx) is closed when the connection carrying the call is sent a
// GOAWAY, ours or grpc-go's (max age), and DrainInfo says why and when the
// connection will be closed. A handler that selects on it ends its stream
// with OK and the client resumes on a new connection; standard clients then
// close the drained connection themselves, long before the grace.
// Tracker.StreamServerInterceptor counts how drained streams ended
// (drain.go; docs/streams.md).
//
// # Where decisions are made
//
//   - which connections exist, and the per-connection rules above:
//     Tracker (tracker.go) and its connection wrapper (conn.go);
//   - when a connection has carried enough calls: conn.scanRead, against
//     Config.MaxCallsPerConn;
//   - when load moves connections, and how many: Policy.onSample
//     (policy.go), on the shared load sampler's goroutine (or on the
//     snapshots given to Policy.Decide);
//   - lame-duck shutdown calls Tracker.GoAwayAll from the grpcmgmt Manager;
//   - whether calls bypass the Tracker (credentials replaced): Tracker.Audit
//     (audit.go);
//   - when a handler learns its connection drains: conn.resolveLocked (our
//     GOAWAY written) and conn.sawHeader (grpc-go's), closing the channel
//     Draining returns (drain.go);
//   - when the replica set grew, and how many connections move to the new
//     replicas: RebalanceDecider.Observe and RebalanceDecider.Round
//     (rebalance_decider.go), on lookups reported by a Watcher (watcher.go;
//     DNSWatcher looks up the headless Service's name); the Rebalancer
//     (rebalance.go) adds the timer and the lock.
//
// Both policies act through the ConnSet interface (connset.go), which the
// Tracker implements: a fleet simulation (bench/sim) drives the same
// deciders (RebalanceDecider, NewPolicyOn) over simulated replicas on a
// simulated clock, so that what it measures at 1 000 replicas is this
// code's behaviour rather than a model of it.
//
// # Fair-share rebalancing
//
// After a scale-out from N to M replicas the old replicas hold more than
// their share until connections end. A Rebalancer watches the replica set
// and, once a grown set has been stable for a short time and is larger
// than any set seen recently, keeps N/M of the connections this server
// held before the growth and sends GOAWAY to the rest, oldest first, in
// jittered rounds paced by a per-replica reconnection budget
// (MaxArrivalRate); connections that a random balancer sends straight back
// are sent again while the server is above its share, within a budget.
// Errors, empty answers and a smaller set change nothing. The rules were
// checked, and several of them found, with a fleet simulation of up to
// 1 000 replicas that drives this package's deciders (bench/sim). A server sees only its own connections, not the fleet's:
// the policy assumes an even spread before the scale-out and the same
// policy on every replica, works in whole connections (few large clients
// cannot be split fairly), and for clients that resolve DNS themselves its
// GOAWAYs only make them re-resolve, which grpc-go does at most once per
// 30 s. docs/rebalancing.md has the details and the measured figures.
//
// # Metrics and logs
//
// Meter "github.com/grpcmgmt/grpcmgmt/goaway": grpcmgmt.goaway.sent
// {reason}, grpcmgmt.goaway.suppressed {reason}, grpcmgmt.goaway.hard_closes,
// grpcmgmt.goaway.connections (live), grpcmgmt.goaway.untracked_calls,
// grpcmgmt.goaway.drained_streams {reason, ended},
// grpcmgmt.goaway.connection_age
// {drained} (seconds, at close), grpcmgmt.goaway.policy_transitions {state};
// for rebalancing grpcmgmt.goaway.rebalance.decisions {decision,
// replicas.before, replicas.after}, grpcmgmt.goaway.replica_set.lookups
// {outcome} and grpcmgmt.goaway.replica_set.size. Each GOAWAY and hard
// close is logged at debug level, each policy state change and rebalancing
// decision at info level.
package goaway
