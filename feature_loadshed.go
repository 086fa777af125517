package grpcmgmt

import (
	"github.com/grpcmgmt/grpcmgmt/internal/component"
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
// on together with the client retry config in the loadshed documentation.
func WithLoadShed(cfg loadshed.Config) Option {
	return setFeature(loadShedFactory(cfg))
}

func loadShedFactory(cfg loadshed.Config) *component.Factory {
	return &component.Factory{
		Name:  "loadshed",
		Order: orderLoadShed,
		New: func(h *component.Host) (component.Component, error) {
			cfg := cfg // the factory is shared by every Manager: fill in a copy
			if cfg.Load == nil {
				cfg.Load = h.Load
			}
			if cfg.Logger == nil {
				cfg.Logger = h.Logger
			}
			if cfg.MeterProvider == nil {
				cfg.MeterProvider = h.MeterProvider
			}
			s, err := loadshed.New(cfg)
			if err != nil {
				return nil, err
			}
			return loadShedComponent{s: s, tap: cfg.Pushback == loadshed.Off}, nil
		},
		Config: cfg,
	}
}

// loadShedComponent adapts a *loadshed.Shedder to component.Component and
// component.Closer.
type loadShedComponent struct {
	s   *loadshed.Shedder
	tap bool // the Shedder rejects in the tap (no pushback configured)
}

func (c loadShedComponent) Parts() component.Parts {
	p := component.Parts{
		Unary:  c.s.UnaryServerInterceptor(),
		Stream: c.s.StreamServerInterceptor(),
	}
	if c.tap {
		p.Tap = c.s.TapHandle()
	}
	return p
}

func (c loadShedComponent) Close() error { return c.s.Close() }
