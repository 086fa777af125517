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
//	AND not out of rotation for load (only for the services in Config.Services)
//	AND not draining (Reporter.BeginDrain).
//
// That status is what Check answers (a Kubernetes probe, grpc_health_probe:
// the binary status) and what List lists; both are the health.Server's own.
// Watch is answered per stream: while the replica is out of rotation for
// load, only a share of the Watch streams of a service that follows load
// see NOT_SERVING (proportional removal, below); every other Watch stream
// sees the application's status AND not draining. Services that do not
// follow load are watched through the health.Server as they are.
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
//   - signal.go, Config.signal: the seam between the load sampler and the
//     state machine. It reads each sample as a Load: over an enter
//     threshold, under every exit threshold, and the excess (load carried ÷
//     load it should carry). Config.Signal replaces it.
//   - policy.go, policy.step: the state machine below: in, want, out;
//     the share while out; the dwell and its doubling; MaxNotServing and
//     the cooldown without a replica set.
//   - streams.go, streamSet.apply: which Watch streams see NOT_SERVING for
//     a share (the lowest hashes of their peers, sticky).
//   - guard.go, guard.round and tally.mayGoOut / tally.mustReturn: the
//     round of Checks of the replica set and the guard's two rules;
//     Reporter.decide (reporter.go) applies them.
//   - reporter.go, Reporter.slowerLocked: this replica's latency against
//     the median of its peers' (Peers.LatencyEnter), merged into each
//     sample's Load.
//   - service.go: the grpc.health.v1 service: Check and List from the
//     health.Server, Watch per stream, Check of GuardService for the peers.
//   - reporter.go, Reporter.wantLocked: the AND of application, load and
//     drain; Reporter.publishLocked publishes, counts and logs each change;
//     Reporter.BeginDrain is the lame duck.
//   - config.go and peers.go: defaults and the allowed range of every field.
//   - The Manager (package grpcmgmt, feature_health.go) builds the Reporter
//     on its shared load sampler, registers it on every server
//     (Manager.Register), gives the guard insecure credentials for a
//     WithInsecure server and the rebalancer's lookups of the same name,
//     and calls BeginDrain first in Manager.Shutdown.
//
// # The state machine
//
//	      ┌──────────────── below the exit thresholds ───────────────┐
//	      ▼                                                          │
//	┌───────────┐   overloaded for Hold, replica set known     ┌───────────┐
//	│    in     │ ───────────────────────────────────────────▶ │   want    │ ◀─┐ round refused
//	│  SERVING  │                                              │  SERVING  │ ──┘ ("fleet_needed")
//	└───────────┘                                              └───────────┘
//	   │     ▲   overloaded for Hold,              a round, Delay after │
//	   │     │   no replica set known,             the want, grants a   │
//	   │     │   no cooldown                       slot ("granted")     │
//	   │     │                                                          ▼
//	   │     │    s halved below 1/8 (recovered); recalled by     ┌─────────────┐
//	   │     └─── the set (two rounds); MaxNotServing (no set) ── │   out (s)   │
//	   └────────────────────────────────────────────────────────▶ │ NOT_SERVING │
//	                                                              └─────────────┘
//	out: Check NOT_SERVING; ⌈s·n⌉ of the n Watch streams NOT_SERVING, the others SERVING;
//	     overloaded for Hold since the last change → s grows;
//	     below the exit thresholds for the dwell → s halves (a probe);
//	     a step down followed by another overload → the dwell doubles (up to MaxDwell).
//
// # Load: hysteresis in level and in time
//
// The Reporter subscribes to the shared load sampler (load.Sampler.OnSample;
// no goroutine of its own) and reads each sample through Config.Signal
// (default: CPU, calls in flight, calls refused and queueing):
//
//   - the server counts as overloaded when CPU ≥ CPUEnter (0.90) or
//     in-flight ≥ InFlightEnter (off unless set) or the load shedder refuses
//     ShedEnter (1 %) of the calls (load.Snapshot.ShedRatio) or queueing is
//     high (load.Snapshot.QueueingHigh: calls take four times their no-load
//     latency by default; a replica slow on a lock, a small worker pool or
//     a slow dependency is overloaded with its CPU idle), sample after
//     sample, for Hold (2 s); shorter bursts are the load shedder's
//     business;
//   - it counts as recovered below CPUExit (0.70), InFlightExit and
//     ShedExit (0.2 %), with queueing no longer high (the sampler's own
//     exit threshold).
//
// The refusals matter because a shedder keeps its replica's queue short:
// with the adaptive limit on, a replica at half the speed of its peers
// shows little queueing and CPU just under CPUEnter while it refuses a few
// per cent of its calls, each of which costs a client a retry (and its
// backoff). Measured in the hot scenario (bench/NOTES.md), the health
// lever did not engage at all before the refusals counted.
//
// Enter and exit thresholds are apart, so a signal wandering around either
// one does not make the status follow it; Hold and the dwell keep short
// swings from doing so either.
//
// # Proportional removal
//
// A client channel with health checking holds one Watch stream per
// backend, so a server can tell some of its clients to go elsewhere and
// keep the others: a replica at twice what it should carry turns about
// half of its health-checking clients away, not all of them. It moves the
// excess, not the replica's whole share, and persists for as long as the
// overload does.
//
// The share s is sized to the excess e (Load.Excess, the load carried ÷ the
// load at the exit level): going out, s = 1 − 1/e (at least 1/8); while
// still overloaded for Hold since the last change, the share served, 1 − s,
// is divided by the excess again (s grows by 1/8 at least); never above
// MaxShare (0.9). The streams turned away are the ⌈s·n⌉ of the n Watch
// streams of the service with the lowest hashes of their peer addresses
// (at least one, at most MaxShare of them). The choice is sticky: when the
// number grows, the lowest hashes not yet turned away are added; when it
// shrinks, the highest of those turned away return; an arriving client is
// turned away only if the number grows with it; a client that leaves while
// turned away is replaced by the lowest hash of the others. So a client's
// status changes only when the share does, never because others come and
// go, and clients do not flap.
//
// Check callers (a Kubernetes readiness probe) see the binary status:
// NOT_SERVING while out, whatever the share. Kubernetes cannot take part of
// a pod out of its endpoints; the guard bounds how many pods are so at once.
//
// With the default signal the excess read from CPU alone is at most
// 1/CPUExit (1.43), since CPU cannot read above 1: the first share is then
// at most 0.3, and it grows each Hold while the overload lasts. The calls
// in flight (InFlightEnter) measure a larger excess directly.
//
// # Coming back: the dwell, the probe, and its doubling
//
// A replica out of rotation must learn when it is fine again, and the load
// it serves is no evidence if it serves nothing. Proportional removal keeps
// serving the share 1 − s (MaxShare < 1), and that share's load is the
// evidence: once it has been below the exit thresholds for the dwell, and
// at least twice the sampler's TimeConstant has passed since the last
// change (the smoothed signal needs that long to show it: a probe any sooner
// reads the load from before the change), the share halves: half of the
// clients turned away come back (a probe; halved again while that would
// not change the whole streams turned away). Below 1/8 the replica is back in rotation. A probe
// is not made when the replica can foresee that it would take it back above
// its exit thresholds: the excess scaled by the clients it would then serve
// (counted in whole streams) reaching 1, the exit level (CPU 0.6 with a
// quarter of the clients away does not take them back: 0.8 is over 0.70).
// Foreseeing against the enter level instead let a one-worker replica at
// half speed take every client back in three probes and queue again (its
// CPU reads 0.90 only at 97 % utilization, and its queue then builds for
// longer than a probe watches). The dwell
// starts at MinDwell (500 ms) and doubles, up to MaxDwell (1 m), each time a
// step down is followed, within dwell + 2·(Hold + Peers.Delay), by a step
// up or a new stint: a replica hot for a long time probes less and less
// often. A step down that holds for that long resets the dwell to MinDwell.
//
// With a single health-checking client (or MaxShare 1 and a large excess)
// every stream is turned away and the replica's load from health-checking
// clients drops to zero: then the dwell is a plain time out, after which
// half of the share (all of it, for one stream) returns as the probe, and
// the doubling is what keeps a replica that is still hot from coming back
// at a fixed rate.
//
// # Fleet-wide overload must not become a fleet-wide outage
//
// A client with health checking sends nothing to a NOT_SERVING backend, and
// if every backend is NOT_SERVING its calls fail with UNAVAILABLE at once:
// a whole fleet turning NOT_SERVING for load is an outage of the whole
// service. In a fleet-wide overload every replica sees the same load at the
// same time.
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
// So the Reporter treats going out of rotation for load as a remedy for
// local overload, moves only the excess (proportional removal), and bounds
// how many replicas may do it at once: with a known replica set, by asking
// the set (the guard); without one, in time.
//
// # The guard: with a known replica set
//
// Config.Peers names the replica set: the DNS name that resolves to every
// replica (in Kubernetes a headless Service that publishes not-ready
// addresses: a replica out of rotation must stay in the answer), a fixed
// list of addresses, or a goaway.Watcher. The lookups are
// goaway.DNSWatcher's, shared with fair-share rebalancing when the Manager
// runs both on the same name. Each replica answers a Check of GuardService
// with its place in rotation: SERVING (in), UNKNOWN (wants out, still
// serving) or NOT_SERVING (out, for load or for any other reason). There
// is no coordinator; each replica decides for itself:
//
//  1. Overloaded for Hold, a replica announces that it wants out (its
//     GuardService turns UNKNOWN; it stays SERVING) and opens a connection
//     to every member it does not have one to.
//  2. After Delay (1 s) plus up to 50 % at random it Checks every member
//     at once, each Check within Delay/4, and discards the round if it took
//     Delay/2 or longer. A member that does not answer counts as out.
//  3. It goes out if the members out of rotation, plus those that want out
//     and come before it in address order (IP, then port), leave a slot:
//     out + unreachable + ahead < maxOut. Otherwise it stays SERVING,
//     counts "fleet_needed" (grpcmgmt.health.guard_decisions) and logs
//     "wanted out of rotation, but the replica set needs this replica" with
//     the counts of the peers seen serving, wanting out, out and
//     unreachable, then asks again every CheckInterval (1 s ± 25 %) for as
//     long as it is overloaded.
//  4. Out, it stays out for as long as it is overloaded (no MaxNotServing,
//     no cooldown), steps its share as above, and Checks the set every
//     CheckInterval: when two rounds in a row find that with it more than
//     maxOut replicas are out (another replica drains, crashes or turned
//     NOT_SERVING), it returns ("recalled"; the overload must then hold for
//     Hold again before it asks).
//
// # Slower than its peers
//
// A replica can be slow without being busy: a lock, a slow disk or
// dependency, a noisy neighbour, half the CPU of its peers. Its CPU and its
// queue stay under every threshold, so nothing above sees it, yet each
// call it takes costs its client more than the same call elsewhere. With a
// replica set each replica gives its mean call latency
// (load.Snapshot.Latency) in the LatencyHeader of its answer to a Check of
// GuardService, and the guard runs a round every CheckInterval while the
// replica is in rotation too (asking at most ten members at random in a
// large set). A replica whose latency is at least Peers.LatencyEnter (2)
// times the median of its peers' (and at least 1 ms more) counts as
// overloaded, and as recovered only under Peers.LatencyExit (1.4): the
// state machine above does the rest (Hold, a slot from the guard, a share
// one step larger each Hold, the dwell), Reporter.slowerLocked
// (reporter.go) is where it is decided, and the grpcmgmt.health.latency_ratio
// gauge shows the ratio. It balances tail latency the way Prequal does
// (choose the replica by its latency, not its load), but from the server
// side: the slow replica keeps only the share of its health-checking
// clients with which it is no longer much slower than its peers, and
// every peer, being faster, takes more. Peers.DisableLatency turns it off.
//
// maxOut is Peers.MaxOut, by default ⌊(n−1)/3⌋ of a set of n, but at least 1
// (⌊(n−1)/3⌋ is 0 below four replicas, which would switch the lever off for
// the smallest fleets), and never more than n−1.
//
// Why two replicas deciding at once cannot both take the last slot: let A
// announce at a_A and B at a_B, and let each decide in a round that starts
// at least Delay after its own announcement and publishes its decision less
// than Delay/2 after the round started. If B's round saw A still in
// rotation (before a_A), then B decided before a_A + Delay/2, which is
// before A's round started (at a_A + Delay or later): so A's round sees B
// out, and A stays. Otherwise each saw the other wanting out, and only the
// one first in address order counts no one ahead of it. In every case one
// of the two sees the other, and the rule counts what it sees. A test
// checks the rule over random interleavings of announcements, rounds and
// observations (and that with rounds as long as Delay it can fail), and the
// decisions of real replicas checking each other over loopback.
//
// The bound that follows: at any time at most maxOut ≤ n−1 replicas are
// out of rotation for load, and the others serve every stream, so no
// client ever sees every replica NOT_SERVING for load. What it does not
// cover: members that differ between replicas' views of the set (a
// replica's guard counts only the members it knows; a member that left the
// answer is still asked, and counted as out if it does not answer, for
// Forget, 1 m), and replicas NOT_SERVING for reasons other than load
// (draining, the application's own status), which the guard counts but
// does not control.
//
// # Without a known replica set: bounded in time
//
// Without Config.Peers a replica cannot tell whether its peers are out of
// rotation too, and the bound is in time instead:
//
//  1. Only after the overload held for Hold, and only outside a cooldown.
//  2. A stint out of rotation ends when its share steps down below 1/8
//     (recovered) or at MaxNotServing (5 s) whatever the load ("max-time
//     release"): load that does not fall while out comes from clients that
//     do not check health, or from calls that are stuck, or the whole fleet
//     is overloaded; going out does not help against any of these.
//  3. After every stint the server stays SERVING for a cooldown (30 s, ±20 %
//     random so that replicas that went out together drift apart), whatever
//     its load, and load shedding alone protects it. An overload during the
//     cooldown is logged and counted (load_decisions reason "cooldown"), not
//     acted on. The cooldown doubles, up to MaxCooldown (5 m), while the
//     overload keeps coming back (or was not over at MaxNotServing), and
//     returns to Cooldown after one without overload.
//
// What is lost without the set: a replica that is hot for a long time (a
// slow node, a noisy neighbour) is out of rotation for one stint of at most
// MaxNotServing per cooldown, not for as long as it is hot: at most
// MaxNotServing / (MaxNotServing + Cooldown), 14 % of the time with the
// defaults, less as the cooldown doubles; the rest of the time it serves
// its full share, protected by shedding only. And the bound is a bound,
// not a guarantee: in a fleet-wide overload every replica may go out in the
// same few seconds, and a client whose streams each replica's share picked
// sees every replica NOT_SERVING for up to MaxNotServing (the test
// TestFleetWideOverload holds such a fleet to 80 % of its capacity and at
// most a second of nothing served). Set Peers to have neither limit.
//
// # Lame duck
//
// grpcmgmt's Manager.Shutdown calls BeginDrain first: every service turns
// NOT_SERVING (health.Server.Shutdown, which also ignores later changes, and
// every Watch stream) and the Manager waits PropagationDelay (or until its
// context ends) before it stops the servers with GracefulStop (GOAWAY on
// every connection, calls in flight finish), and with Stop when its context
// ends. Each step is logged. A Watch stream is a call in flight too:
// grpc-go clients with health checking end theirs when the GOAWAY arrives,
// but any other client that keeps one open (a monitoring tool) holds
// GracefulStop until the context of Shutdown ends.
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
// ("load", "max_time", "fleet", "drain", "app") and direction ("serving",
// "not_serving"); grpcmgmt.health.load_decisions counts the load policy's
// decisions (reasons "load", "max_time", "fleet", "want", "withdrawn",
// "share_up", "share_down", and "cooldown" for an overload held SERVING by
// a cooldown); grpcmgmt.health.guard_decisions counts the guard's
// ("granted", "fleet_needed", "recalled", "not_in_set");
// grpcmgmt.health.status is the published status per service (1 SERVING, 0
// otherwise); grpcmgmt.health.removed_share the share of Watch streams
// turned away; grpcmgmt.health.watch_streams the Watch streams by service
// and the status they see; grpcmgmt.health.peers the other replicas by
// state as the guard's last round saw them. Every change of status or share
// and every decision of the guard is logged at INFO with its reason and the
// numbers it was decided on (a refusal repeated round after round at
// DEBUG).
package health
