package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/grpcmgmt/grpcmgmt"
	"github.com/grpcmgmt/grpcmgmt/health"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

func init() { featureFlags = append(featureFlags, healthFlags) }

func healthFlags(fs *flag.FlagSet) func() ([]grpcmgmt.Option, error) {
	delay := fs.Duration("lame-duck-delay", 0, "lame duck: how long shutdown reports NOT_SERVING before it stops the server (0: library default "+health.DefaultPropagationDelay.String()+")")
	noLoad := fs.Bool("health-no-load", false, "health status does not follow load (drain and application status only)")
	cpuEnter := fs.Float64("health-cpu-enter", 0, "CPU utilization at which the replica goes out of rotation (0: library default 0.90)")
	inFlight := fs.Int64("health-in-flight-enter", 0, "calls in flight at which the replica goes out of rotation (0: off)")
	shedEnter := fs.Float64("health-shed-enter", 0, "share of arriving calls refused by the load shedder at which the replica goes out of rotation (0: library default "+fmt.Sprint(health.DefaultShedEnter)+")")
	hold := fs.Duration("health-hold", 0, "how long the overload must last (0: library default "+health.DefaultHold.String()+")")
	minDwell := fs.Duration("health-min-dwell", 0, "first dwell: below the exit thresholds this long before the share turned away halves (0: library default "+health.DefaultMinDwell.String()+")")
	maxShare := fs.Float64("health-max-share", 0, "largest share of the health Watch streams turned NOT_SERVING for load (0: library default "+fmt.Sprint(health.DefaultMaxShare)+")")
	maxNS := fs.Duration("health-max-not-serving", 0, "without -health-peers: longest stint out of rotation (0: library default "+health.DefaultMaxNotServing.String()+")")
	cooldown := fs.Duration("health-cooldown", 0, "without -health-peers: SERVING at least this long after a stint out of rotation (0: library default "+health.DefaultCooldown.String()+")")
	peers := fs.String("health-peers", "", "DNS name resolving to every replica (a headless Service publishing not-ready addresses): turns the outage guard on; shares the lookups of -replica-set-name when it is the same name (empty: no guard)")
	peersAddrs := fs.String("health-peers-addrs", "", "comma-separated host:port of every replica, this one included: the outage guard's fixed replica set (instead of -health-peers)")
	peersResolver := fs.String("health-peers-resolver", "", "host:port of the DNS server for -health-peers (empty: the system resolver)")
	peersPort := fs.Int("health-peers-port", 0, "the replicas' gRPC port, for the addresses of -health-peers (0: the port of -listen)")
	peersDelay := fs.Duration("health-peers-delay", 0, "outage guard: re-check delay after asking for a slot (0: library default "+health.DefaultRecheckDelay.String()+")")
	maxOut := fs.Int("health-max-out", 0, "outage guard: most replicas out of rotation at once (0: ⌊(n−1)/3⌋, at least 1)")
	latEnter := fs.Float64("health-peers-latency-enter", 0, "with a replica set: overloaded while this replica's mean call latency is this many times its peers' median (0: library default "+fmt.Sprint(health.DefaultLatencyEnter)+")")
	noLat := fs.Bool("health-peers-no-latency", false, "with a replica set: do not compare this replica's latency with its peers'")
	return func() ([]grpcmgmt.Option, error) {
		cfg := health.Config{
			PropagationDelay: *delay,
			DisableLoad:      *noLoad,
			CPUEnter:         *cpuEnter,
			InFlightEnter:    *inFlight,
			ShedEnter:        *shedEnter,
			Hold:             *hold,
			MinDwell:         *minDwell,
			MaxShare:         *maxShare,
			MaxNotServing:    *maxNS,
			Cooldown:         *cooldown,
		}
		switch {
		case *peers != "" && *peersAddrs != "":
			return nil, errors.New("-health-peers and -health-peers-addrs: choose one")
		case *peers != "":
			port := *peersPort
			if port == 0 {
				_, p, err := net.SplitHostPort(fs.Lookup("listen").Value.String())
				if err != nil {
					return nil, fmt.Errorf("-health-peers-port: no port in -listen: %w", err)
				}
				if port, err = strconv.Atoi(p); err != nil || port == 0 {
					return nil, fmt.Errorf("-health-peers-port: -listen has no fixed port (%q): set -health-peers-port", p)
				}
			}
			cfg.Peers = health.Peers{Name: *peers, Resolver: *peersResolver, Port: port}
		case *peersAddrs != "":
			cfg.Peers = health.Peers{Addrs: strings.Split(*peersAddrs, ",")}
		case *peersResolver != "" || *peersPort != 0 || *peersDelay != 0 || *maxOut != 0 || *latEnter != 0 || *noLat:
			return nil, errors.New("-health-peers-resolver, -health-peers-port, -health-peers-delay, -health-max-out, -health-peers-latency-enter and -health-peers-no-latency need -health-peers or -health-peers-addrs")
		}
		if cfg.Peers.Name != "" || len(cfg.Peers.Addrs) > 0 {
			cfg.Peers.Delay, cfg.Peers.MaxOut = *peersDelay, *maxOut
			cfg.Peers.LatencyEnter, cfg.Peers.DisableLatency = *latEnter, *noLat
		}
		check := cfg // the Manager adds insecure credentials for the peers of a plaintext server
		if check.Peers.Name != "" || len(check.Peers.Addrs) > 0 {
			check.Peers.DialOptions = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
		}
		if err := check.Validate(); err != nil {
			return nil, flagError(err, map[string]string{
				"health: PropagationDelay":   "lame-duck-delay",
				"health: CPUEnter":           "health-cpu-enter",
				"health: InFlightEnter":      "health-in-flight-enter",
				"health: ShedEnter":          "health-shed-enter",
				"health: Hold":               "health-hold",
				"health: MinDwell":           "health-min-dwell",
				"health: MaxShare":           "health-max-share",
				"health: MaxNotServing":      "health-max-not-serving",
				"health: Cooldown":           "health-cooldown",
				"health: Peers.Resolver":     "health-peers-resolver",
				"health: Peers.Port":         "health-peers-port",
				"health: Peers.Addrs":        "health-peers-addrs",
				"health: Peers.Delay":        "health-peers-delay",
				"health: Peers.MaxOut":       "health-max-out",
				"health: Peers.LatencyEnter": "health-peers-latency-enter",
			})
		}
		return []grpcmgmt.Option{grpcmgmt.WithHealth(cfg)}, nil
	}
}
