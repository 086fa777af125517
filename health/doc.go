// Package health publishes a server's grpc.health.v1 status so that it
// follows load and drains in lame-duck fashion, on top of grpc-go's own
// health service (google.golang.org/grpc/health.Server).
//
// The health status is how a server tells standard clients to stop sending
// it new calls without ending a connection: a grpc-go or C-core client with
// client-side health checking (gRFC A17) stops picking a backend whose
// status is NOT_SERVING, and a Kubernetes gRPC readiness probe (or
// grpc_health_probe) takes the pod out of its Service's endpoints and DNS.
//
// # What is published
//
// For every service the Reporter knows, the published status is
//
//	the application's own status (Reporter.SetStatus; SERVING if never set)
//	AND not overloaded (only for the services in Config.Services)
//	AND not draining (Reporter.BeginDrain).
//
// So the load logic never turns an application's NOT_SERVING into SERVING,
// and nothing turns a draining server SERVING again. Set statuses through
// Reporter.SetStatus, not on the health.Server: the Reporter recomputes the
// statuses it manages and would overwrite them. You may bring your own
// *health.Server (Config.Server); statuses already on it are taken as the
// application's.
//
// # Where each decision is made
//
//   - policy.go, policy.step: the load state machine: overloaded or not,
//     released at MaxNotServing, held SERVING by a cooldown.
//   - reporter.go, Reporter.wantLocked: the AND of application, load and
//     drain; Reporter.publishLocked publishes, counts and logs each change;
//     Reporter.BeginDrain is the lame duck.
//   - config.go: defaults and the allowed range of every field.
//   - The Manager (package grpcmgmt, feature_health.go) builds the Reporter
//     on its shared load sampler, registers it on every server
//     (Manager.Register) and calls BeginDrain first in Manager.Shutdown.
//
// # Load: hysteresis in level and in time
//
// The Reporter subscribes to the shared load sampler (load.Sampler.OnSample;
// no goroutine of its own) and reads the smoothed CPU utilization, the
// calls in flight and the queueing state of each sample:
//
//   - the server counts as overloaded when CPU ≥ CPUEnter (0.90) or
//     in-flight ≥ InFlightEnter (off unless set) or queueing is high
//     (load.Snapshot.QueueingHigh: calls take twice their no-load latency
//     by default; a replica slow on a lock, a small worker pool or a slow
//     dependency is overloaded with its CPU idle), sample after sample, for
//     Hold (2 s); shorter bursts are the load shedder's business;
//   - it is then NOT_SERVING for at least MinDwell (500 ms), and SERVING
//     again on the first sample after that with CPU < CPUExit (0.70),
//     in-flight < InFlightExit and queueing no longer high (the sampler's
//     own exit threshold).
//
// Enter and exit thresholds are apart, so a signal wandering around either
// one does not make the status follow it; Hold and MinDwell keep short
// swings from doing so either.
//
// # Fleet-wide overload must not become a fleet-wide outage
//
// A client with health checking sends nothing to a NOT_SERVING backend, and
// if every backend is NOT_SERVING its calls fail with UNAVAILABLE at once:
// a whole fleet turning NOT_SERVING for load is an outage of the whole
// service. A server cannot see its peers, and in a fleet-wide overload every
// replica sees the same load at the same time.
//
// The SRE book ("Site Reliability Engineering", O'Reilly 2016) names this
// trap. "Addressing Cascading Failures" (chapter 22) describes the cascade:
// a replica that drops out because of overload moves its load onto the
// others, which then fail in turn; load balancing that avoids backends
// which report trouble under load feeds it, because every backend it avoids
// is capacity the service no longer has. The chapter's remedies are to shed
// load and degrade gracefully, keeping each task serving what it can, and
// to keep "is this task able to serve" separate from "is it overloaded".
// "Handling Overload" (chapter 21) tells local overload, a few tasks hot
// because balancing is imperfect, where moving calls elsewhere helps, from
// global overload, where moving calls only moves the problem and the right
// answer is to reject the excess. The lame-duck state ("Load Balancing in
// the Datacenter", chapter 20) is the case where taking a task out of
// rotation is always right: it is leaving.
//
// So the Reporter treats NOT_SERVING for load as a remedy for local
// overload, bounds the harm it can do if the overload is global, and leaves
// global overload to shedding. The rule for when load may turn a server
// NOT_SERVING at all:
//
//  1. Only after the overload held for Hold, and only outside a cooldown.
//  2. A stint NOT_SERVING for load ends at the first sample after MinDwell
//     that is below the exit thresholds. Health-checking clients leave at
//     once, so the load of a replica whose peers can take it falls within a
//     sample or two; MinDwell is kept short because, if every replica
//     flipped together, MinDwell is how long the service is down.
//  3. A stint ends at MaxNotServing (5 s) whatever the load ("max-time
//     release"). Load that does not fall while NOT_SERVING comes from
//     clients that do not check health, or from calls that are stuck;
//     NOT_SERVING does not help against either, and every second of it is
//     capacity health-checking clients cannot use.
//  4. After every stint the server stays SERVING for a cooldown (30 s, ±20 %
//     random so that replicas that flipped together drift apart), whatever
//     its load, and load shedding alone protects it. An overload during the
//     cooldown is logged and counted (load_decisions reason "cooldown"), not
//     acted on. The cooldown doubles, up to MaxCooldown (5 m), while the
//     overload keeps coming back (or was not over at MaxNotServing), and
//     returns to Cooldown after one without overload.
//
// The bound that follows: in a fleet-wide overload, where every replica
// flips together, health-checking clients see one outage of about MinDwell
// plus the time the smoothed load needs to fall below CPUExit (a fraction
// of the sampler's time constant), at most MaxNotServing, and after that at
// most one NOT_SERVING stint per replica per cooldown, the stints spread
// apart by the jitter. A replica NOT_SERVING for load is so at most
// MaxNotServing / (MaxNotServing + Cooldown), 14 % of the time with the
// defaults, less as the cooldown doubles. The test TestFleetWideOverload
// offers three replicas twice their capacity, with these timings scaled
// down, side by side with a reference fleet whose load-following is off,
// and checks that the fleet serves at least 80 % of its capacity and never
// serves nothing for more than a second while the reference serves.
//
// The price is paid in local overload: a replica that is hot for a long time
// (a slow node, a noisy neighbour) is NOT_SERVING for one stint per cooldown,
// not for as long as it is hot. Longer-lasting imbalance is the job of the
// levers that do not take capacity away: ORCA load reports with
// weighted_round_robin clients, and load shedding with a retry policy,
// which sends the rejected calls to other replicas one at a time.
// DisableLoad turns load-following off altogether; the drain and the
// application's statuses still work.
//
// # Lame duck
//
// grpcmgmt's Manager.Shutdown calls BeginDrain first: every service turns
// NOT_SERVING (health.Server.Shutdown, which also ignores later changes) and
// the Manager waits PropagationDelay (or until its context ends) before it
// stops the servers with GracefulStop (GOAWAY on every connection, calls in
// flight finish), and with Stop when its context ends. Each step is logged.
// A Watch stream is a call in flight too: grpc-go clients with health
// checking end theirs when the GOAWAY arrives, but any other client that
// keeps one open (a monitoring tool) holds GracefulStop until the context
// of Shutdown ends.
//
// PropagationDelay defaults to 10 s. Clients with health checking react to
// NOT_SERVING at once (the Watch stream pushes it, in milliseconds). A
// Kubernetes readiness probe notices after at most periodSeconds ×
// failureThreshold (5 s × 1 in a tight configuration, 10 s × 3 = 30 s with
// Kubernetes' defaults), and the endpoint change then needs a few seconds to
// reach kube-proxy and DNS. 10 s covers a 5 s probe plus propagation, while
// leaving 20 s of Kubernetes' default terminationGracePeriodSeconds (30 s)
// for calls in flight. With a slower probe, set PropagationDelay to at least
// periodSeconds × failureThreshold + 5 s, and terminationGracePeriodSeconds
// to at least PropagationDelay + the longest call. (Kubernetes also marks a
// terminating pod's endpoints not ready by itself; the probe matters for
// every other NOT_SERVING.)
//
// The delay is only waited if someone can notice: once a client or probe
// has called the health service (Check, Watch or List) since the Reporter
// started. A server nobody asked about its health (no health-checking
// client, no probe, as in most tests) stops at once, as it would without
// this package. Set DelayUnobserved to wait anyway, e.g. behind a
// Kubernetes Service without readiness probe, where the wait covers the
// endpoint change reaching kube-proxy.
//
// # Clients
//
// Go (grpc-go): client-side health checking needs the blank import
// _ "google.golang.org/grpc/health" and a service config naming the service
// to watch, with a load-balancing policy that balances over all addresses:
// clientconfig.RoundRobin (healthCheckConfig with serviceName "", under
// round_robin or weighted_round_robin).
//
// A retry policy for UNAVAILABLE lets calls caught by a shutting-down
// replica go elsewhere (see Example). C-core based clients read the same
// service config (checked with Python grpcio 1.51; C++, Ruby and PHP share
// C-core). @grpc/grpc-js has no
// client-side health checking: for Node clients a NOT_SERVING acts only
// through the readiness probe (the pod leaves the DNS answer), and load
// moves through GOAWAY, ORCA weights and shedding with retries. The Watch
// stream of a health-checking client keeps its connection busy, so
// MaxConnectionIdle never closes it.
//
// Kubernetes: a gRPC readiness probe (`grpc: {port: N}`, service "" by
// default) or grpc_health_probe as an exec probe; both Check the same
// status.
//
// # Observability
//
// Metrics (meter "github.com/grpcmgmt/grpcmgmt/health"):
// grpcmgmt.health.flips counts published status changes by service, reason
// ("load", "max_time", "drain", "app") and direction ("serving",
// "not_serving"); grpcmgmt.health.load_decisions counts the load policy's
// decisions, including overloads held SERVING by a cooldown (reason
// "cooldown"); grpcmgmt.health.status is the published status per service
// (1 SERVING, 0 otherwise). Every change is logged at INFO with its reason
// and the load numbers it was decided on.
package health
