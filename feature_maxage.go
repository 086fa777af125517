package grpcmgmt

import (
	"time"

	"google.golang.org/grpc/keepalive"

	"github.com/grpcmgmt/grpcmgmt/internal/component"
	"github.com/grpcmgmt/grpcmgmt/maxage"
)

// WithMaxAge sets the connection age policy (on by default with
// maxage.Config{}'s defaults). New returns maxage.Config.Validate's error
// for an invalid cfg. Without("maxage") turns the policy off and leaves
// grpc-go's own keepalive defaults.
func WithMaxAge(cfg maxage.Config) Option {
	return setFeature(maxAgeFactory(cfg))
}

func defaultMaxAge() maxage.Config { return maxage.Config{} }

func maxAgeFactory(cfg maxage.Config) *component.Factory {
	return &component.Factory{
		Name:  "maxage",
		Order: orderMaxAge,
		New: func(*component.Host) (component.Component, error) {
			if err := cfg.Validate(); err != nil {
				return nil, err
			}
			return maxAgeComponent{sp: cfg.ServerParameters(), ep: cfg.EnforcementPolicy()}, nil
		},
		// Config lets the Manager read the grace before building the levers
		// that reuse it.
		Config: cfg,
	}
}

type maxAgeComponent struct {
	sp keepalive.ServerParameters
	ep keepalive.EnforcementPolicy
}

func (c maxAgeComponent) Parts() component.Parts {
	sp, ep := c.sp, c.ep
	return component.Parts{Keepalive: &sp, Enforcement: &ep}
}

// maxAgeGrace is the grace of the configured age policy, or 0 when it is off
// or invalid (New reports the latter).
func (s *settings) maxAgeGrace() time.Duration {
	f := s.features["maxage"]
	if f == nil {
		return 0
	}
	cfg, ok := f.Config.(maxage.Config)
	if !ok || cfg.Validate() != nil {
		return 0
	}
	return cfg.WithDefaults().MaxConnectionAgeGrace
}
