package health

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// meterName is the instrumentation scope of the package's metrics.
const meterName = "github.com/grpcmgmt/grpcmgmt/health"

// Reasons of load decisions (grpcmgmt.health.load_decisions) besides
// ReasonLoad, ReasonRelease and ReasonFleet.
const (
	reasonSuppressed = "cooldown"   // overloaded during a cooldown: stays SERVING (no replica set)
	reasonWant       = "want"       // overloaded for Hold: asks the replica set for a slot
	reasonWithdrawn  = "withdrawn"  // recovered before a slot was free
	reasonShareUp    = "share_up"   // out of rotation and still overloaded: a larger share turned away
	reasonShareDown  = "share_down" // out of rotation and below the exit thresholds: a smaller share (a probe)
)

// Decisions of the guard (grpcmgmt.health.guard_decisions).
const (
	guardGranted     = "granted"      // wanted out, and the set could spare this replica
	guardFleetNeeded = "fleet_needed" // wanted out, but the set needed this replica: stays SERVING
	guardRecalled    = "recalled"     // out, and the set needs this replica back
	guardNotInSet    = "not_in_set"   // wanted out, but this replica is not among the members
)

// metrics are the package's OpenTelemetry instruments:
//
//   - grpcmgmt.health.flips (counter): published status changes, by service,
//     reason (load, max_time, fleet, drain, app) and direction (serving,
//     not_serving);
//   - grpcmgmt.health.load_decisions (counter): decisions of the load
//     policy, by reason (load, max_time, fleet, cooldown, want, withdrawn,
//     share_up, share_down) and direction;
//   - grpcmgmt.health.guard_decisions (counter): decisions of the guard on a
//     round of Checks of the replica set, by decision (granted,
//     fleet_needed, recalled, not_in_set);
//   - grpcmgmt.health.status (gauge): the published status per service, 1
//     for SERVING, 0 otherwise;
//   - grpcmgmt.health.removed_share (gauge): the share of Watch streams
//     turned NOT_SERVING for load;
//   - grpcmgmt.health.watch_streams (gauge): Watch streams of the services
//     that follow load, by service and status (serving, not_serving);
//   - grpcmgmt.health.peers (gauge): what the guard's last round saw of the
//     other replicas, by state (serving, wanting_out, out, unreachable).
type metrics struct {
	flips     metric.Int64Counter
	decisions metric.Int64Counter
	guards    metric.Int64Counter
	reg       metric.Registration
}

// observation is what the gauges read, taken under the Reporter's lock.
type observation struct {
	statuses map[string]Status
	share    float64
	streams  map[string][2]int64 // service -> serving, not serving
	tally    tally
	tallied  bool
	latRatio float64 // 0: not compared
}

func newMetrics(mp metric.MeterProvider, observe func() observation) (*metrics, error) {
	meter := mp.Meter(meterName)
	m := &metrics{}
	var err error
	if m.flips, err = meter.Int64Counter("grpcmgmt.health.flips",
		metric.WithDescription("Changes of the published grpc.health.v1 status, by service, reason and direction."),
		metric.WithUnit("{flip}")); err != nil {
		return nil, err
	}
	if m.decisions, err = meter.Int64Counter("grpcmgmt.health.load_decisions",
		metric.WithDescription("Decisions of the load policy: out of rotation or back (load, max_time, fleet), a share changed (share_up, share_down), asking the replica set for a slot (want, withdrawn), or staying SERVING during a cooldown (cooldown)."),
		metric.WithUnit("{decision}")); err != nil {
		return nil, err
	}
	if m.guards, err = meter.Int64Counter("grpcmgmt.health.guard_decisions",
		metric.WithDescription("Decisions of the outage guard on a round of Checks of the replica set: granted, fleet_needed (wanted out, but the set needed this replica), recalled, not_in_set."),
		metric.WithUnit("{decision}")); err != nil {
		return nil, err
	}
	status, err := meter.Int64ObservableGauge("grpcmgmt.health.status",
		metric.WithDescription("Published grpc.health.v1 status per service: 1 SERVING, 0 otherwise."),
		metric.WithUnit("1"))
	if err != nil {
		return nil, err
	}
	share, err := meter.Float64ObservableGauge("grpcmgmt.health.removed_share",
		metric.WithDescription("Share of the Watch streams of the services that follow load answered NOT_SERVING for load."),
		metric.WithUnit("1"))
	if err != nil {
		return nil, err
	}
	streams, err := meter.Int64ObservableGauge("grpcmgmt.health.watch_streams",
		metric.WithDescription("Watch streams of the services that follow load, by service and the status they see."),
		metric.WithUnit("{stream}"))
	if err != nil {
		return nil, err
	}
	peers, err := meter.Int64ObservableGauge("grpcmgmt.health.peers",
		metric.WithDescription("Other replicas of the set by state, as the outage guard's last round of Checks saw them."),
		metric.WithUnit("{replica}"))
	if err != nil {
		return nil, err
	}
	ratio, err := meter.Float64ObservableGauge("grpcmgmt.health.latency_ratio",
		metric.WithDescription("This replica's mean call latency ÷ the median of its peers' (Peers.LatencyEnter), at the last load sample; absent while either is unknown."),
		metric.WithUnit("1"))
	if err != nil {
		return nil, err
	}
	m.reg, err = meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		ob := observe()
		for service, st := range ob.statuses {
			v := int64(0)
			if st == Serving {
				v = 1
			}
			o.ObserveInt64(status, v, metric.WithAttributes(attribute.String("service", service)))
		}
		o.ObserveFloat64(share, ob.share)
		for service, n := range ob.streams {
			o.ObserveInt64(streams, n[0], metric.WithAttributes(attribute.String("service", service), attribute.String("status", "serving")))
			o.ObserveInt64(streams, n[1], metric.WithAttributes(attribute.String("service", service), attribute.String("status", "not_serving")))
		}
		if ob.tallied {
			for _, p := range []struct {
				state string
				n     int
			}{{"serving", ob.tally.serving}, {"wanting_out", ob.tally.wanting}, {"out", ob.tally.out}, {"unreachable", ob.tally.unreachable}} {
				o.ObserveInt64(peers, int64(p.n), metric.WithAttributes(attribute.String("state", p.state)))
			}
		}
		if ob.latRatio > 0 {
			o.ObserveFloat64(ratio, ob.latRatio)
		}
		return nil
	}, status, share, streams, peers, ratio)
	if err != nil {
		return nil, err
	}
	return m, nil
}

func direction(st Status) string {
	if st == Serving {
		return "serving"
	}
	return "not_serving"
}

func (m *metrics) flip(service, reason string, to Status) {
	m.flips.Add(context.Background(), 1, metric.WithAttributes(
		attribute.String("service", service),
		attribute.String("reason", reason),
		attribute.String("direction", direction(to))))
}

func (m *metrics) decision(reason string, serving bool) {
	st := NotServing
	if serving {
		st = Serving
	}
	m.decisions.Add(context.Background(), 1, metric.WithAttributes(
		attribute.String("reason", reason),
		attribute.String("direction", direction(st))))
}

// guard counts a decision of the guard (what its round saw is logged with
// it, and exported by the peers gauge).
func (m *metrics) guard(decision string) {
	m.guards.Add(context.Background(), 1, metric.WithAttributes(attribute.String("decision", decision)))
}

func (m *metrics) close() error { return m.reg.Unregister() }
