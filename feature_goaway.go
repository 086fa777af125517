package grpcmgmt

import (
	"github.com/grpcmgmt/grpcmgmt/goaway"
	"github.com/grpcmgmt/grpcmgmt/internal/component"
	"github.com/grpcmgmt/grpcmgmt/load"
)

// WithGoAway configures per-connection GOAWAY (on by default with the zero
// configs' defaults): a goaway.Tracker that wraps the server's transport
// credentials, and a goaway.Policy that moves connections away while the
// server is overloaded. A zero cfg.Grace means the maxage grace (when
// maxage is on), else goaway.DefaultGrace; a zero cfg.Logger or
// cfg.MeterProvider means the Manager's. New returns the validation error
// of either config. Without("goaway") turns both off; policy.Off keeps the
// Tracker and turns only the policy off.
//
// The Tracker sees connections only through the credentials the Manager
// passes to grpc.Creds: give yours with WithCredentials, not grpc.Creds
// (a grpc.Creds after the Manager's options would replace the wrapped
// credentials, and no connection could be sent a GOAWAY). Without a
// Manager, wrap them yourself: grpc.Creds(tracker.WrapCredentials(creds)).
func WithGoAway(cfg goaway.Config, policy goaway.PolicyConfig) Option {
	return setFeature(goAwayFactory(cfg, policy))
}

func defaultGoAway() (goaway.Config, goaway.PolicyConfig) {
	return goaway.Config{}, goaway.PolicyConfig{}
}

func goAwayFactory(cfg goaway.Config, policy goaway.PolicyConfig) *component.Factory {
	return &component.Factory{
		Name:  "goaway",
		Order: orderGoAway,
		New: func(h *component.Host) (component.Component, error) {
			cfg := cfg // the factory is shared by every Manager: fill in a copy
			if cfg.Grace == 0 && h.MaxAgeGrace > 0 {
				cfg.Grace = h.MaxAgeGrace
			}
			if cfg.Logger == nil {
				cfg.Logger = h.Logger
			}
			if cfg.MeterProvider == nil {
				cfg.MeterProvider = h.MeterProvider
			}
			t, err := goaway.NewTracker(cfg)
			if err != nil {
				return nil, err
			}
			p, err := goaway.NewPolicy(t, h.Load, policy)
			if err != nil {
				return nil, err
			}
			calls := h.Load.Calls()
			// Every sample, check that the calls served came through the
			// wrapped credentials (see goaway.Tracker.Audit).
			audit := h.Load.OnSample(func(load.Snapshot) { t.Audit(calls.Started()) })
			return &goAwayComponent{tracker: t, policy: p, audit: audit}, nil
		},
		Config: cfg,
	}
}

// goAwayComponent adapts the goaway Tracker and Policy to the component
// contract.
type goAwayComponent struct {
	tracker *goaway.Tracker
	policy  *goaway.Policy
	audit   func() // cancels the Tracker's audit on each sample
}

func (c *goAwayComponent) Parts() component.Parts {
	return component.Parts{WrapCredentials: c.tracker.WrapCredentials, Stream: c.tracker.StreamServerInterceptor()}
}

func (c *goAwayComponent) Close() error {
	c.audit()
	return c.policy.Close()
}

// DrainConnections sends a GOAWAY (reason drain) to every connection, for
// the lame duck of Manager.Shutdown; the tracker closes connections whose
// clients ignore it at the end of the grace.
func (c *goAwayComponent) DrainConnections() int { return c.tracker.GoAwayAll(goaway.ReasonDrain) }

// GoAwayTracker returns the Tracker of the goaway feature, to list the
// server's connections and send GOAWAY to some of them (GoAway, GoAwayN,
// GoAwayAll), or nil when the feature is off.
func (m *Manager) GoAwayTracker() *goaway.Tracker {
	for _, c := range m.components {
		if g, ok := c.(*goAwayComponent); ok {
			return g.tracker
		}
	}
	return nil
}
