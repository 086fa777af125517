package main

import (
	"errors"
	"flag"

	"github.com/grpcmgmt/grpcmgmt"
	"github.com/grpcmgmt/grpcmgmt/goaway"
)

func init() { featureFlags = append(featureFlags, rebalanceFlags) }

func rebalanceFlags(fs *flag.FlagSet) func() ([]grpcmgmt.Option, error) {
	name := fs.String("replica-set-name", "", "DNS name resolving to every replica (the headless Service's name); turns fair-share rebalancing on (empty: off)")
	resolver := fs.String("replica-set-resolver", "", "host:port of the DNS server for -replica-set-name (empty: the system resolver)")
	interval := fs.Duration("replica-set-interval", 0, "time between lookups of -replica-set-name (0: library default "+goaway.DefaultLookupInterval.String()+")")
	stable := fs.Duration("replica-set-stable-for", 0, "how long a grown set must be stable before rebalancing (0: library default "+goaway.DefaultStableFor.String()+")")
	window := fs.Duration("rebalance-window", 0, "time over which the GOAWAYs of one scale-out are spread (0: library default "+goaway.DefaultRebalanceWindow.String()+")")
	settle := fs.Duration("rebalance-settle", 0, "how long an episode goes on once back at the share, and the start-up grace (0: library default "+goaway.DefaultSettle.String()+")")
	rate := fs.Float64("rebalance-max-arrival-rate", 0, "reconnections per second a scale-out may bring to one replica (0: library default 1000)")
	return func() ([]grpcmgmt.Option, error) {
		if *name == "" {
			if *resolver != "" || *interval != 0 || *stable != 0 || *window != 0 || *settle != 0 || *rate != 0 {
				return nil, errors.New("-replica-set-resolver, -replica-set-interval, -replica-set-stable-for, -rebalance-window, -rebalance-settle and -rebalance-max-arrival-rate need -replica-set-name")
			}
			return nil, nil
		}
		cfg := goaway.RebalanceConfig{
			Name:           *name,
			Resolver:       *resolver,
			Interval:       *interval,
			StableFor:      *stable,
			Window:         *window,
			Settle:         *settle,
			MaxArrivalRate: *rate,
		}
		if err := cfg.Validate(); err != nil {
			return nil, flagError(err, map[string]string{
				"RebalanceConfig.Name":           "replica-set-name",
				"RebalanceConfig.Resolver":       "replica-set-resolver",
				"RebalanceConfig.Interval":       "replica-set-interval",
				"RebalanceConfig.StableFor":      "replica-set-stable-for",
				"RebalanceConfig.Window":         "rebalance-window",
				"RebalanceConfig.Settle":         "rebalance-settle",
				"RebalanceConfig.MaxArrivalRate": "rebalance-max-arrival-rate",
			})
		}
		return []grpcmgmt.Option{grpcmgmt.WithRebalance(cfg)}, nil
	}
}
