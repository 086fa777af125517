package main

import (
	"flag"

	"github.com/grpcmgmt/grpcmgmt"
	"github.com/grpcmgmt/grpcmgmt/goaway"
)

func init() { featureFlags = append(featureFlags, goAwayFlags) }

func goAwayFlags(fs *flag.FlagSet) func() ([]grpcmgmt.Option, error) {
	off := fs.Bool("goaway-policy-off", false, "turn the load-triggered GOAWAY policy off (the connection tracker stays)")
	cpuEnter := fs.Float64("goaway-cpu-enter", 0, "CPU utilization (0..1 of the allowance) above which connections are moved away (0: library default)")
	cpuExit := fs.Float64("goaway-cpu-exit", 0, "CPU utilization below which the policy stops (0: library default)")
	inflightEnter := fs.Int64("goaway-inflight-enter", 0, "calls in flight above which connections are moved away (0: not watched)")
	fraction := fs.Float64("goaway-fraction", 0, "fraction of connections sent GOAWAY per interval while overloaded (0: library default)")
	maxCalls := fs.Uint64("max-calls-per-connection", 0, "GOAWAY a connection after this many calls (0: no limit)")
	return func() ([]grpcmgmt.Option, error) {
		policy := goaway.PolicyConfig{Off: *off, CPUEnter: *cpuEnter, CPUExit: *cpuExit, InFlightEnter: *inflightEnter, Fraction: *fraction}
		if err := policy.Validate(); err != nil {
			return nil, flagError(err, map[string]string{
				"PolicyConfig.CPUEnter":      "goaway-cpu-enter",
				"PolicyConfig.CPUExit":       "goaway-cpu-exit",
				"PolicyConfig.InFlightEnter": "goaway-inflight-enter",
				"PolicyConfig.Fraction":      "goaway-fraction",
			})
		}
		return []grpcmgmt.Option{grpcmgmt.WithGoAway(goaway.Config{MaxCallsPerConn: *maxCalls}, policy)}, nil
	}
}
