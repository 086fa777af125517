// Package load measures how busy this server is, once, for every lever.
//
// GOAWAY policies, load shedding, health status and ORCA reports all decide
// on the same numbers: CPU utilization of this process's allowance, memory
// utilization, calls in flight, calls per second (QPS), errors per second
// (EPS), and how long calls queue (Latency, NoLoadLatency, Queueing). A Sampler measures them on one goroutine every
// Config.Period (250 ms by default) and publishes an immutable Snapshot
// that the call path reads with one atomic load. Each signal is published
// raw (the last period) and smoothed (an exponentially weighted moving
// average with Config.TimeConstant, 1 s by default), so a lever can react
// to a trend without flapping on one slow request or one GC cycle.
//
// The package is public (not internal) for two reasons: users plug their own
// signals in through Source (queue depth, pool usage), and tests inject a
// reading (a CPU at 95 %, which cannot be made real here) through the same
// interface the production code uses: the default CPU and memory readings
// are Sources too.
//
// # Where each number comes from (one hop each)
//
//   - CPU (cpu.go, cgroup.go). Under a cgroup v2 CPU limit, the CPU time of
//     the cgroup holding the tightest cpu.max on the way from the process's
//     cgroup to the root (cpu.stat usage_usec) over the time that quota
//     allows, capped by the CPUs the process may run on. That cgroup is what
//     the kernel throttles, so 1.0 means "about to be throttled". cpu.max is
//     re-read every sample, so an in-place resize is followed. Without a
//     limit (or where cgroup v2 files are absent: cgroup v1, other systems),
//     the process's own CPU time over min(runtime.NumCPU(),
//     runtime.GOMAXPROCS(0)): NumCPU is the affinity mask, and Go 1.25+ sets
//     GOMAXPROCS from the cgroup limit (v1 and v2) and keeps it current, so
//     the denominator still follows a limit this package cannot read. The
//     process's CPU time comes from getrusage on Unix (microsecond
//     resolution, no allocation) and from gopsutil elsewhere (gopsutil's
//     /proc reading has 10 ms clock-tick resolution: 2 % of a 2-CPU
//     allowance per 250 ms sample).
//   - Memory (memory.go). Under a cgroup v2 memory limit, the working set
//     (memory.current less inactive_file, as the kubelet computes it) over
//     the tightest memory.max. Else the host's memory in use,
//     1 - available/total: from /proc/meminfo on Linux, from gopsutil
//     elsewhere (so Linux binaries do not link gopsutil).
//   - InFlight, QPS, EPS, UnaryInFlightMean, UnaryQPSRaw, and Shed and
//     ShedRatio, the calls a load shedder refused (Calls.Refuse, on the
//     refusal path only) (calls.go).
//     Counted on the call path by Calls with atomics on a cache line of
//     their own: no lock, no allocation. The unary calls in flight and the
//     sum of their start times share one word, so the exact time integral
//     of the calls in flight (which the ORCA reports divide by the limit)
//     costs no counter of its own. The grpcmgmt Manager installs the
//     interceptor that calls Begin and End, and decides which status codes
//     count as errors.
//   - Latency, NoLoadLatency, Queueing, QueueingHigh, QueueingPastMinDelay (calls.go,
//     queueing.go). Each unary call is timed once, by Calls.BeginUnary and
//     Call.End (two monotonic clock reads, one more atomic add); see
//     "Overload that is not CPU" below.
//   - Smoothing and publication (sampler.go, snapshot.go). One goroutine,
//     stopped by Close; OnSample callbacks run on it after each sample.
//   - Metrics (metrics.go). An OpenTelemetry observable gauge per signal,
//     grpcmgmt.load.<field>, reading the latest Snapshot at collection time.
//
// # Overload that is not CPU
//
// A replica can be overloaded with its CPU idle: calls wait on a lock, a
// small worker pool, a slow disk or a slow dependency, or the process gets
// too little of a noisy host. Such a replica looks healthy to every CPU
// threshold, keeps its share of traffic, and its callers' tail latency
// grows without bound (measured in issue 12: a replica with one worker at
// 20 ms per call, CPU 0.34, p99 4.6× its peers', and no lever fired).
// "Load is not what you should balance" (Prequal, NSDI 2024): latency and
// calls in flight are. So the sampler publishes a second overload signal
// that needs no knowledge of the service, and every lever counts the
// replica as overloaded when its CPU is over the lever's threshold OR
// Snapshot.QueueingHigh is on.
//
// The signal is latency inflation against the replica's own no-load
// latency: Queueing = 1 − NoLoadLatency/Latency, the share of a call's
// time spent waiting. Latency is the mean of the unary calls that ended,
// smoothed like every other signal. NoLoadLatency is the mean latency of
// calls that began while no other unary call was in flight ("lone" calls:
// nothing can have queued them, whatever the service's concurrency), in
// batches of 32, smoothed; a replica that is never idle (an I/O-bound
// service with hundreds of calls in flight) has none, and for it the
// estimate is the lowest batch mean over Config.NoLoadWindow (5 minutes).
// QueueingHigh turns on at Config.QueueingEnter (0.75: calls take four
// times their no-load latency) provided the queueing delay is at least
// Config.QueueingMinDelay (1 ms), and off below Config.QueueingExit (0.5).
// The levers that read Queueing itself go by the same floor
// (Snapshot.QueueingPastMinDelay).
//
// What was weighed (the literature of adaptive concurrency):
//
//   - Envoy's adaptive concurrency filter and Netflix's Gradient2 compare a
//     latency to a baseline too. Envoy measures its minRTT by pinning
//     concurrency low at intervals, which only a limiter can do, not a
//     passive signal; Gradient2's baseline is a long-term average of the
//     latency itself, which drifts up with a sustained queue (and the
//     signal with it). Lone calls give a no-load measurement for free
//     wherever the replica is ever idle, and never include a queue.
//   - TCP Vegas and Netflix's VegasLimit use the minimum RTT. The minimum
//     single call is the fastest method, not the mix: with two methods at
//     1 ms and 50 ms it would read every 50 ms call as queued. Means of
//     batches keep the mix; the windowed minimum is only the fallback for
//     replicas that are never idle.
//   - CoDel's sojourn time and Breakwater's queueing delay measure the wait
//     in a queue the system owns. The library owns none (the queue is the
//     service's worker pool, lock or connection pool), so the wait is
//     inferred as latency minus no-load latency; CoDel's lesson is kept in
//     QueueingMinDelay (a standing delay under a floor is not worth acting
//     on) and in the hysteresis.
//   - failsafe-go's adaptive limiter compares a recent latency quantile to
//     a moving average of past windows and correlates in-flight with
//     throughput; it takes a lock and fills a t-digest per call. A lever
//     that only needs "is this replica queueing" gets the same evidence from
//     two clock reads and atomic adds.
//   - Requests in flight against a measured knee (Prequal's RIF, Uber's
//     Cinnamon) need the knee, which only a limiter probing the service can
//     find: that is loadshed's adaptive limit, which decides on the same
//     latency-against-no-load comparison at a finer grain.
//
// Why the share 1 − NoLoadLatency/Latency rather than the ratio: it is a
// utilization-like number in 0..1 that ORCA can publish as
// application_utilization (for a single queue with random arrivals, M/M/1,
// it is exactly the server's utilization), and weighted_round_robin
// clients then move traffic off a replica that queues though its CPU is
// idle.
//
// Limits: a service whose mix of methods changes (more slow calls) reads as
// queueing until lone calls measure the new mix; an overload longer than
// NoLoadWindow with no idle moment becomes the new normal; a call stuck
// forever is seen only when it ends.
//
// cgroup v1 files are not read: under a v1 CPU quota the GOMAXPROCS
// denominator follows the limit (Go reads v1 too), but memory is then the
// host's, not the v1 memory.limit_in_bytes; set Config.Memory there.
//
// A failing Source keeps its last good value, is counted in
// grpcmgmt.load.source_errors and logged when it starts failing (WARN) and
// when it recovers (INFO).
package load
