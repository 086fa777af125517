package main

import (
	"flag"

	"github.com/grpcmgmt/grpcmgmt"
	"github.com/grpcmgmt/grpcmgmt/orca"
)

func init() { featureFlags = append(featureFlags, orcaFlags) }

func orcaFlags(fs *flag.FlagSet) func() ([]grpcmgmt.Option, error) {
	capacity := fs.Int("orca-capacity", 0, "calls in flight at full utilization, for application_utilization (0: CPU is the utilization)")
	minInterval := fs.Duration("orca-min-reporting-interval", 0, "shortest out-of-band reporting interval a client may ask for (0: grpc-go default 30s)")
	return func() ([]grpcmgmt.Option, error) {
		cfg := orca.Config{Capacity: *capacity, MinReportingInterval: *minInterval}
		if err := cfg.Validate(); err != nil {
			return nil, flagError(err, map[string]string{
				"orca: Capacity":             "orca-capacity",
				"orca: MinReportingInterval": "orca-min-reporting-interval",
			})
		}
		return []grpcmgmt.Option{grpcmgmt.WithORCA(cfg)}, nil
	}
}
