package grpcmgmt

import (
	"google.golang.org/grpc"

	"github.com/grpcmgmt/grpcmgmt/internal/component"
	"github.com/grpcmgmt/grpcmgmt/orca"
)

// WithORCA configures the ORCA load reports (on by default with
// orca.Config{}'s defaults): a report in the trailer of one unary call in
// orca.Config.PerCallEvery (default 8) and of every stream, and the
// out-of-band OpenRcaService, registered by Manager.Register, both fed by the
// shared load sampler, so weighted_round_robin clients send each replica
// traffic in proportion to its measured capacity. With WithLoadShed on and
// neither cfg.Limit nor cfg.Capacity set, application_utilization is the
// unary calls in flight over the Shedder's current limit (the lower of
// MaxInFlight and the adaptive limit); a Shedder with no concurrency limit
// leaves it at the CPU utilization, or, while the sampler's queueing is
// high, its queueing share (load.Snapshot.Queueing) when that is higher. New returns
// orca.Config.Validate's error for an invalid cfg. Without("orca") turns the
// reports off.
func WithORCA(cfg orca.Config) Option {
	return setFeature(orcaFactory(cfg))
}

func defaultORCA() orca.Config { return orca.Config{} }

func orcaFactory(cfg orca.Config) *component.Factory {
	return &component.Factory{
		Name:  "orca",
		Order: orderORCA,
		New: func(h *component.Host) (component.Component, error) {
			cfg := cfg // the factory is shared by every Manager: fill in a copy
			if cfg.Limit == nil && cfg.Capacity == 0 {
				// With shedding on, application_utilization is the calls in
				// flight over the limit the Shedder enforces now, so
				// weighted_round_robin clients see the same capacity the
				// Shedder protects (loadshed builds before orca).
				if c, ok := h.Find("loadshed"); ok {
					s := c.(loadShedComponent).s // built by loadShedFactory
					cfg.Limit = orca.LimitFunc(func() int { return int(min(s.Limit(), orca.MaxCapacity)) })
				}
			}
			r, err := orca.New(h.Load, cfg, orca.WithLogger(h.Logger), orca.WithMeterProvider(h.MeterProvider))
			if err != nil {
				return nil, err
			}
			return orcaComponent{r: r}, nil
		},
		Config: cfg,
	}
}

// orcaComponent installs grpc-go's per-call option among the server options
// (so its interceptor wraps the whole chain) and the Reporter's interceptors
// at orderORCA, after shedding and the call counter, so shed calls count
// neither as calls in flight nor towards qps.
type orcaComponent struct{ r *orca.Reporter }

func (c orcaComponent) Parts() component.Parts {
	return component.Parts{
		ServerOptions: []grpc.ServerOption{c.r.CallMetricsServerOption()},
		Unary:         c.r.UnaryServerInterceptor(),
		Stream:        c.r.StreamServerInterceptor(),
	}
}

func (c orcaComponent) Register(s grpc.ServiceRegistrar) error { return c.r.Register(s) }

func (c orcaComponent) Close() error { return c.r.Close() }
