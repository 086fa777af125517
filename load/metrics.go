package load

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// meterName is the instrumentation scope of every instrument here.
const meterName = "github.com/grpcmgmt/grpcmgmt/load"

// metrics publishes every signal of the latest Snapshot as an observable
// gauge (read at collection time, nothing on the call path), and counts
// failed source readings. Instrument names follow the Snapshot fields:
//
//	grpcmgmt.load.cpu, grpcmgmt.load.cpu_raw              utilization, 0..1
//	grpcmgmt.load.memory, grpcmgmt.load.memory_raw        utilization, 0..1
//	grpcmgmt.load.inflight, grpcmgmt.load.inflight_avg    calls
//	grpcmgmt.load.qps, grpcmgmt.load.qps_raw              calls/s
//	grpcmgmt.load.eps, grpcmgmt.load.eps_raw              failed calls/s
//	grpcmgmt.load.shed, grpcmgmt.load.shed_raw            calls refused for load/s
//	grpcmgmt.load.latency, grpcmgmt.load.no_load_latency   seconds
//	grpcmgmt.load.queueing                                share of latency, 0..1
//	grpcmgmt.load.queueing_high                           0 or 1
//	grpcmgmt.load.queueing_transitions{to}                counter: to "high" or "normal"
//	grpcmgmt.load.custom{source}                          Config.Sources
//	grpcmgmt.load.source_errors{source}                   counter
type metrics struct {
	reg              metric.Registration
	errors           metric.Int64Counter
	transitions      metric.Int64Counter
	toHigh, toNormal metric.AddOption
}

func newMetrics(mp metric.MeterProvider, s *Sampler) (*metrics, error) {
	m := mp.Meter(meterName)
	var errs []error
	gauge := func(name, unit, desc string) metric.Float64ObservableGauge {
		g, err := m.Float64ObservableGauge(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return g
	}
	cpu := gauge("grpcmgmt.load.cpu", "1", "CPU utilization of the process's allowance, smoothed.")
	cpuRaw := gauge("grpcmgmt.load.cpu_raw", "1", "CPU utilization of the process's allowance over the last period.")
	memory := gauge("grpcmgmt.load.memory", "1", "Memory utilization of the allowance, smoothed.")
	memoryRaw := gauge("grpcmgmt.load.memory_raw", "1", "Memory utilization of the allowance, last reading.")
	inflightAvg := gauge("grpcmgmt.load.inflight_avg", "{call}", "Calls in flight, smoothed.")
	qps := gauge("grpcmgmt.load.qps", "{call}/s", "Calls started per second, smoothed.")
	qpsRaw := gauge("grpcmgmt.load.qps_raw", "{call}/s", "Calls started per second over the last period.")
	eps := gauge("grpcmgmt.load.eps", "{call}/s", "Failed calls per second, smoothed.")
	epsRaw := gauge("grpcmgmt.load.eps_raw", "{call}/s", "Failed calls per second over the last period.")
	shed := gauge("grpcmgmt.load.shed", "{call}/s", "Calls refused for load (shed) per second, smoothed.")
	shedRaw := gauge("grpcmgmt.load.shed_raw", "{call}/s", "Calls refused for load (shed) per second over the last period.")
	custom := gauge("grpcmgmt.load.custom", "1", "Readings of the user's load sources, by source.")
	latency := gauge("grpcmgmt.load.latency", "s", "Mean latency of unary calls, smoothed.")
	noLoad := gauge("grpcmgmt.load.no_load_latency", "s", "Latency of unary calls without queueing (measured from calls that ran alone).")
	queueing := gauge("grpcmgmt.load.queueing", "1", "Share of the calls' latency spent queueing: 1 - no_load_latency/latency.")
	queueingHigh, err0 := m.Int64ObservableGauge("grpcmgmt.load.queueing_high", metric.WithUnit("1"),
		metric.WithDescription("1 while queueing is over its threshold (with hysteresis), else 0."))
	errs = append(errs, err0)
	inflight, err := m.Int64ObservableGauge("grpcmgmt.load.inflight", metric.WithUnit("{call}"),
		metric.WithDescription("Calls in flight at the last sample."))
	errs = append(errs, err)
	out := &metrics{}
	out.errors, err = m.Int64Counter("grpcmgmt.load.source_errors", metric.WithUnit("{error}"),
		metric.WithDescription("Failed readings of a load source, by source."))
	errs = append(errs, err)
	out.transitions, err = m.Int64Counter("grpcmgmt.load.queueing_transitions", metric.WithUnit("{transition}"),
		metric.WithDescription("Changes of the queueing state, by the state entered (to: high, normal)."))
	errs = append(errs, err)
	out.toHigh = metric.WithAttributeSet(attribute.NewSet(attribute.String("to", "high")))
	out.toNormal = metric.WithAttributeSet(attribute.NewSet(attribute.String("to", "normal")))
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	for _, r := range s.all {
		set := attribute.NewSet(attribute.String("source", r.name))
		r.observeOpt = metric.WithAttributeSet(set)
		r.addOpt = metric.WithAttributeSet(set)
	}
	customs := s.custom
	out.reg, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		snap := s.snap.Load()
		if snap.At.IsZero() {
			return nil // no sample yet: report nothing rather than zeros
		}
		o.ObserveFloat64(cpu, snap.CPU)
		o.ObserveFloat64(cpuRaw, snap.CPURaw)
		o.ObserveFloat64(memory, snap.Memory)
		o.ObserveFloat64(memoryRaw, snap.MemoryRaw)
		o.ObserveInt64(inflight, snap.InFlight)
		o.ObserveFloat64(inflightAvg, snap.InFlightAvg)
		o.ObserveFloat64(qps, snap.QPS)
		o.ObserveFloat64(qpsRaw, snap.QPSRaw)
		o.ObserveFloat64(eps, snap.EPS)
		o.ObserveFloat64(epsRaw, snap.EPSRaw)
		o.ObserveFloat64(shed, snap.Shed)
		o.ObserveFloat64(shedRaw, snap.ShedRaw)
		o.ObserveFloat64(latency, snap.Latency.Seconds())
		o.ObserveFloat64(noLoad, snap.NoLoadLatency.Seconds())
		o.ObserveFloat64(queueing, snap.Queueing)
		high := int64(0)
		if snap.QueueingHigh {
			high = 1
		}
		o.ObserveInt64(queueingHigh, high)
		for _, r := range customs {
			if v, ok := snap.Custom[r.name]; ok {
				o.ObserveFloat64(custom, v, r.observeOpt)
			}
		}
		return nil
	}, cpu, cpuRaw, memory, memoryRaw, inflight, inflightAvg, qps, qpsRaw, eps, epsRaw, shed, shedRaw, custom,
		latency, noLoad, queueing, queueingHigh)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// sourceError counts one failed reading of r.
func (m *metrics) sourceError(r *reading) {
	m.errors.Add(context.Background(), 1, r.addOpt)
}

// queueingTransition counts one change of the queueing state.
func (m *metrics) queueingTransition(high bool) {
	opt := m.toNormal
	if high {
		opt = m.toHigh
	}
	m.transitions.Add(context.Background(), 1, opt)
}

func (m *metrics) close() error { return m.reg.Unregister() }
