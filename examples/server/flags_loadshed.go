package main

import (
	"errors"
	"flag"

	"github.com/grpcmgmt/grpcmgmt"
	"github.com/grpcmgmt/grpcmgmt/loadshed"
)

func init() { featureFlags = append(featureFlags, loadShedFlags) }

func loadShedFlags(fs *flag.FlagSet) func() ([]grpcmgmt.Option, error) {
	on := fs.Bool("shed", false, "turn load shedding on (pair it with a client retry policy)")
	maxInFlight := fs.Int("shed-max-inflight", 0, "static limit of calls in flight (0: none)")
	cpu := fs.Float64("shed-cpu", 0, "CPU utilization above which calls are shed with rising probability (0: library default)")
	adaptive := fs.Bool("shed-adaptive", false, "adaptive concurrency limit (no hand-tuned number)")
	return func() ([]grpcmgmt.Option, error) {
		if !*on {
			if *maxInFlight != 0 || *cpu != 0 || *adaptive {
				return nil, errors.New("-shed-max-inflight, -shed-cpu and -shed-adaptive need -shed")
			}
			return nil, nil
		}
		cfg := loadshed.Config{MaxInFlight: *maxInFlight, CPUThreshold: *cpu}
		if *adaptive {
			cfg.Adaptive = &loadshed.AdaptiveConfig{}
		}
		if err := cfg.Validate(); err != nil {
			return nil, flagError(err, map[string]string{
				"loadshed: MaxInFlight":  "shed-max-inflight",
				"loadshed: CPUThreshold": "shed-cpu",
			})
		}
		return []grpcmgmt.Option{grpcmgmt.WithLoadShed(cfg)}, nil
	}
}
