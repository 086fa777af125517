package grpcmgmt

import (
	"time"

	"github.com/grpcmgmt/grpcmgmt/maxage"
)

// WithMaxAge sets the connection age policy (on by default with
// maxage.Config{}'s defaults). New returns maxage.Config.Validate's error
// for an invalid cfg. Without(MaxAge) turns the policy off and leaves
// grpc-go's own keepalive defaults.
func WithMaxAge(cfg maxage.Config) Option {
	return func(s *settings) { s.maxAge = cfg }
}

// buildMaxAge validates the age policy and keeps its keepalive parameters
// for ServerOptions.
func (m *Manager) buildMaxAge(s *settings) error {
	if !s.on(MaxAge) {
		return nil
	}
	if err := s.maxAge.Validate(); err != nil {
		return err
	}
	sp, ep := s.maxAge.ServerParameters(), s.maxAge.EnforcementPolicy()
	m.keepalive, m.enforcement = &sp, &ep
	return nil
}

// maxAgeGrace is the grace of the age policy, or 0 when it is off: the
// default grace of the other levers that send GOAWAY. Call it after
// buildMaxAge.
func (m *Manager) maxAgeGrace() time.Duration {
	if m.keepalive == nil {
		return 0
	}
	return m.keepalive.MaxConnectionAgeGrace
}
