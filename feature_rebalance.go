package grpcmgmt

import (
	"errors"

	"github.com/grpcmgmt/grpcmgmt/goaway"
)

// WithRebalance turns on fair-share rebalancing (off by default: it needs
// the name of the replica set): the server watches its replica set (cfg.Name,
// in Kubernetes the headless Service's DNS name) and, when the set grows
// from N to M replicas and stays grown, sends GOAWAY to 1 − N/M of its
// connections, spread over cfg.Window, so that the new replicas get their
// share in seconds instead of after MAX_CONNECTION_AGE. See
// goaway.Rebalancer and docs/rebalancing.md.
//
//	grpcmgmt.WithRebalance(goaway.RebalanceConfig{Name: "svc.ns.svc.cluster.local."})
//
// It sends its GOAWAYs through the goaway lever (on by default); New
// returns an error if that lever is turned off, and
// goaway.RebalanceConfig.Validate's error for an invalid cfg. Logs and
// metrics go to the Manager's logger and meter provider.
func WithRebalance(cfg goaway.RebalanceConfig) Option {
	return func(s *settings) { s.rebalance, s.enabled[Rebalance] = cfg, true }
}

// buildRebalance starts the Rebalancer on goaway's Tracker. Call it after
// buildGoAway.
func (m *Manager) buildRebalance(s *settings) error {
	if !s.on(Rebalance) {
		return nil
	}
	if err := s.rebalance.Validate(); err != nil {
		return err
	}
	if m.tracker == nil {
		return errors.New(`grpcmgmt: WithRebalance needs the goaway lever (it sends the GOAWAYs through its Tracker): ` +
			`do not turn it off with Without("goaway")`)
	}
	r, err := goaway.NewRebalancer(m.tracker, s.rebalance)
	if err != nil {
		return err
	}
	m.rebalancer = r
	return nil
}
