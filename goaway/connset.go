package goaway

import (
	"errors"
	"log/slog"
	"math/rand/v2"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"

	"github.com/grpcmgmt/grpcmgmt/load"
)

// ConnSet is the set of connections the policies act on: a Tracker in a
// server, a simulated replica's connections in a fleet simulation, which
// drives the same decision code (RebalanceDecider, NewPolicyOn) on a
// simulated clock.
type ConnSet interface {
	// Active returns the number of connections that are not draining.
	Active() int
	// GoAwayOlder sends a GOAWAY to up to n connections that are not
	// draining and at least minAge old (0: any age), chosen by sel, and
	// returns how many it sent.
	GoAwayOlder(n int, sel Selector, r Reason, minAge time.Duration) int
}

var _ ConnSet = (*Tracker)(nil)

// GoAwayOlder is GoAwayN among the connections at least minAge old: a
// connection younger than that (a client that just reconnected, perhaps
// to this same server) is spared.
func (t *Tracker) GoAwayOlder(n int, sel Selector, r Reason, minAge time.Duration) int {
	return t.goAwayN(n, sel, r, minAge)
}

// DecisionOptions are where a decider driven from outside a server
// (NewRebalanceDecider, NewPolicyOn) logs, records its metrics and draws
// its jitter. The zero value means slog.Default(), otel.GetMeterProvider()
// and math/rand/v2's global source.
type DecisionOptions struct {
	// Logger receives the decisions' logs. A simulation of many replicas
	// passes slog.New(slog.DiscardHandler).
	Logger *slog.Logger
	// MeterProvider records the decisions' metrics.
	MeterProvider metric.MeterProvider
	// Rand draws the jitter of the rebalancer's rounds and its random
	// rounding; a seeded source makes a simulation repeatable.
	Rand *rand.Rand
}

func (o DecisionOptions) withDefaults() DecisionOptions {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MeterProvider == nil {
		o.MeterProvider = otel.GetMeterProvider()
	}
	return o
}

// NewPolicyOn returns a load Policy that acts on conns and decides on the
// snapshots passed to its Decide method, on their clock (Snapshot.At),
// instead of subscribing to a sampler: the decisions of NewPolicy's
// Policy, driven from outside a server (a fleet simulation). Logs and
// metrics go to opts.
func NewPolicyOn(conns ConnSet, cfg PolicyConfig, opts DecisionOptions) (*Policy, error) {
	if conns == nil {
		return nil, errors.New("goaway: NewPolicyOn: ConnSet must not be nil")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	// A Tracker with no connections carries the logger and the instruments
	// the Policy records its decisions with; the rounds act on conns.
	t, err := NewTracker(Config{Logger: opts.Logger, MeterProvider: opts.MeterProvider})
	if err != nil {
		return nil, err
	}
	return &Policy{t: t, conns: conns, cfg: cfg.WithDefaults()}, nil
}

// Decide makes the Policy's decision on one load sample, as a sampler's
// subscription does: enter or leave the overloaded state, and while
// overloaded send a round of GOAWAYs when Interval has passed. It is for a
// Policy made by NewPolicyOn; a Policy made by NewPolicy decides on its
// sampler's samples already. A Policy that is Off or closed does nothing.
func (p *Policy) Decide(s load.Snapshot) {
	if p.cfg.Off {
		return
	}
	p.onSample(s)
}
