// Package orca publishes ORCA load reports (Open Request Cost Aggregation)
// built from the server's measured load, so that weighted_round_robin
// clients (gRFC A58) send each replica traffic in proportion to its
// capacity, with no code in the service's handlers.
//
// A round_robin client gives every replica the same number of calls, so a
// replica on a slower node, or with half the cores, is overloaded while its
// peers idle. A weighted_round_robin client weighs each replica by
//
//	weight = qps / (utilization + eps/qps × errorUtilizationPenalty)
//
// from the reports the replica sends, where utilization is
// application_utilization, else cpu_utilization (grpc-go), and a report with
// qps 0 or utilization 0 is ignored. Everything the client needs is
// therefore a truthful utilization and a qps from each replica.
//
// # What is reported, and where it is decided
//
// Reporter (reporter.go) builds one report per sample of the shared
// load.Sampler (its OnSample callback) and publishes it as an immutable
// snapshot; both report paths read that snapshot (Reporter implements
// grpc-go's orca.ServerMetricsProvider), so no update is lost and the call
// path takes no lock. (grpc-go's orca.ServerMetricsRecorder setters copy and
// store without compare-and-swap; two concurrent setters can lose an
// update.)
//
//   - cpu_utilization, mem_utilization: the sampler's smoothed CPU and memory
//     utilization (memory clamped to 0..1).
//   - application_utilization: the mean number of unary calls in flight
//     during the sample period ÷ the concurrency limit (Config.Limit, else
//     Config.Capacity), smoothed with Config.TimeConstant. With neither, it
//     is the CPU utilization or the share of the calls' latency spent
//     queueing (load.Snapshot.Queueing; only at a queueing delay of
//     load.Config.QueueingMinDelay or more), whichever is higher. See
//     below. The grpcmgmt Manager, with shedding on, sets Config.Limit to
//     the Shedder's current limit.
//   - qps: unary calls started per second (load.Snapshot.UnaryQPSRaw),
//     counted by the same call counter over the same periods and smoothed
//     like the calls in flight (not the sampler's QPS, which also counts
//     streams and is smoothed with the sampler's own time constant): the
//     client divides one by the other, and two signals measured alike keep
//     their noise out of the quotient.
//   - eps: the sampler's errors per second.
//   - utilization (named): the sampler's custom Sources, clamped to 0..1.
//
// # The utilization signal
//
// The weight a client computes is qps ÷ utilization. With utilization =
// mean calls in flight ÷ limit, Little's law (calls in flight = qps ×
// latency) makes the weight limit ÷ latency: the throughput the replica
// sustains when its limit is full, that is, its capacity. A replica with
// twice the workers (or an adaptive limit twice as high) gets twice the
// weight; a replica whose calls slow down (a noisy neighbour, a hot
// partition, calls queueing for its workers) gets less, at once. At light
// load every call takes its unloaded time, so the weights stand in the
// ratio of the limits: the limit must be true. The mean is a time integral over the whole
// period, including calls still in flight (load.Snapshot.UnaryInFlightMean:
// the shared sampler's call counter keeps the unary calls in flight and the
// sum of their start times in the one word that counts them, so ORCA adds
// no counter of its own to the call path), not a count taken at the
// sampling instant: a few calls of a few milliseconds would otherwise read
// as 0 or 1 at random, and calls that hang would not count until they end.
//
// Streams are not counted: a long-lived stream (a watch, a subscription, the
// ORCA stream itself) is in flight for hours without being work. A service
// built on streams should set no Limit or Capacity and let the CPU speak.
//
// Which limit to configure:
//
//   - An adaptive load shedder's current limit (Config.Limit): utilization
//     then says how full the window the shedder enforces is, and the limit
//     follows what the replica sustains.
//   - A fixed Capacity when calls queue for a bounded resource (worker pool,
//     connection pool): the pool size.
//   - Neither, for services with one process per replica (the usual
//     Kubernetes deployment): application_utilization is then the process's
//     CPU utilization of its allowance, which is what grpc-go's
//     weighted_round_robin falls back to anyway, or the queueing share
//     1 − no-load latency ÷ latency when that is higher.
//     The CPU alone misleads on a replica that is slow but not CPU-bound
//     (calls waiting on a lock, a small pool, a slow disk): its CPU reads
//     low, so its weight would rise as it slows. The queueing share rises
//     instead (for a single queue with random arrivals it is the server's
//     utilization), and weighted_round_robin, which converges where every
//     replica reports the same utilization, moves traffic off it until its
//     queueing is no longer high. Only while high: the share is noisier
//     than the CPU, and a fleet weighted by it all the time (tried first)
//     seemed to spread the hot scenario's shares further from the
//     capacities (single runs on a shared machine). It is sent explicitly
//     because @grpc/grpc-js 1.14 reads only application_utilization and
//     ignores cpu_utilization: without it a Node client would weigh nothing.
//
// CPU is per process: replicas that share a process (tests, the demo) see
// the same CPU, so they must be told their Capacity to be told apart.
//
// # Per-call reports
//
// A per-call report is the endpoint-load-metrics-bin trailer (TrailerKey).
// Every report of a sample period carries the same server-wide values, so
// the Reporter encodes the trailer once per period (publish, in
// reporter.go; the encoding in wire.go) and adds it with grpc.SetTrailer
// when the handler returns (AddCallReport, AddStreamReport in
// interceptors.go; the grpcmgmt Manager's interceptor calls them): on
// each client connection, its first unary call and then its first unary
// call to end after each
// Config.PerCallInterval (default 1s), and every stream, carry it, whatever
// the handler does (conns.go decides which call). Per connection, because a
// weighted_round_robin client weighs each of its connections by the last
// report it got on it and recomputes its weights once a second: a report
// per connection per second keeps every client's weights as fresh as it
// uses them, whatever its share of the server's calls. A client that sends
// few calls still gets one (a weighted_round_robin client weighs a replica
// only after a valid report from it, and @grpc/grpc-js gives one without
// a weight almost no calls, below), and one that sends thousands a second
// is not sent thousands of identical reports (each costs the server
// grpc-go's trailer bookkeeping and its allocations, and grpc-js about 10 ms
// of CPU to parse). The other calls pay a context lookup and two loads;
// given the open connections (WithConnections: the grpcmgmt Manager passes
// its goaway.Tracker), the calls of an interval in which every open
// connection already had its report skip even that (skip.go).
// (grpc-go's own orca.CallMetricsServerOption sends a report only for calls whose
// handler asked for the recorder, and costs each reporting call a recorder,
// a copy of the report and a marshal: 9 allocations a call, measured.)
//
// Handlers that record request costs, named metrics or their own
// utilization per call set Config.HandlerMetrics: the Reporter then installs
// grpc-go's CallMetricsServerOption and asks for the recorder on the
// handler's behalf instead, and grpc-go merges the handler's values over
// the Reporter's (the handler's win). Without it,
// orca.CallMetricsRecorderFromContext returns nil in handlers.
//
// # Out-of-band reports
//
// Register serves xds.service.orca.v3.OpenRcaService (oob.go): a client
// opens one stream per connection and receives the current report every
// max(requested interval, Config.MinReportingInterval). The default minimum
// is grpc-go's, 30 s, and then the stream is served by grpc-go's own
// orca.Service. grpc-go raises any shorter minimum to 30 s (the override is
// reachable only from its own tests), so for a shorter minimum the package
// runs the same send-wait loop itself. Close ends every open stream.
//
// # Client configuration
//
// weighted_round_robin works with the plain DNS resolver. grpc-go needs the
// balancer registered by a blank import:
//
//	import _ "google.golang.org/grpc/balancer/weightedroundrobin"
//
// The service configs to give clients are in package clientconfig:
// clientconfig.WeightedRoundRobin learns weights from the trailers of the
// client's own calls (per-call reports, the A58 default), and
// clientconfig.WeightedRoundRobinOOB from one out-of-band stream per
// connection, a report every oobReportingPeriod (grpc-js spells it
// oob_load_reporting_period), raised to the server's MinReportingInterval.
// grpc-go reads the policy's fields in camelCase, @grpc/grpc-js 1.14 in
// snake_case (and silently ignores the other spelling), so both configs
// carry both.
//
// Which to choose: per-call reports cost a few dozen bytes per call and
// reflect load as often as calls end; out-of-band reports cost one message
// per connection per period and also reach clients that send few calls.
// For @grpc/grpc-js clients prefer out-of-band: grpc-js 1.14.7 parses each
// per-call report by loading orca.proto again (its cache variable is never
// set), about 10 ms of client CPU per call here.
//
// @grpc/grpc-js 1.14.7 also gives an endpoint without a weight the weight
// 1 (instead of the mean) while fewer than two endpoints have one: with two
// replicas, the one whose weight is still in its blackout gets almost no
// calls until it leaves it, and with per-call reports never leaves it if it
// got no valid report first: hence the first call after a sample carrying
// the report once a second (before it, TestWRRNodePerCall's small replica
// got no call after its first seven in one of six runs). Replicas that
// serve traffic report valid load within a second of their first sample.
//
// Give the server a MinReportingInterval no longer than the clients'
// oobReportingPeriod, or the clients get reports at the server's pace
// (clientconfig.WeightedRoundRobinOOB asks for the default, 30 s).
// blackoutPeriod (default 10 s) is how long a new connection's weight is
// ignored; weightExpirationPeriod (default 3 min) how long a weight lasts
// without reports.
//
// A client takes the first policy in loadBalancingConfig that it supports.
// The trailing round_robin serves clients without weighted_round_robin
// (C-core 1.51, for one) with equal shares instead of failing; it also
// hides a forgotten blank import in a Go client, which then splits evenly
// (without the fallback grpc.NewClient fails: "no supported policies found
// in config"). The tests in this package run both configs, periods
// shortened, in grpc-go and @grpc/grpc-js clients.
//
// # Observability
//
// Meter github.com/grpcmgmt/grpcmgmt/orca: grpcmgmt.orca.call_reports
// (per-call reports attached), grpcmgmt.orca.oob_reports (out-of-band
// reports sent), grpcmgmt.orca.oob_streams (out-of-band streams open) and
// grpcmgmt.orca.application_utilization (the value being reported). Logs:
// info when the Reporter starts, closes, or its application_utilization
// source changes (limit, capacity, cpu); debug per out-of-band stream.
package orca
