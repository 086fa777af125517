package grpcmgmt

import (
	"context"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/grpcmgmt/grpcmgmt/goaway"
	"github.com/grpcmgmt/grpcmgmt/health"
	"github.com/grpcmgmt/grpcmgmt/internal/component"
)

// WithHealth configures the health lever (on by default with
// health.Config{}'s defaults): the grpc.health.v1 service, registered by
// Manager.Register, whose status follows load and turns NOT_SERVING for the
// lame duck of Manager.Shutdown. New returns health.Config.Validate's error
// for an invalid cfg. Without("health") turns it off; Manager.Register then
// registers no health service.
//
// With a replica set (cfg.Peers), the guard reaches the peers with
// cfg.Peers.DialOptions; for a server built WithInsecure, insecure
// credentials are the default. When fair-share rebalancing (WithRebalance)
// watches the same DNS name at the same resolver, the guard shares its
// lookups (made at the rebalancer's Interval) instead of making its own.
func WithHealth(cfg health.Config) Option {
	return setFeature(healthFactory(cfg))
}

func defaultHealth() health.Config { return health.Config{} }

func healthFactory(cfg health.Config) *component.Factory {
	return &component.Factory{
		Name:  "health",
		Order: orderHealth,
		New: func(h *component.Host) (component.Component, error) {
			cfg := cfg // the factory is shared by every Manager: fill in a copy
			if cfg.Logger == nil {
				cfg.Logger = h.Logger
			}
			if cfg.MeterProvider == nil {
				cfg.MeterProvider = h.MeterProvider
			}
			if cfg.Peers.Name != "" || len(cfg.Peers.Addrs) > 0 || cfg.Peers.Watcher != nil {
				if len(cfg.Peers.DialOptions) == 0 && h.Insecure {
					cfg.Peers.DialOptions = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
				}
				if err := cfg.Validate(); err != nil {
					return nil, err
				}
			}
			// The guard shares the rebalancer's lookups of the same name.
			var view goaway.Watcher
			if c, ok := h.Find("rebalance"); ok && cfg.Peers.Name != "" {
				if rc, ok := c.(rebalanceComponent); ok {
					if view = rc.sharedView(cfg.Peers.Name, cfg.Peers.Resolver); view != nil {
						cfg.Peers.Watcher = view
						cfg.Peers.Name, cfg.Peers.Resolver, cfg.Peers.Interval = "", "", 0
					}
				}
			}
			r, err := health.New(h.Load, cfg)
			if err != nil {
				if view != nil {
					_ = view.Close()
				}
				return nil, err
			}
			return healthComponent{r: r}, nil
		},
		Config: cfg,
	}
}

// Health returns the Manager's health Reporter, for the application's own
// status (Reporter.SetStatus) and for the health.Server it publishes to; nil
// when the health feature is off.
func (m *Manager) Health() *health.Reporter {
	for _, c := range m.components {
		if hc, ok := c.(healthComponent); ok {
			return hc.r
		}
	}
	return nil
}

// healthComponent adapts health.Reporter to the component interfaces.
type healthComponent struct{ r *health.Reporter }

func (healthComponent) Parts() component.Parts { return component.Parts{} }

func (c healthComponent) Register(s grpc.ServiceRegistrar) error { return c.r.Register(s) }

func (c healthComponent) BeginDrain(context.Context) time.Duration { return c.r.BeginDrain() }

func (c healthComponent) Close() error { return c.r.Close() }
