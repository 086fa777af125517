package health

import (
	"errors"
	"fmt"
	"net"
	"time"

	"google.golang.org/grpc"

	"github.com/grpcmgmt/grpcmgmt/goaway"
)

// Defaults of the guard; the package documentation says why.
const (
	DefaultCheckInterval = time.Second
	DefaultRecheckDelay  = time.Second
	DefaultForget        = time.Minute
	DefaultLatencyEnter  = 2.0
)

// LatencyHeader is the response header of a Check of GuardService that
// carries the answering replica's mean call latency (load.Snapshot.Latency)
// in whole microseconds, absent while it serves too few calls to measure
// one. Peers compare their own latency with it (Peers.LatencyEnter).
const LatencyHeader = "grpcmgmt-latency-us"

// GuardService is the service name the guard asks its peers about with a
// grpc.health.v1 Check. Its status is the replica's place in rotation, not a
// service's health:
//
//   - SERVING: in rotation, and not asking to leave it;
//   - UNKNOWN: overloaded and asking the replica set for a slot out of
//     rotation (still serving);
//   - NOT_SERVING: out of rotation, for load or for any other reason (a
//     drain, the application's own NOT_SERVING for service "").
//
// A server that does not know the name (an older version during a rollout)
// answers NOT_FOUND; the guard then reads that peer's status of service ""
// instead. The response carries the replica's instance id in the header
// InstanceHeader, by which a replica finds itself in the set.
const GuardService = "grpcmgmt.health.guard"

// InstanceHeader is the response header of a Check of GuardService that
// carries the answering Reporter's random instance id.
const InstanceHeader = "grpcmgmt-instance"

// Peers describes the replica set of this server, for the guard. Set one of
// Name (DNS), Addrs (a fixed list) or Watcher (another source); the other
// fields' zero values mean their defaults.
type Peers struct {
	// Name is the DNS name that resolves to every replica of the set: in
	// Kubernetes a headless Service's name ("svc-peers.ns.svc.cluster.local.";
	// a trailing dot skips the pod's search domains). The Service must
	// publish not-ready addresses (publishNotReadyAddresses: true), or a
	// replica out of rotation leaves the answer and its peers stop counting
	// it (docs/kubernetes.md). The lookups are goaway.DNSWatcher's, the same
	// as fair-share rebalancing's; a Manager with both on the same name
	// shares one watcher.
	Name string
	// Resolver is the host:port of the DNS server to ask. Default "": the
	// system resolver. Only with Name.
	Resolver string
	// Interval is the time between two lookups of Name. Default 1s;
	// allowed 100ms..10m. Only with Name.
	Interval time.Duration
	// Port is the replicas' gRPC port: the peer at address A is asked at
	// A:Port. Required with Name (1..65535); with Watcher, needed if it
	// reports bare hosts.
	Port int

	// Addrs is a fixed replica set: host:port of every replica, this one
	// included.
	Addrs []string

	// Watcher replaces the DNS lookups with another source of the replica
	// set (members as host:port, or bare hosts with Port). The Reporter
	// owns it and closes it.
	Watcher goaway.Watcher

	// DialOptions are how the guard reaches its peers: at least transport
	// credentials (grpc.WithTransportCredentials). Required with a replica
	// set; the Manager adds insecure credentials when the server itself is
	// WithInsecure and none are given.
	DialOptions []grpc.DialOption

	// MaxOut is the most replicas of the set that may be out of rotation
	// at once (counting every replica that is not SERVING, whatever the
	// reason). Default 0: ⌊(n−1)/3⌋ of a set of n, but at least 1 when n ≥ 2
	// (⌊(n−1)/3⌋ is 0 below four replicas, which would switch the lever off
	// for the smallest fleets); allowed 0..1<<20, and never more than n−1.
	MaxOut int
	// CheckInterval is the time between two rounds of Checks while this
	// replica wants out or is out, and, while the latency comparison is on
	// (LatencyEnter, DisableLatency), while it is in rotation too. Each is
	// jittered by ±25 %. Default 1s; allowed 10ms..1m.
	CheckInterval time.Duration
	// Delay is the re-check delay: a replica that starts to want out
	// announces it (GuardService UNKNOWN) and waits Delay, plus up to 50 %
	// at random, before the round of Checks that decides. Each Check of a
	// round has Delay/4 to answer (a peer that does not is counted as out
	// of rotation), and a round that took Delay/2 or longer in all (a
	// stalled process) is discarded. Together these make two replicas
	// deciding at the same instant see each other (doc.go). Default 1s;
	// allowed 10ms..1m.
	Delay time.Duration
	// Forget is how long a replica that left the set's answer is still
	// asked and counted (as out of rotation when it does not answer).
	// Default 1m; allowed 1ms..24h.
	Forget time.Duration

	// LatencyEnter compares this replica's speed with its peers': while
	// the mean latency of its calls (load.Snapshot.Latency) is at least
	// LatencyEnter times the median of its peers' mean latencies, it counts
	// as overloaded (as it does past a CPU threshold: after Hold, and
	// within the guard's slots, it turns a share of its health-checking
	// clients away, one more step each Hold it stays so), and it counts as
	// recovered only below LatencyExit times theirs (a difference under
	// 1 ms counts as none, and a replica serving under 2 calls a second is
	// not compared). A replica that is slow
	// without being busy (a lock, a slow disk or dependency, a noisy
	// neighbour, half the CPU of its peers) thus sends its excess to
	// faster peers instead of queueing it. The peers' latencies come with
	// the answers to the guard's Checks (LatencyHeader), so with the
	// comparison on the guard runs a round every CheckInterval while in
	// rotation too, asking at most latencyPeers members at random (all of
	// them while it wants out or is out). Default 2; allowed 1.01..100.
	LatencyEnter float64
	// LatencyExit is the ratio below which a replica slower than its
	// peers counts as recovered. Default 1 + 0.4 × (LatencyEnter − 1)
	// (1.4 with the default LatencyEnter); allowed 1..LatencyEnter,
	// LatencyEnter excluded.
	LatencyExit float64
	// DisableLatency turns the comparison with the peers' latency off: the
	// guard then asks its peers only while this replica wants out or is
	// out.
	DisableLatency bool
}

// latencyOn reports whether the comparison with the peers' latency is on
// (a replica set is given and DisableLatency is not set).
func (p Peers) latencyOn() bool { return p.configured() && !p.DisableLatency }

// configured reports whether a replica set is given.
func (p Peers) configured() bool { return p.Name != "" || len(p.Addrs) > 0 || p.Watcher != nil }

// WithDefaults returns p with every zero field set to its default, if a
// replica set is given (p unchanged otherwise).
func (p Peers) WithDefaults() Peers {
	if !p.configured() {
		return p
	}
	if p.Name != "" && p.Interval == 0 {
		p.Interval = goaway.DefaultLookupInterval
	}
	if p.CheckInterval == 0 {
		p.CheckInterval = DefaultCheckInterval
	}
	if p.Delay == 0 {
		p.Delay = DefaultRecheckDelay
	}
	if p.Forget == 0 {
		p.Forget = DefaultForget
	}
	if p.LatencyEnter == 0 {
		p.LatencyEnter = DefaultLatencyEnter
	}
	if p.LatencyExit == 0 {
		p.LatencyExit = 1 + 0.4*(p.LatencyEnter-1)
	}
	return p
}

// validate reports the first invalid field of p (defaults applied).
func (p Peers) validate() error {
	sources := 0
	for _, set := range []bool{p.Name != "", len(p.Addrs) > 0, p.Watcher != nil} {
		if set {
			sources++
		}
	}
	if sources > 1 {
		return errors.New("health: Peers: set one of Name (DNS), Addrs or Watcher, not several")
	}
	if sources == 0 {
		for _, f := range []struct {
			name string
			set  bool
		}{
			{"Resolver", p.Resolver != ""}, {"Interval", p.Interval != 0}, {"Port", p.Port != 0},
			{"DialOptions", len(p.DialOptions) > 0}, {"MaxOut", p.MaxOut != 0},
			{"CheckInterval", p.CheckInterval != 0}, {"Delay", p.Delay != 0}, {"Forget", p.Forget != 0},
			{"LatencyEnter", p.LatencyEnter != 0}, {"LatencyExit", p.LatencyExit != 0}, {"DisableLatency", p.DisableLatency},
		} {
			if f.set {
				return fmt.Errorf("health: Peers.%s is set but no replica set is (Peers.Name, Peers.Addrs or Peers.Watcher)", f.name)
			}
		}
		return nil
	}
	if p.Name == "" && (p.Resolver != "" || p.Interval != 0) {
		return errors.New("health: Peers.Resolver and Peers.Interval apply to Peers.Name (DNS) only")
	}
	if p.Name != "" {
		if p.Resolver != "" {
			if _, port, err := net.SplitHostPort(p.Resolver); err != nil || port == "" {
				return fmt.Errorf("health: Peers.Resolver must be host:port (empty means the system resolver), got %q", p.Resolver)
			}
		}
		if p.Interval < 100*time.Millisecond || p.Interval > 10*time.Minute {
			return fmt.Errorf("health: Peers.Interval must be within 100ms..10m (0 means %v), got %v", goaway.DefaultLookupInterval, p.Interval)
		}
		if p.Port < 1 || p.Port > 65535 {
			return fmt.Errorf("health: Peers.Port must be within 1..65535 with Peers.Name (the replicas' gRPC port), got %d", p.Port)
		}
	}
	if p.Port < 0 || p.Port > 65535 {
		return fmt.Errorf("health: Peers.Port must be within 0..65535 (0: the members carry their ports), got %d", p.Port)
	}
	for _, a := range p.Addrs {
		if _, port, err := net.SplitHostPort(a); err != nil || port == "" {
			return fmt.Errorf("health: Peers.Addrs must be host:port, got %q", a)
		}
	}
	if len(p.DialOptions) == 0 {
		return errors.New("health: Peers.DialOptions must say how to reach the peers (at least grpc.WithTransportCredentials); the Manager adds insecure credentials for a server built WithInsecure")
	}
	if p.MaxOut < 0 || p.MaxOut > 1<<20 {
		return fmt.Errorf("health: Peers.MaxOut must be within 0..%d (0 means ⌊(n−1)/3⌋, at least 1), got %d", 1<<20, p.MaxOut)
	}
	switch {
	case p.CheckInterval < 10*time.Millisecond || p.CheckInterval > time.Minute:
		return fmt.Errorf("health: Peers.CheckInterval must be within 10ms..1m (0 means %v), got %v", DefaultCheckInterval, p.CheckInterval)
	case p.Delay < 10*time.Millisecond || p.Delay > time.Minute:
		return fmt.Errorf("health: Peers.Delay must be within 10ms..1m (0 means %v), got %v", DefaultRecheckDelay, p.Delay)
	case p.Forget < time.Millisecond || p.Forget > 24*time.Hour:
		return fmt.Errorf("health: Peers.Forget must be within 1ms..24h (0 means %v), got %v", DefaultForget, p.Forget)
	case !(p.LatencyEnter >= 1.01 && p.LatencyEnter <= 100):
		return fmt.Errorf("health: Peers.LatencyEnter must be within 1.01..100 (0 means %v), got %v", DefaultLatencyEnter, p.LatencyEnter)
	case !(p.LatencyExit >= 1 && p.LatencyExit < p.LatencyEnter):
		return fmt.Errorf("health: Peers.LatencyExit must be within 1..LatencyEnter=%v, LatencyEnter excluded (0 means 1 + 0.4 × (LatencyEnter − 1)), got %v", p.LatencyEnter, p.LatencyExit)
	}
	return nil
}

// maxOut is the number of replicas of a set of n that may be out of
// rotation at once.
func (p Peers) maxOut(n int) int {
	if n <= 1 {
		return 0
	}
	m := p.MaxOut
	if m == 0 {
		m = max(1, (n-1)/3)
	}
	return min(m, n-1)
}
