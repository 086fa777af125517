package grpcmgmt

import (
	"github.com/grpcmgmt/grpcmgmt/health"
)

// WithHealth configures the health lever (on by default with
// health.Config{}'s defaults): the grpc.health.v1 service, registered by
// Manager.Register, whose status follows load and turns NOT_SERVING for the
// lame duck of Manager.Shutdown. New returns health.Config.Validate's error
// for an invalid cfg. Without(Health) turns it off; Manager.Register then
// registers no health service.
func WithHealth(cfg health.Config) Option {
	return func(s *settings) { s.health = cfg }
}

// buildHealth builds the health Reporter on the shared sampler.
func (m *Manager) buildHealth(s *settings) error {
	if !s.on(Health) {
		return nil
	}
	cfg := s.health // filled in as a copy: an Option may configure several Managers
	m.shared(s, &cfg.Logger, &cfg.MeterProvider)
	r, err := health.New(m.sampler, cfg)
	if err != nil {
		return err
	}
	m.health = r
	return nil
}

// Health returns the Manager's health Reporter, for the application's own
// status (Reporter.SetStatus) and for the health.Server it publishes to; nil
// when the health lever is off.
func (m *Manager) Health() *health.Reporter { return m.health }
