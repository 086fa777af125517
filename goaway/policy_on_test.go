package goaway_test

import (
	"log/slog"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/grpcmgmt/grpcmgmt/goaway"
	"github.com/grpcmgmt/grpcmgmt/load"
)

// TestPolicyOn drives the load Policy's decisions with snapshots on an
// injected clock, acting on a ConnSet: it enters at CPUEnter, sends
// Fraction of the active connections (at least one, MinAge passed to the
// set) once per Interval, leaves at CPUExit, and stays quiet for Cooldown.
func TestPolicyOn(t *testing.T) {
	conns := &fakeConns{active: 50}
	m, logs := newMeter(), &logRecorder{}
	p, err := goaway.NewPolicyOn(conns, goaway.PolicyConfig{}, goaway.DecisionOptions{Logger: slog.New(logs), MeterProvider: m})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	t0 := time.Unix(1_700_000_000, 0)
	sample := func(secs, cpu float64) int {
		before := conns.sent()
		p.Decide(load.Snapshot{At: t0.Add(time.Duration(secs * float64(time.Second))), CPU: cpu})
		return conns.sent() - before
	}
	steps := []struct {
		secs, cpu float64
		sent      int
		why       string
	}{
		{0, 0.5, 0, "below CPUEnter"},
		{0.5, 0.95, 5, "entered: 10 % of 50"},
		{1.0, 0.95, 0, "within Interval of the last round"},
		{1.5, 0.95, 4, "10 % of 45"},
		{2.0, 0.80, 0, "between exit and enter: still overloaded, within Interval"},
		{2.5, 0.80, 4, "still overloaded: 10 % of 41"},
		{3.0, 0.70, 0, "left at CPUExit"},
		{5.0, 0.99, 0, "within Cooldown (10 s)"},
		{13.5, 0.99, 3, "after Cooldown: entered again, 10 % of 37"},
	}
	for _, s := range steps {
		if got := sample(s.secs, s.cpu); got != s.sent {
			t.Fatalf("at %vs, CPU %v: sent %d, want %d (%s)", s.secs, s.cpu, got, s.sent, s.why)
		}
	}
	for _, a := range conns.minAges {
		if a != goaway.DefaultMinAge {
			t.Fatalf("rounds asked for connections at least %v old, want MinAge %v", a, goaway.DefaultMinAge)
		}
	}
	if got := m.sum(t, "grpcmgmt.goaway.policy_transitions", attribute.String("state", "overloaded")); got != 2 {
		t.Fatalf("policy_transitions{overloaded} = %d, want 2", got)
	}
	if got := len(logs.find("goaway policy: load below exit thresholds")); got != 1 {
		t.Fatalf("logged leaving %d times, want once", got)
	}
	// A spell that lasts: one GOAWAY per connection active at its first
	// round, then nothing until the load falls below the exit threshold,
	// logged and counted once.
	busy := &fakeConns{active: 30, comeBack: func(sent int) int { return sent }}
	pb, err := goaway.NewPolicyOn(busy, goaway.PolicyConfig{}, goaway.DecisionOptions{Logger: slog.New(logs), MeterProvider: m})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 60 {
		pb.Decide(load.Snapshot{At: t0.Add(time.Duration(i) * time.Second), CPU: 1})
	}
	if got := busy.sent(); got != 30 {
		t.Fatalf("a minute overloaded with 30 connections that come back: sent %d, want 30 (one each)", got)
	}
	if got := m.sum(t, "grpcmgmt.goaway.policy_transitions", attribute.String("state", "budget_spent")); got != 1 {
		t.Fatalf("policy_transitions{budget_spent} = %d, want 1", got)
	}
	pb.Decide(load.Snapshot{At: t0.Add(61 * time.Second), CPU: 0.5})
	pb.Decide(load.Snapshot{At: t0.Add(80 * time.Second), CPU: 1})
	if got := busy.sent(); got != 33 {
		t.Fatalf("a new spell after the cooldown sent %d, want 3 more (10 %% of 30)", got-30)
	}

	one := &fakeConns{active: 1}
	p1, err := goaway.NewPolicyOn(one, goaway.PolicyConfig{}, goaway.DecisionOptions{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	p1.Decide(load.Snapshot{At: t0, CPU: 1})
	if one.sent() != 1 {
		t.Fatalf("a server with one connection sent %d GOAWAYs when overloaded, want 1 (at least one)", one.sent())
	}
	off, err := goaway.NewPolicyOn(one, goaway.PolicyConfig{Off: true}, goaway.DecisionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	off.Decide(load.Snapshot{At: t0.Add(time.Minute), CPU: 1})
	if one.sent() != 1 {
		t.Fatal("a Policy that is Off sent a GOAWAY")
	}
	if _, err := goaway.NewPolicyOn(nil, goaway.PolicyConfig{}, goaway.DecisionOptions{}); err == nil {
		t.Fatal("NewPolicyOn(nil) did not fail")
	}
}
