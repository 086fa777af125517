package goaway

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// rebalanceMetrics are the Rebalancer's instruments (the GOAWAYs it sends
// are counted by the Tracker, reason "rebalance").
type rebalanceMetrics struct {
	lookups   metric.Int64Counter // grpcmgmt.goaway.replica_set.lookups{outcome}
	size      metric.Int64Gauge   // grpcmgmt.goaway.replica_set.size
	decisions metric.Int64Counter // grpcmgmt.goaway.rebalance.decisions{decision,replicas.before,replicas.after}
}

func newRebalanceMetrics(mp metric.MeterProvider) (*rebalanceMetrics, error) {
	m := mp.Meter(meterName)
	lookups, err1 := m.Int64Counter("grpcmgmt.goaway.replica_set.lookups", metric.WithUnit("{lookup}"),
		metric.WithDescription("Lookups of the replica set, by outcome (ok, error, empty); error and empty change nothing."))
	size, err2 := m.Int64Gauge("grpcmgmt.goaway.replica_set.size", metric.WithUnit("{replica}"),
		metric.WithDescription("Size of the replica set as last confirmed by lookups."))
	decisions, err3 := m.Int64Counter("grpcmgmt.goaway.rebalance.decisions", metric.WithUnit("{decision}"),
		metric.WithDescription("Replica set changes and what the rebalancer did: rebalance (grown: GOAWAYs follow), remembered (grown back to a size seen recently: nothing), shrink (nothing), with the set sizes before and after."))
	for _, err := range []error{err1, err2, err3} {
		if err != nil {
			return nil, err
		}
	}
	return &rebalanceMetrics{lookups: lookups, size: size, decisions: decisions}, nil
}

// outcomes are the lookups counter's attribute sets, built once: a lookup
// is recorded every Interval on every replica.
var outcomes = map[string]metric.AddOption{
	"ok":    metric.WithAttributeSet(attribute.NewSet(attribute.String("outcome", "ok"))),
	"error": metric.WithAttributeSet(attribute.NewSet(attribute.String("outcome", "error"))),
	"empty": metric.WithAttributeSet(attribute.NewSet(attribute.String("outcome", "empty"))),
}

func (m *rebalanceMetrics) lookup(outcome string) {
	m.lookups.Add(context.Background(), 1, outcomes[outcome])
}

func (m *rebalanceMetrics) setSize(n int) { m.size.Record(context.Background(), int64(n)) }

func (m *rebalanceMetrics) decide(decision string, before, after int) {
	m.decisions.Add(context.Background(), 1, metric.WithAttributes(
		attribute.String("decision", decision),
		attribute.Int("replicas.before", before),
		attribute.Int("replicas.after", after)))
}
