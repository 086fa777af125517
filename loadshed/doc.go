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
//     interceptors (grpc.go), or by the tap with Pushback Off. Limits
//     compose: a call is shed by the first that refuses it, CPU first, then
//     the lower of the static and the adaptive concurrency limits.
//   - A call's priority: Shedder.priorityOf (grpc.go), from the header
//     DefaultPriorityHeader, else Config.Methods, else
//     Config.DefaultPriority. How priorities scale limits: Priority.Share
//     (priority.go).
//   - The adaptive limit: adaptive.update (adaptive.go), run in the done of
//     the call that closes a window; no goroutine.
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
// so never more than the limit of handlers run at once, and released by a
// deferred call when the handler returns, panics included. Streams are admitted when they start
// and hold their slot until their handler returns; a started stream is
// never shed.
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
// Adaptive: a gradient controller on the no-load latency, after Envoy's
// adaptive concurrency filter. Every Window the limit moves towards
// limit × baseline×(1+Tolerance)/mean latency, the mean of the unary calls
// that ended in the window (a random one in eight once a window has 64 ×
// MinSamples calls, so that busy servers pay the clock reads on few calls). Past a service's knee its
// latency rises in proportion to concurrency, so the limit settles at about
// knee × (1+Tolerance): measured in TestAdaptiveLimitFindsKnee within a few
// percent of the knee. Chosen over Netflix's Gradient2, whose long-term
// average baseline can drift up under sustained overload (and its limit
// with it), over Vegas, which keeps a queue of 3–6 × log10(limit) calls
// (Netflix's VegasLimit) above the knee, and over AIMD, which needs a
// latency threshold or drop signal set by hand. The baseline is measured
// at start and every ProbeInterval from calls admitted at low concurrency;
// under sustained load the limit is pinned to MinLimit until ProbeSamples
// calls have finished, as Envoy does: a short loss (shed calls go elsewhere)
// against a baseline that would otherwise drift with the queue. Caveat: a
// slow dependency raises latency too, and the limit falls with it until the
// next baseline; use MinLimit as a floor.
//
// # Priorities
//
// A client sends DefaultPriorityHeader ("grpcmgmt-criticality") with
// critical_plus, critical (the default), sheddable_plus or sheddable — the
// criticalities of Google's SRE book, ch. 21 "Handling Overload". A server
// that does not trust its clients' ranking sets PriorityHeader to NoHeader
// and ranks methods in Config.Methods. Each priority sees every limit
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
// priority} (reason static, cpu or adaptive), grpcmgmt.loadshed.limit{limit}
// and grpcmgmt.loadshed.in_flight. Logs: info when a limit starts or stops
// shedding and when the CPU crosses its threshold; debug for shed calls, at
// most one line a second with the count since the last.
package loadshed
