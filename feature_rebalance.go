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
	// The DNS lookups go through a SharedWatcher, so that the health guard
	// watching the same name (health.Peers.Name) shares them.
	cfg := s.rebalance // filled in as a copy: an Option may configure several Managers
	var (
		shared *goaway.SharedWatcher
		dns    goaway.DNSWatcherConfig
	)
	if cfg.Watcher == nil {
		dns = goaway.DNSWatcherConfig{Name: cfg.Name, Resolver: cfg.Resolver, Interval: cfg.Interval}
		w, err := goaway.NewDNSWatcher(dns)
		if err != nil {
			return err
		}
		shared = goaway.NewSharedWatcher(w)
		cfg.Watcher = shared.View()
		cfg.Name, cfg.Resolver, cfg.Interval = "", "", 0
	}
	r, err := goaway.NewRebalancer(m.tracker, cfg)
	if err != nil {
		if shared != nil {
			_ = cfg.Watcher.Close()
		}
		return err
	}
	m.rebalancer, m.replicaSet, m.replicaSetDNS = r, shared, dns
	return nil
}

// replicaSetView returns a view of the rebalancer's replica set lookups if
// they are of name at resolver, and nil otherwise.
func (m *Manager) replicaSetView(name, resolver string) goaway.Watcher {
	if m.replicaSet == nil || m.replicaSetDNS.Name != name || m.replicaSetDNS.Resolver != resolver {
		return nil
	}
	return m.replicaSet.View()
}
