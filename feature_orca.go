package grpcmgmt

import (
	"github.com/grpcmgmt/grpcmgmt/orca"
)

// WithORCA configures the ORCA load reports (on by default with
// orca.Config{}'s defaults): a report in the trailer of each client
// connection's first unary call of every orca.Config.PerCallInterval
// (default 1s) and of every stream, and the out-of-band OpenRcaService, registered by
// Manager.Register, both fed by the shared load sampler, so
// weighted_round_robin clients send each replica traffic in proportion to
// its measured capacity. With WithLoadShed on and neither cfg.Limit nor
// cfg.Capacity set, application_utilization is the
// unary calls in flight over the Shedder's current limit (the lower of
// MaxInFlight and the adaptive limit); a Shedder with no concurrency limit
// leaves it at the CPU utilization or the sampler's queueing share
// (load.Snapshot.Queueing), whichever is higher. New returns
// orca.Config.Validate's error for an invalid cfg. Without(ORCA) turns the
// reports off.
func WithORCA(cfg orca.Config) Option {
	return func(s *settings) { s.orca = cfg }
}

// buildORCA builds the ORCA Reporter on the shared sampler. Call it after
// buildLoadShed.
func (m *Manager) buildORCA(s *settings) error {
	if !s.on(ORCA) {
		return nil
	}
	cfg := s.orca // filled in as a copy: an Option may configure several Managers
	if cfg.Limit == nil && cfg.Capacity == 0 && m.shedder != nil {
		// application_utilization is the calls in flight over the limit the
		// Shedder enforces now, so weighted_round_robin clients see the same
		// capacity the Shedder protects.
		sh := m.shedder
		cfg.Limit = orca.LimitFunc(func() int { return int(min(sh.Limit(), orca.MaxCapacity)) })
	}
	opts := []orca.Option{orca.WithLogger(m.log), orca.WithMeterProvider(s.meterProvider)}
	if m.tracker != nil {
		// Calls skip the per-connection lookup of the per-call report
		// once every connection has had its report (orca.WithConnections).
		opts = append(opts, orca.WithConnections(m.tracker))
	}
	r, err := orca.New(m.sampler, cfg, opts...)
	if err != nil {
		return err
	}
	m.orca = r
	return nil
}
