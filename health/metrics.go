package health

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// meterName is the instrumentation scope of the package's metrics.
const meterName = "github.com/grpcmgmt/grpcmgmt/health"

// reasonSuppressed is the reason of a load decision not to turn NOT_SERVING
// because a cooldown is running.
const reasonSuppressed = "cooldown"

// metrics are the package's OpenTelemetry instruments:
//
//   - grpcmgmt.health.flips (counter): published status changes, by service,
//     reason (load, max_time, drain, app) and direction (serving,
//     not_serving);
//   - grpcmgmt.health.load_decisions (counter): decisions of the load
//     policy, by reason (load, max_time, cooldown) and direction; a
//     "cooldown" decision is an overload that was not allowed to turn the
//     server NOT_SERVING;
//   - grpcmgmt.health.status (gauge): the published status per service, 1
//     for SERVING, 0 otherwise.
type metrics struct {
	flips     metric.Int64Counter
	decisions metric.Int64Counter
	reg       metric.Registration
}

func newMetrics(mp metric.MeterProvider, observe func(func(string, Status))) (*metrics, error) {
	meter := mp.Meter(meterName)
	m := &metrics{}
	var err error
	if m.flips, err = meter.Int64Counter("grpcmgmt.health.flips",
		metric.WithDescription("Changes of the published grpc.health.v1 status, by service, reason and direction."),
		metric.WithUnit("{flip}")); err != nil {
		return nil, err
	}
	if m.decisions, err = meter.Int64Counter("grpcmgmt.health.load_decisions",
		metric.WithDescription("Decisions of the load policy: turn NOT_SERVING (load), SERVING (load, max_time), or stay SERVING during a cooldown (cooldown)."),
		metric.WithUnit("{decision}")); err != nil {
		return nil, err
	}
	gauge, err := meter.Int64ObservableGauge("grpcmgmt.health.status",
		metric.WithDescription("Published grpc.health.v1 status per service: 1 SERVING, 0 otherwise."),
		metric.WithUnit("1"))
	if err != nil {
		return nil, err
	}
	m.reg, err = meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		observe(func(service string, st Status) {
			v := int64(0)
			if st == Serving {
				v = 1
			}
			o.ObserveInt64(gauge, v, metric.WithAttributes(attribute.String("service", service)))
		})
		return nil
	}, gauge)
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

func (m *metrics) close() error { return m.reg.Unregister() }
