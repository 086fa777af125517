package goaway

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// meterName is the instrumentation scope of every instrument here.
const meterName = "github.com/grpcmgmt/grpcmgmt/goaway"

type metrics struct {
	sentC       metric.Int64Counter       // grpcmgmt.goaway.sent{reason}
	suppressedC metric.Int64Counter       // grpcmgmt.goaway.suppressed{reason}
	hardCloses  metric.Int64Counter       // grpcmgmt.goaway.hard_closes
	conns       metric.Int64UpDownCounter // grpcmgmt.goaway.connections
	age         metric.Float64Histogram   // grpcmgmt.goaway.connection_age{drained}
	transitions metric.Int64Counter       // grpcmgmt.goaway.policy_transitions{state}
	untrackedC  metric.Int64Counter       // grpcmgmt.goaway.untracked_calls
	drainedC    metric.Int64Counter       // grpcmgmt.goaway.drained_streams{reason,ended}
}

func newMetrics(mp metric.MeterProvider) (*metrics, error) {
	m := mp.Meter(meterName)
	var (
		out metrics
		err error
		e   error
	)
	keep := func(x error) {
		if err == nil {
			err = x
		}
	}
	out.sentC, e = m.Int64Counter("grpcmgmt.goaway.sent", metric.WithUnit("{goaway}"),
		metric.WithDescription("GOAWAY frames inserted on server connections, by reason."))
	keep(e)
	out.suppressedC, e = m.Int64Counter("grpcmgmt.goaway.suppressed", metric.WithUnit("{goaway}"),
		metric.WithDescription("GOAWAYs requested but not inserted because grpc-go had sent its own on the connection, by reason."))
	keep(e)
	out.hardCloses, e = m.Int64Counter("grpcmgmt.goaway.hard_closes", metric.WithUnit("{connection}"),
		metric.WithDescription("Connections closed because the client had not closed them by the end of the grace period after a GOAWAY."))
	keep(e)
	out.conns, e = m.Int64UpDownCounter("grpcmgmt.goaway.connections", metric.WithUnit("{connection}"),
		metric.WithDescription("Live server connections."))
	keep(e)
	out.age, e = m.Float64Histogram("grpcmgmt.goaway.connection_age", metric.WithUnit("s"),
		metric.WithDescription("Age of server connections when they closed; drained says whether a GOAWAY had been requested."),
		metric.WithExplicitBucketBoundaries(0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600))
	keep(e)
	out.transitions, e = m.Int64Counter("grpcmgmt.goaway.policy_transitions", metric.WithUnit("{transition}"),
		metric.WithDescription("Load policy state changes, by the state entered."))
	keep(e)
	out.untrackedC, e = m.Int64Counter("grpcmgmt.goaway.untracked_calls", metric.WithUnit("{call}"),
		metric.WithDescription("Calls served on connections the Tracker never saw (its credentials were replaced by a later grpc.Creds): GOAWAY cannot reach them."))
	keep(e)
	out.drainedC, e = m.Int64Counter("grpcmgmt.goaway.drained_streams", metric.WithUnit("{stream}"),
		metric.WithDescription("Streams that ended while their connection was draining, by drain reason: ended=cut when the server closed the connection under it (end of the grace, hard stop), ended=handler otherwise."))
	keep(e)
	return &out, err
}

var (
	drainedTrue  = metric.WithAttributeSet(attribute.NewSet(attribute.Bool("drained", true)))
	drainedFalse = metric.WithAttributeSet(attribute.NewSet(attribute.Bool("drained", false)))
)

func reasonAttr(r Reason) metric.MeasurementOption {
	return metric.WithAttributes(attribute.String("reason", string(r)))
}

func (m *metrics) sent(r Reason)     { m.sentC.Add(context.Background(), 1, reasonAttr(r)) }
func (m *metrics) suppress(r Reason) { m.suppressedC.Add(context.Background(), 1, reasonAttr(r)) }
func (m *metrics) hardClose()        { m.hardCloses.Add(context.Background(), 1) }
func (m *metrics) connOpened()       { m.conns.Add(context.Background(), 1) }

func (m *metrics) connClosed(age time.Duration, drained bool) {
	m.conns.Add(context.Background(), -1)
	opt := drainedFalse
	if drained {
		opt = drainedTrue
	}
	m.age.Record(context.Background(), age.Seconds(), opt)
}

func (m *metrics) drainedStream(r Reason, cut bool) {
	ended := "handler"
	if cut {
		ended = "cut"
	}
	m.drainedC.Add(context.Background(), 1, metric.WithAttributes(attribute.String("reason", string(r)), attribute.String("ended", ended)))
}

func (m *metrics) transition(state string) {
	m.transitions.Add(context.Background(), 1, metric.WithAttributes(attribute.String("state", state)))
}
