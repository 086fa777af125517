// Package loadshed rejects the calls a replica cannot serve in time, before
// doing their work, with a status and a hint that make a standard client
// retry them on another backend.
//
// A replica that accepts more work than it can finish serves nobody well:
// every call waits in the same queue, latency grows for all of them, and
// past their deadlines the work done is thrown away. Shedding the excess
// keeps the admitted calls fast; with the client retry policy below, the
// shed calls succeed elsewhere a few milliseconds later instead of failing.
//
// # Use
//
// Alone, with grpc-go's own hooks:
//
//	s, err := loadshed.New(loadshed.Config{
//		Adaptive: &loadshed.AdaptiveConfig{}, // no number to tune
//		Load:     sampler,                    // a *load.Sampler for the CPU limit, or nil
//	})
//	srv := grpc.NewServer(
//		grpc.InTapHandle(s.TapHandle()),
//		grpc.ChainUnaryInterceptor(s.UnaryServerInterceptor(), yourInterceptors...),
//		grpc.ChainStreamInterceptor(s.StreamServerInterceptor()),
//	)
//	defer s.Close()
//
// or through the Manager: grpcmgmt.New(grpcmgmt.WithCredentials(creds),
// grpcmgmt.WithLoadShed(cfg)), which
// fills in its shared load sampler, logger and meter provider.
//
// Shedding is off by default in the Manager: it turns latency into errors,
// and only clients with a retry policy turn those back into successes. The
// server cannot see whether its clients have one, so turning shedding on is
// an operator's decision, taken together with publishing
// clientconfig.RoundRobin (in DNS TXT, or each client's default service
// config). Running
// unprotected is bad too: turn it on wherever you control the clients.
//
// # The client side
//
// The service config to give clients is clientconfig.RoundRobin (or one of
// the weighted configs of package clientconfig): round_robin, health
// checking, and a retry policy for UNAVAILABLE (add "RESOURCE_EXHAUSTED" if
// Config.Code is that) with up to 5 attempts and retryThrottling, so that
// retries do not multiply a fleet-wide overload. In Go:
//
//	grpc.NewClient(target, grpc.WithDefaultServiceConfig(clientconfig.RoundRobin))
//
// grpc-js reads the same JSON (the "grpc.service_config" channel option) and
// honours the pushback; it retries at once when the trailer does not parse.
// Both are tested here against two replicas, one at its limit: zero failed
// calls (TestRetriedOnOtherReplica, TestNodeClientRetriesOnOtherReplica).
// Each retry attempt goes through the picker again, so with round_robin it
// usually lands on another backend. Not always: the picker advances once
// per attempt over all the channel's calls, so with N backends of which one
// sheds, a retry lands on it again with probability about 1/N when calls are
// concurrent. Measured here, two replicas with one at its limit, 4
// concurrent callers, 2,000 calls: about 2 % of calls spent all 5 attempts
// on the shedding replica and failed (with sequential calls, none: attempts
// alternate). Health checking (the health lever) or weighted_round_robin
// (the ORCA lever) move first attempts away from a loaded replica and
// close that gap.
//
// # Where decisions are made
//
//   - Whether a call is shed: Shedder.admit (shedder.go), called by the
//     interceptors (grpc.go; Shedder.AdmitUnary and AdmitStream, which the
//     grpcmgmt Manager's single interceptor calls), or by the tap with
//     Pushback Off. Limits
//     compose: a call is shed by the first that refuses it, CPU first, then
//     queueing, then the lower of the static and the adaptive concurrency
//     limits.
//   - A call's priority: Shedder.priorityOf (grpc.go), from the header
//     Config.PriorityHeader when one is set (none by default), else
//     Config.Methods, else Config.DefaultPriority. The header is read in
//     the tap (TapHandle, which the grpcmgmt Manager installs only when a
//     header is set), where
//     the headers are a plain map, and passed to the interceptors in the
//     context only when present: a call without it costs them one atomic
//     load (Shedder.callPriority). A Shedder whose TapHandle is never
//     called searches the incoming metadata in its interceptors (about
//     100 ns a call when the header is absent, measured). How priorities
//     scale limits: Priority.Share (priority.go).
//   - The adaptive limit: adaptive.update (adaptive.go), run in the done of
//     the call that closes a window; no goroutine. Its gate: adaptive.mayQueue.
//   - What a shed call receives: the status built in New and the trailer
//     set in the interceptors (grpc.go).
//
// # Where calls are rejected, and why the tap usually admits
//
// A shed call must get a Trailers-Only response (grpc-go retries only
// those) carrying grpc-retry-pushback-ms (gRFC A6: retry after exactly that
// many ms). grpc-go answers a tap handle's rejection itself with a
// Trailers-Only response holding only grpc-status and grpc-message
// (internal/transport writeEarlyAbort): the pushback cannot be sent from
// there. So by default the interceptor is where calls are rejected — the
// earliest point where a trailer can be attached while no header has been
// sent — and the tap admits everything. The request has been read and
// decoded by then: microseconds for the usual message, against the
// milliseconds of work shedding saves. With Pushback Off the tap rejects
// over-limit calls before their request is read, and clients fall back to
// their retry backoff.
//
// The tap never takes a slot. A call it admits may never reach an
// interceptor (unknown method, deadline already past, client reset), and
// nothing would release a slot taken there. Slots are taken by the
// interceptors with one atomic add that is kept only if the count stays
// within the limit (a compare-and-swap settles the calls that find it over),
// and released with one add to the same word, which also counts the calls
// done (the calls admitted are derived: done + in flight, so no second
// counter is written on every call),
// so never more than the limit of handlers run at once, and released by a
// deferred call when the handler returns, panics included. Streams are admitted when they start
// and hold their slot until their handler returns; a started stream is
// never shed.
//
// With Config.SharedCount (the grpcmgmt Manager sets it) a unary call's
// slot is its count in the load sampler's word (load.Calls.Enter): the one
// add that admits it also counts it in flight, times it and feeds the
// sampler's integral of the calls in flight that ORCA reports, so the
// Manager's call path writes one word per call where it wrote two
// (BenchmarkSharedCount: 10–14 ns a call less on one CPU, 14–29 ns on two).
// Streams then hold their slots in the Shedder's own word; each admission
// writes its own word and then reads the other, so of two calls admitted at
// once at least one sees the other, and the limit stays exact.
//
// # The limits
//
// Static: Config.MaxInFlight, for a known capacity.
//
// CPU: above Config.CPUThreshold of smoothed CPU (the shared sampler's, of
// this process's allowance), calls are shed with a probability rising
// linearly to 100 % at full use. Chosen over the BBR rule of
// go-kratos/aegis ratelimit/bbr (shed when CPU > threshold and in-flight >
// max pass rate × min latency) because the in-flight estimate is the
// adaptive limit's job here, and doing it twice would need bbr's per-call
// rolling windows (measured: 3–4× our admit cost and one allocation per
// call, BenchmarkAdmit). The ramp is a proportional controller: at 3×
// overload it settles where (1−p)×3 = CPU, about 97 % CPU with the default
// threshold. It needs the sampler: without one the CPU limit is off.
//
// Queueing: above Config.QueueingThreshold of the shared sampler's queueing
// share (load.Snapshot.Queueing: 1 − no-load latency ÷ latency, smoothed),
// calls are shed with a probability rising linearly to 100 % when all of a
// call's time is waiting, provided the queueing delay (latency − no-load
// latency) is at least the sampler's load.Config.QueueingMinDelay (1 ms),
// the floor QueueingHigh uses too: a microsecond-scale service whose calls
// stall for a few hundred microseconds in a GC pause has no queue worth
// shedding for. The CPU ramp's companion for a replica that is
// slow on a lock, a small pool or a slow dependency with its CPU idle; it
// needs the sampler, and the adaptive limit, when on, keeps queueing well
// under it.
//
// Adaptive: finds the knee of the service, the most calls it serves at
// once without one waiting for another, from the latency of its calls
// against their no-load latency, and admits a call beyond the knee only
// when it is predicted to wait less than the time until the next call
// would arrive (adaptive.go has the whole rule). Every Window the knee
// estimate K moves
//
//   - down, half-way to X × W0 (completions per second × no-load latency:
//     by Little's law the concurrency that serves what was served without
//     a queue), when calls waited longer than predicted by more than
//     Tolerance of W0 (and the noise of the window's mean);
//   - up, by max(1, Tolerance × K), when calls admitted beyond K waited less
//     than half of their predicted wait (a slot was free), faster while
//     they hardly waited at all; and, for K ≥ 1/Tolerance, by a factor
//     that doubles with each consecutive step while the limit is reached
//     without waits, so that a service taking hundreds of calls at once is
//     found in a few windows.
//
// A call that finds K calls in flight is admitted if the wait predicted
// for it (from the last start and W0/K between completions) is at most
// two mean times between offered calls: if it is longer, a later call
// will probably take the slot having waited less; if shorter, the slot
// would probably stand idle without it. So at 3× a one-worker replica
// keeps its worker busy while an admitted call waits at most two thirds of
// a service time, and at 10× a fifth; at about 1× (offered, smoothed over
// windows, within 10 % of completed) the gate admits up to max(4K, 8)
// waiting calls whatever their predicted wait, so that nothing the service
// can serve is shed. At most K × X/(λ−X) calls wait. While calls
// are shed and slots still stand idle (a service time so variable that the
// prediction misses), the horizon and the number of waiting calls grow, up
// to 4×; for a steady service (the no-load calls within a coefficient of
// variation of 1/2), whose prediction does not miss, up to 2×.
//
// The no-load latency W0 is the mean latency of calls that ran alone
// (nothing can have queued them), collected all the time, in batches of
// ProbeSamples times a spread factor (4 × the squared coefficient of
// variation, 1..16: a 50/50 mix of 1 ms and 50 ms calls needs 16 times as
// many); a replica overloaded from its start pins the limit to 1 until it
// has them. Until then, a replica started under load whose calls take no
// longer at twice the calls in flight of the first window at its limit
// grows the limit from InitialLimit as at the knee, and takes that latency
// as its no-load latency (a service that takes hundreds of calls at once,
// a gateway waiting on its backends, would otherwise shed all beyond
// InitialLimit for its first two seconds); one whose latency rises with
// the limit stops growing and is pinned. Under sustained load no call runs alone: after ProbeInterval,
// or at once when the limit halved and the wait did not fall (the service
// got slower, it is not queueing: without this a stale W0 would drive the
// limit to 1), the limit is pinned to a quarter of itself for a few calls;
// not after ProbeInterval when the limit was not reached in the last
// windows and the calls take their no-load latency (nothing says it
// changed, and the pin would shed calls for nothing). At light load the limit stays within twice the most calls seen in flight
// (at least 4), so a surge meets a limit near what was served. MinLimit is
// 1: a one-worker replica has a knee of one call.
//
// Why this and not the others, measured with the seeded simulations of
// sim_internal_test.go (the real Shedder on a simulated clock) and the
// adaptive scenario of make scenarios:
//
//   - Envoy's gradient (the previous rule here) settles at knee ×
//     (1+Tolerance) floored by MinLimit, and its probe measured a queued
//     latency as "no-load" when overloaded from the start; with the
//     queued slot it was "on the line" (p99 ratio 2.0–2.1 at 3×). Waiting
//     only as long as the next arrival would take is what brings it under.
//   - Netflix's Gradient2 baselines on a long-term average of the latency,
//     which drifts up under a sustained queue; Vegas keeps 3–6 × log10(limit)
//     calls queued by design.
//   - failsafe-go's adaptive limiter (measured beside this one in the same
//     scenarios) compares a latency quantile over windows of at least a
//     second and 50 calls to a moving baseline, and takes a lock and fills
//     a t-digest on every call.
//   - AIMD needs a latency threshold or a drop signal set by hand.
//
// # Priorities
//
// A call has one of four priorities — critical_plus, critical (the
// default), sheddable_plus or sheddable, the criticalities of Google's SRE
// book, ch. 21 "Handling Overload" — from Config.Methods (per method or
// service) or Config.DefaultPriority. A server that trusts its clients to
// rank their own calls also sets Config.PriorityHeader (to
// DefaultPriorityHeader, "grpcmgmt-criticality", say), and a client then
// sends the priority's name in that header. No header is read by default:
// a header is the client's own claim, and any client could claim
// critical_plus; standard clients send none; and reading it costs every
// call a tap handle. Each priority sees every limit
// scaled by Priority.Share (sheddable 80 %, sheddable_plus 90 %, critical
// 100 %, critical_plus 110 %), so the lowest are shed first and
// critical_plus calls may exceed a concurrency limit by 10 %.
// grpc.health.v1.Health and xds.service.orca.v3.OpenRcaService are never
// shed nor counted, nor are the methods in Config.Exempt.
//
// # Observability
//
// Metrics (meter "github.com/grpcmgmt/grpcmgmt/loadshed"), read from
// atomics at collection time so the call path pays nothing:
// grpcmgmt.loadshed.admitted{priority}, grpcmgmt.loadshed.shed{reason,
// priority} (reason static, cpu, queueing or adaptive),
// grpcmgmt.loadshed.limit{limit} and grpcmgmt.loadshed.in_flight. Logs: info
// when a limit starts or stops shedding, when the CPU or the queueing share
// crosses its threshold, and when the adaptive limit pins itself to
// measure the no-load latency; debug for shed calls (at most one line a
// second with the count since the last) and for every window of the
// adaptive limit (why it moved, with the latencies it decided on).
//
// With a sampler (Config.Load), every shed call is also reported to it
// (load.Calls.Refuse), and health reads the share refused as overload
// (health.Config.ShedEnter), except the calls the adaptive limit sheds
// while it measures its no-load latency (pinned by a probe, or before its
// first measurement): those are the measurement's cost, counted in
// grpcmgmt.loadshed.shed{reason="adaptive"} only. A probe sheds most calls
// for a quarter of a second, and the smoothed share stays over 1 % for
// longer than health's Hold after it; reported, they took a replica at 0.9×
// of its capacity, nothing queued, out of rotation after its probes, twice
// in 80 s.
package loadshed
