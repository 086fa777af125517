package goaway

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"go.opentelemetry.io/otel/metric/noop"

	"github.com/grpcmgmt/grpcmgmt/load"
)

// TestPolicyEntersOnQueueing: with the CPU idle, the sampler's queueing
// state alone puts the policy in its overloaded state, and it leaves only
// once queueing is no longer high, sample by sample on sample times.
func TestPolicyEntersOnQueueing(t *testing.T) {
	tr, err := NewTracker(Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), MeterProvider: noop.NewMeterProvider()})
	if err != nil {
		t.Fatal(err)
	}
	p := &Policy{t: tr, conns: tr, cfg: PolicyConfig{Cooldown: time.Second}.WithDefaults()}
	t0 := time.Unix(0, 0)
	for i, st := range []struct {
		s    load.Snapshot
		want bool
	}{
		{load.Snapshot{CPU: 0.1, Queueing: 0.3}, false},
		{load.Snapshot{CPU: 0.1, Queueing: 0.7, QueueingHigh: true}, true},
		{load.Snapshot{CPU: 0.1, Queueing: 0.3, QueueingHigh: true}, true}, // the sampler's hysteresis
		{load.Snapshot{CPU: 0.1, Queueing: 0.2}, false},
		{load.Snapshot{CPU: 0.1, Queueing: 0.7, QueueingHigh: true}, false}, // cooldown
	} {
		st.s.At = t0.Add(time.Duration(i) * 250 * time.Millisecond)
		p.onSample(st.s)
		if got := p.Overloaded(); got != st.want {
			t.Fatalf("sample %d (queueing high %v, CPU %.1f): overloaded %v, want %v", i, st.s.QueueingHigh, st.s.CPU, got, st.want)
		}
	}
}
