package grpcmgmt

import (
	"github.com/grpcmgmt/grpcmgmt/goaway"
	"github.com/grpcmgmt/grpcmgmt/load"
)

// WithGoAway configures per-connection GOAWAY (on by default with the zero
// configs' defaults): a goaway.Tracker that wraps the server's transport
// credentials, and a goaway.Policy that moves connections away while the
// server is overloaded. A zero cfg.Grace means the maxage grace (when
// maxage is on), else goaway.DefaultGrace; a zero cfg.Logger or
// cfg.MeterProvider means the Manager's. New returns the validation error
// of either config. Without(GoAway) turns both off; policy.Off keeps the
// Tracker and turns only the policy off.
//
// The Tracker sees connections only through the credentials the Manager
// passes to grpc.Creds: give yours with WithCredentials, not grpc.Creds
// (a grpc.Creds after the Manager's options would replace the wrapped
// credentials, and no connection could be sent a GOAWAY). Without a
// Manager, wrap them yourself: grpc.Creds(tracker.WrapCredentials(creds)).
func WithGoAway(cfg goaway.Config, policy goaway.PolicyConfig) Option {
	return func(s *settings) { s.goAway, s.policy = cfg, policy }
}

// buildGoAway builds the Tracker and the load Policy, and subscribes the
// Tracker's audit to the sampler. Call it after buildMaxAge.
func (m *Manager) buildGoAway(s *settings) error {
	if !s.on(GoAway) {
		return nil
	}
	cfg := s.goAway
	if cfg.Grace == 0 {
		cfg.Grace = m.maxAgeGrace() // 0 (goaway's default) when maxage is off
	}
	m.shared(s, &cfg.Logger, &cfg.MeterProvider)
	t, err := goaway.NewTracker(cfg)
	if err != nil {
		return err
	}
	p, err := goaway.NewPolicy(t, m.sampler, s.policy)
	if err != nil {
		return err
	}
	m.tracker, m.policy = t, p
	calls := m.sampler.Calls()
	// Every sample, check that the calls served came through the wrapped
	// credentials (see goaway.Tracker.Audit).
	m.stopAudit = m.sampler.OnSample(func(load.Snapshot) { t.Audit(calls.Started()) })
	return nil
}

// GoAwayTracker returns the Tracker of the goaway lever, to list the
// server's connections and send GOAWAY to some of them (GoAway, GoAwayN,
// GoAwayAll), or nil when the lever is off.
func (m *Manager) GoAwayTracker() *goaway.Tracker { return m.tracker }
