package main

import (
	"flag"

	"github.com/grpcmgmt/grpcmgmt"
	"github.com/grpcmgmt/grpcmgmt/health"
)

func init() { featureFlags = append(featureFlags, healthFlags) }

func healthFlags(fs *flag.FlagSet) func() ([]grpcmgmt.Option, error) {
	delay := fs.Duration("lame-duck-delay", 0, "lame duck: how long shutdown reports NOT_SERVING before it stops the server (0: library default "+health.DefaultPropagationDelay.String()+")")
	noLoad := fs.Bool("health-no-load", false, "health status does not follow load (drain and application status only)")
	cpuEnter := fs.Float64("health-cpu-enter", 0, "CPU utilization at which health turns NOT_SERVING (0: library default 0.90)")
	inFlight := fs.Int64("health-in-flight-enter", 0, "calls in flight at which health turns NOT_SERVING (0: off)")
	hold := fs.Duration("health-hold", 0, "how long the overload must last (0: library default "+health.DefaultHold.String()+")")
	maxNS := fs.Duration("health-max-not-serving", 0, "longest NOT_SERVING for load (0: library default "+health.DefaultMaxNotServing.String()+")")
	cooldown := fs.Duration("health-cooldown", 0, "SERVING at least this long after NOT_SERVING for load (0: library default "+health.DefaultCooldown.String()+")")
	return func() ([]grpcmgmt.Option, error) {
		cfg := health.Config{
			PropagationDelay: *delay,
			DisableLoad:      *noLoad,
			CPUEnter:         *cpuEnter,
			InFlightEnter:    *inFlight,
			Hold:             *hold,
			MaxNotServing:    *maxNS,
			Cooldown:         *cooldown,
		}
		if err := cfg.Validate(); err != nil {
			return nil, flagError(err, map[string]string{
				"health: PropagationDelay": "lame-duck-delay",
				"health: CPUEnter":         "health-cpu-enter",
				"health: InFlightEnter":    "health-in-flight-enter",
				"health: Hold":             "health-hold",
				"health: MaxNotServing":    "health-max-not-serving",
				"health: Cooldown":         "health-cooldown",
			})
		}
		return []grpcmgmt.Option{grpcmgmt.WithHealth(cfg)}, nil
	}
}
