package loadshed

import (
	"context"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// meterName is the package import path, as every grpcmgmt lever uses.
const meterName = "github.com/grpcmgmt/grpcmgmt/loadshed"

// instruments are asynchronous: the call path only adds to atomics, and the
// callback reads them when the metrics are collected, so an exporter costs
// the call path nothing.
type instruments struct {
	reg metric.Registration
}

func newInstruments(mp metric.MeterProvider, s *Shedder) (*instruments, error) {
	m := mp.Meter(meterName)
	admittedC, err := m.Int64ObservableCounter("grpcmgmt.loadshed.admitted",
		metric.WithUnit("{call}"), metric.WithDescription("Calls admitted, by priority."))
	if err != nil {
		return nil, err
	}
	shedC, err := m.Int64ObservableCounter("grpcmgmt.loadshed.shed",
		metric.WithUnit("{call}"), metric.WithDescription("Calls shed, by the limit that shed them (reason) and priority."))
	if err != nil {
		return nil, err
	}
	limitG, err := m.Int64ObservableGauge("grpcmgmt.loadshed.limit",
		metric.WithUnit("{call}"), metric.WithDescription("Current concurrency limit for critical calls, by limit (static, adaptive)."))
	if err != nil {
		return nil, err
	}
	inFlightG, err := m.Int64ObservableUpDownCounter("grpcmgmt.loadshed.in_flight",
		metric.WithUnit("{call}"), metric.WithDescription("Calls admitted and not yet finished."))
	if err != nil {
		return nil, err
	}
	// The attribute sets are made at the first collection, not here: with
	// no MeterProvider set, or before one is, the callback never runs, and
	// a server keeps nothing for them (see shedError).
	observeOptions := sync.OnceValue(newObserveOpts)
	reg, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		opts := observeOptions()
		adm := s.admittedBy()
		for p := Priority(0); p < numPriorities; p++ {
			o.ObserveInt64(admittedC, int64(adm[p]), opts.prio[p])
			for r := reasonStatic; r < numReasons; r++ {
				o.ObserveInt64(shedC, int64(s.shed[r][p].Load()), opts.shed[r][p])
			}
		}
		if s.static[Critical] > 0 {
			o.ObserveInt64(limitG, int64(s.static[Critical]), opts.static)
		}
		if s.adaptive != nil {
			o.ObserveInt64(limitG, s.adaptive.limit.Load(), opts.adaptive)
		}
		o.ObserveInt64(inFlightG, s.InFlight())
		return nil
	}, admittedC, shedC, limitG, inFlightG)
	if err != nil {
		return nil, err
	}
	return &instruments{reg: reg}, nil
}

// observeOpts are the attribute sets of the instruments' observations.
type observeOpts struct {
	prio             [numPriorities]metric.ObserveOption
	shed             [numReasons][numPriorities]metric.ObserveOption
	static, adaptive metric.ObserveOption
}

func newObserveOpts() *observeOpts {
	o := new(observeOpts)
	for p := Priority(0); p < numPriorities; p++ {
		o.prio[p] = metric.WithAttributes(attribute.String("priority", p.String()))
		for r := reasonStatic; r < numReasons; r++ {
			o.shed[r][p] = metric.WithAttributes(attribute.String("reason", reasonNames[r]), attribute.String("priority", p.String()))
		}
	}
	o.static = metric.WithAttributes(attribute.String("limit", "static"))
	o.adaptive = metric.WithAttributes(attribute.String("limit", "adaptive"))
	return o
}

func (i *instruments) close() { _ = i.reg.Unregister() }
