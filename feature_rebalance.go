package grpcmgmt

import (
	"errors"

	"github.com/grpcmgmt/grpcmgmt/goaway"
	"github.com/grpcmgmt/grpcmgmt/internal/component"
)

// orderRebalance builds the rebalancer after the goaway component, whose
// Tracker it sends GOAWAYs through. It adds no interceptor.
const orderRebalance = orderGoAway + 1

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
// It sends its GOAWAYs through the goaway feature (on by default); New
// returns an error if that feature is turned off, and
// goaway.RebalanceConfig.Validate's error for an invalid cfg. Logs and
// metrics go to the Manager's logger and meter provider.
func WithRebalance(cfg goaway.RebalanceConfig) Option {
	return setFeature(rebalanceFactory(cfg))
}

func rebalanceFactory(cfg goaway.RebalanceConfig) *component.Factory {
	return &component.Factory{
		Name:  "rebalance",
		Order: orderRebalance,
		New: func(h *component.Host) (component.Component, error) {
			if err := cfg.Validate(); err != nil {
				return nil, err
			}
			c, ok := h.Find("goaway")
			g, isGoAway := c.(*goAwayComponent)
			if !ok || !isGoAway {
				return nil, errors.New(`grpcmgmt: WithRebalance needs the goaway feature (it sends the GOAWAYs): do not turn it off with Without("goaway")`)
			}
			// The DNS lookups go through a SharedWatcher, so that the
			// health guard watching the same name (health.Peers.Name)
			// shares them.
			cfg := cfg // the factory is shared by every Manager: fill in a copy
			var (
				shared *goaway.SharedWatcher
				dns    goaway.DNSWatcherConfig
			)
			if cfg.Watcher == nil {
				dns = goaway.DNSWatcherConfig{Name: cfg.Name, Resolver: cfg.Resolver, Interval: cfg.Interval}
				w, err := goaway.NewDNSWatcher(dns)
				if err != nil {
					return nil, err
				}
				shared = goaway.NewSharedWatcher(w)
				cfg.Watcher = shared.View()
				cfg.Name, cfg.Resolver, cfg.Interval = "", "", 0
			}
			r, err := goaway.NewRebalancer(g.tracker, cfg)
			if err != nil {
				if cfg.Watcher != nil && shared != nil {
					_ = cfg.Watcher.Close()
				}
				return nil, err
			}
			return rebalanceComponent{r: r, shared: shared, dns: dns}, nil
		},
		Config: cfg,
	}
}

// rebalanceComponent adapts a goaway.Rebalancer to the component contract:
// it contributes no server option, and Close stops the watcher.
type rebalanceComponent struct {
	r      *goaway.Rebalancer
	shared *goaway.SharedWatcher   // the DNS lookups of dns; nil with a Watcher of the user's
	dns    goaway.DNSWatcherConfig // what shared looks up
}

// sharedView returns a view of the rebalancer's replica set lookups if they
// are of name at resolver, and nil otherwise.
func (c rebalanceComponent) sharedView(name, resolver string) goaway.Watcher {
	if c.shared == nil || c.dns.Name != name || c.dns.Resolver != resolver {
		return nil
	}
	return c.shared.View()
}

func (rebalanceComponent) Parts() component.Parts { return component.Parts{} }

func (c rebalanceComponent) Close() error { return c.r.Close() }
