// Package sim is a fleet simulation of the library's connection policies:
// hundreds of replicas and a hundred thousand client connections, on a
// simulated clock, in a fraction of a second of CPU.
//
// # Why
//
// The one-machine cluster (bench/cluster) runs real servers, clients,
// HAProxy and dnsmasq, but two shared cores hold about 16 replicas and a
// few thousand connections. The questions people ask before adopting the
// rebalancer are about fleets: does a scale-out of 500 → 1 000 replicas
// converge, how many GOAWAYs (reconnections, TLS handshakes) does it cost,
// can it cause a reconnection storm, and do the replicas, each deciding
// alone, oscillate? A simulation answers them, provided what it simulates
// is the library's decision code and not a model of it.
//
// # What is real and what is modelled
//
// Real: every simulated replica runs a goaway.RebalanceDecider (and, when
// Scenario.Policy is set, a load Policy from goaway.NewPolicyOn), the same
// code a server runs, fed with lookups of the replica set and load
// snapshots on the simulated clock, acting on the replica's connections
// through goaway.ConnSet. The deciders' jitter draws from seeded sources:
// a run is repeatable.
//
// Modelled: the connections and the clients. A connection sent a GOAWAY
// reconnects after a short delay (Scenario.ReconnectDelay) through the
// balancer: uniform random (kube-proxy in iptables mode), power of two
// choices (HAProxy's "balance random", whose default is two draws), least
// connections (IPVS lc, HAProxy leastconn), or, for clients that resolve
// DNS themselves (grpc-go round_robin over dns:///), back to the same
// replica with a re-resolution no sooner than Scenario.ResolveFloor after
// the last one. The replicas' lookups see a changed set after a lag drawn
// per replica (DNS caching); the balancer sees it after its own lag. The
// connection selection of a GOAWAY round mirrors the Tracker's (oldest
// first, busiest first by calls per second, random; never a draining
// connection, never one younger than the minimum age asked for).
//
// Not modelled: calls, latency, TLS, CPU spent reconnecting. A replica's
// load (for the load Policy) is the sum of its connections' weights over
// its capacity, smoothed like the load sampler's CPU.
package sim
