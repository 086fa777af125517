package grpcmgmt

import (
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/grpcmgmt/grpcmgmt/goaway"
	"github.com/grpcmgmt/grpcmgmt/health"
)

// WithHealth configures the health lever (on by default with
// health.Config{}'s defaults): the grpc.health.v1 service, registered by
// Manager.Register, whose status follows load and turns NOT_SERVING for the
// lame duck of Manager.Shutdown. New returns health.Config.Validate's error
// for an invalid cfg. Without(Health) turns it off; Manager.Register then
// registers no health service.
//
// With a replica set (cfg.Peers), the guard reaches the peers with
// cfg.Peers.DialOptions; for a server built WithInsecure, insecure
// credentials are the default. When fair-share rebalancing (WithRebalance)
// watches the same DNS name at the same resolver, the guard shares its
// lookups (made at the rebalancer's Interval) instead of making its own.
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
	if cfg.Peers.Name != "" || len(cfg.Peers.Addrs) > 0 || cfg.Peers.Watcher != nil {
		if len(cfg.Peers.DialOptions) == 0 && s.credsBy == "WithInsecure" {
			cfg.Peers.DialOptions = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
		}
		if err := cfg.Validate(); err != nil {
			return err
		}
	}
	// The guard shares the rebalancer's lookups of the same name.
	var view goaway.Watcher
	if cfg.Peers.Name != "" {
		if view = m.replicaSetView(cfg.Peers.Name, cfg.Peers.Resolver); view != nil {
			cfg.Peers.Watcher = view
			cfg.Peers.Name, cfg.Peers.Resolver, cfg.Peers.Interval = "", "", 0
		}
	}
	r, err := health.New(m.sampler, cfg)
	if err != nil {
		if view != nil {
			_ = view.Close()
		}
		return err
	}
	m.health = r
	return nil
}

// Health returns the Manager's health Reporter, for the application's own
// status (Reporter.SetStatus) and for the health.Server it publishes to; nil
// when the health lever is off.
func (m *Manager) Health() *health.Reporter { return m.health }
