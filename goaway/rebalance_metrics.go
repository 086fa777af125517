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
	rounds    metric.Int64Counter // grpcmgmt.goaway.rebalance.rounds{limit}
}

func newRebalanceMetrics(mp metric.MeterProvider) (*rebalanceMetrics, error) {
	m := mp.Meter(meterName)
	lookups, err1 := m.Int64Counter("grpcmgmt.goaway.replica_set.lookups", metric.WithUnit("{lookup}"),
		metric.WithDescription("Lookups of the replica set, by outcome (ok, error, empty); error and empty change nothing."))
	size, err2 := m.Int64Gauge("grpcmgmt.goaway.replica_set.size", metric.WithUnit("{replica}"),
		metric.WithDescription("Size of the replica set as last confirmed by lookups."))
	decisions, err3 := m.Int64Counter("grpcmgmt.goaway.rebalance.decisions", metric.WithUnit("{decision}"),
		metric.WithDescription("Replica set changes and what the rebalancer did: rebalance (grown: GOAWAYs follow), remembered (grown back to a size seen recently: nothing), startup (grown within Settle of this server's first answer: taken as the starting point), shrink (nothing), with the set sizes before and after."))
	rounds, err4 := m.Int64Counter("grpcmgmt.goaway.rebalance.rounds", metric.WithUnit("{round}"),
		metric.WithDescription("Rounds of rebalancing episodes, by what bounded the round's GOAWAYs: excess (sent all above the target), target (at the target, within the tolerance: nothing), round (the per-round cap), rate (MaxArrivalRate, the reconnection budget), budget (the episode's)."))
	for _, err := range []error{err1, err2, err3, err4} {
		if err != nil {
			return nil, err
		}
	}
	return &rebalanceMetrics{lookups: lookups, size: size, decisions: decisions, rounds: rounds}, nil
}

// limits are the rounds counter's attribute sets, built once.
var limits = func() map[string]metric.AddOption {
	out := map[string]metric.AddOption{}
	for _, l := range []string{"excess", "target", "round", "rate", "budget"} {
		out[l] = metric.WithAttributeSet(attribute.NewSet(attribute.String("limit", l)))
	}
	return out
}()

func (m *rebalanceMetrics) round(limit string) { m.rounds.Add(context.Background(), 1, limits[limit]) }

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
