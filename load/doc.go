// Package load measures how busy this server is, once, for every lever.
//
// GOAWAY policies, load shedding, health status and ORCA reports all decide
// on the same numbers: CPU utilization of this process's allowance, memory
// utilization, calls in flight, calls per second (QPS) and errors per
// second (EPS). A Sampler measures them on one goroutine every
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
//     the tightest memory.max. Else the host's memory in use from gopsutil,
//     1 - available/total.
//   - InFlight, QPS, EPS (calls.go). Counted on the call path by Calls with
//     three atomics on a cache line of their own: no lock, no allocation.
//     The grpcmgmt Manager installs the interceptors that call Begin and
//     End, and decides which status codes count as errors.
//   - Smoothing and publication (sampler.go, snapshot.go). One goroutine,
//     stopped by Close; OnSample callbacks run on it after each sample.
//   - Metrics (metrics.go). An OpenTelemetry observable gauge per signal,
//     grpcmgmt.load.<field>, reading the latest Snapshot at collection time.
//
// cgroup v1 files are not read: under a v1 CPU quota the GOMAXPROCS
// denominator follows the limit (Go reads v1 too), but memory is then the
// host's, not the v1 memory.limit_in_bytes; set Config.Memory there.
//
// A failing Source keeps its last good value, is counted in
// grpcmgmt.load.source_errors and logged when it starts failing (WARN) and
// when it recovers (INFO).
package load
