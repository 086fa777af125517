package main

import (
	"flag"

	"github.com/grpcmgmt/grpcmgmt"
	"github.com/grpcmgmt/grpcmgmt/maxage"
)

func init() { featureFlags = append(featureFlags, maxAgeFlags) }

func maxAgeFlags(fs *flag.FlagSet) func() ([]grpcmgmt.Option, error) {
	age := fs.Duration("max-connection-age", 0, "MAX_CONNECTION_AGE (0: library default "+maxage.DefaultMaxConnectionAge.String()+")")
	grace := fs.Duration("max-connection-age-grace", 0, "MAX_CONNECTION_AGE_GRACE (0: library default "+maxage.DefaultMaxConnectionAgeGrace.String()+")")
	idle := fs.Duration("max-connection-idle", 0, "MAX_CONNECTION_IDLE (0: library default "+maxage.DefaultMaxConnectionIdle.String()+")")
	return func() ([]grpcmgmt.Option, error) {
		cfg := maxage.Config{
			MaxConnectionAge:      *age,
			MaxConnectionAgeGrace: *grace,
			MaxConnectionIdle:     *idle,
		}
		if err := cfg.Validate(); err != nil {
			return nil, flagError(err, map[string]string{
				"maxage: MaxConnectionAge":      "max-connection-age",
				"maxage: MaxConnectionAgeGrace": "max-connection-age-grace",
				"maxage: MaxConnectionIdle":     "max-connection-idle",
			})
		}
		return []grpcmgmt.Option{grpcmgmt.WithMaxAge(cfg)}, nil
	}
}
