package grpcmgmt

import (
	"github.com/grpcmgmt/grpcmgmt/loadshed"
)

// WithLoadShed turns on load shedding (off by default) with cfg. The
// Manager fills cfg.Load, cfg.Logger and cfg.MeterProvider with its own when
// they are nil, so WithLoadShed(loadshed.Config{}) sheds on CPU over
// loadshed.DefaultCPUThreshold and on queueing over
// loadshed.DefaultQueueingThreshold of the shared sampler; add
// Adaptive: &loadshed.AdaptiveConfig{} for the adaptive concurrency limit.
// New returns loadshed.Config.Validate's error for an invalid cfg.
//
// Shedding is off by default because it turns latency into errors that only
// clients with a retry policy turn back into successes (on another
// backend), and the server cannot see its clients' service config: turn it
// on together with the client configuration of package clientconfig
// (clientconfig.RoundRobin retries shed calls on another replica).
func WithLoadShed(cfg loadshed.Config) Option {
	return func(s *settings) { s.loadShed, s.enabled[LoadShed] = cfg, true }
}

// buildLoadShed builds the Shedder on the shared sampler.
func (m *Manager) buildLoadShed(s *settings) error {
	if !s.on(LoadShed) {
		return nil
	}
	cfg := s.loadShed // filled in as a copy: an Option may configure several Managers
	if cfg.Load == nil {
		cfg.Load = m.sampler
	}
	// On the Manager's own sampler, the Shedder counts the unary calls it
	// admits in the sampler's counter, and the Manager's interceptor does
	// not count them again: one in-flight count a call for every lever.
	cfg.SharedCount = cfg.SharedCount || cfg.Load == m.sampler
	m.shedCounts = cfg.Load == m.sampler
	m.shared(s, &cfg.Logger, &cfg.MeterProvider)
	sh, err := loadshed.New(cfg)
	if err != nil {
		return err
	}
	// Without a pushback trailer the Shedder rejects in the tap, before the
	// request is read (see loadshed.Config.Pushback).
	m.shedder, m.shedInTap = sh, cfg.Pushback == loadshed.Off
	m.shedHeader = cfg.ReadsHeader()
	return nil
}
