package orca

import (
	"log/slog"
	"math"
	"testing"
	"time"

	"go.opentelemetry.io/otel/metric/noop"

	"github.com/grpcmgmt/grpcmgmt/load"
)

// Without a limit, application_utilization is the CPU, or the queueing
// share when higher and its delay is at least the sampler's
// QueueingMinDelay (1 ms); with a limit, the calls in flight over it.
func TestAppUtilizationQueueing(t *testing.T) {
	s, err := load.NewSampler(load.Config{CPU: load.SourceFunc(func() (float64, error) { return 0, nil }),
		Memory: load.SourceFunc(func() (float64, error) { return 0, nil }), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const ms, us = time.Millisecond, time.Microsecond
	for _, c := range []struct {
		cfg  Config
		snap load.Snapshot
		want float64
	}{
		{Config{}, load.Snapshot{CPU: 0.3, Queueing: 0.1, Latency: 10 * ms, NoLoadLatency: 9 * ms, QueueingPastMinDelay: true}, 0.3},
		{Config{}, load.Snapshot{CPU: 0.1, Queueing: 0.6, Latency: 20 * ms, NoLoadLatency: 8 * ms, QueueingPastMinDelay: true}, 0.6}, // not high, but a queue all the same
		{Config{}, load.Snapshot{CPU: 0.1, Queueing: 0.8, QueueingHigh: true, Latency: 20 * ms, NoLoadLatency: 4 * ms, QueueingPastMinDelay: true}, 0.8},
		{Config{}, load.Snapshot{CPU: 0.9, Queueing: 0.8, QueueingHigh: true, Latency: 20 * ms, NoLoadLatency: 4 * ms, QueueingPastMinDelay: true}, 0.9},
		// Twice and a half the no-load latency, by 120 µs: no queue.
		{Config{}, load.Snapshot{CPU: 0.1, Queueing: 0.6, Latency: 200 * us, NoLoadLatency: 80 * us}, 0.1},
		{Config{Capacity: 4}, load.Snapshot{CPU: 0.1, Queueing: 0.8, QueueingHigh: true, Latency: 20 * ms, NoLoadLatency: 4 * ms, QueueingPastMinDelay: true}, 0}, // no call in flight
	} {
		r, err := New(s, c.cfg, WithLogger(slog.New(slog.DiscardHandler)), WithMeterProvider(noop.NewMeterProvider()))
		if err != nil {
			t.Fatal(err)
		}
		c.snap.At = time.Now()
		r.onSample(c.snap)
		if got := r.ServerMetrics().AppUtilization; math.Abs(got-c.want) > 1e-9 {
			t.Errorf("%+v, CPU %.1f queueing %.1f: application_utilization %v, want %v", c.cfg, c.snap.CPU, c.snap.Queueing, got, c.want)
		}
		_ = r.Close()
	}
}
