package goaway_test

import (
	"context"
	"log/slog"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"

	"github.com/grpcmgmt/grpcmgmt/goaway"
	"github.com/grpcmgmt/grpcmgmt/load"
)

// logRecorder is a slog.Handler that keeps every record, for asserting on
// what the policy decided and when.
type logRecorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecorder) WithGroup(string) slog.Handler            { return l }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	l.recs = append(l.recs, r.Clone())
	l.mu.Unlock()
	return nil
}

// find returns the records whose message starts with prefix, each as a map
// of its attributes.
func (l *logRecorder) find(prefix string) []map[string]slog.Value {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]slog.Value
	for _, r := range l.recs {
		if !strings.HasPrefix(r.Message, prefix) {
			continue
		}
		m := map[string]slog.Value{"level": slog.StringValue(r.Level.String())}
		r.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value; return true })
		out = append(out, m)
	}
	return out
}

// cpuReading is the injected CPU utilization: a 95 % CPU cannot be made
// real here, so the test sets it through load.Source, the interface
// production readings use.
type cpuReading struct{ bits atomic.Uint64 }

func (c *cpuReading) set(v float64)          { c.bits.Store(math.Float64bits(v)) }
func (c *cpuReading) Read() (float64, error) { return math.Float64frombits(c.bits.Load()), nil }

// TestPolicyMovesABoundedFraction drives the policy with an injected CPU
// reading against 30 real connections: it enters at the enter threshold,
// moves at most 10 % (at least one) per interval, never every connection,
// leaves below the exit threshold, and stays quiet for the cooldown even
// when the CPU rises again.
func TestPolicyMovesABoundedFraction(t *testing.T) {
	const (
		conns    = 30
		interval = 100 * time.Millisecond
		cooldown = 400 * time.Millisecond
	)
	cpu := &cpuReading{}
	sampler, err := load.NewSampler(load.Config{Period: 10 * time.Millisecond, TimeConstant: 10 * time.Millisecond, CPU: cpu})
	if err != nil {
		t.Fatal(err)
	}
	defer sampler.Close()
	logs := &logRecorder{}
	m := newMeter()
	tr := newTracker(t, goaway.Config{Logger: slog.New(logs), MeterProvider: m})
	p, err := goaway.NewPolicy(tr, sampler, goaway.PolicyConfig{Interval: interval, Cooldown: cooldown, MinAge: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	addr, _ := startServer(t, grpc.Creds(tr.WrapCredentials(insecure.NewCredentials())))
	for range conns {
		c := testgrpc.NewTestServiceClient(dial(t, addr, insecure.NewCredentials()))
		if _, err := c.EmptyCall(context.Background(), &testgrpc.Empty{}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "connections", func() bool { return tr.Len() == conns })

	cpu.set(0.85) // between exit and enter: nothing happens
	time.Sleep(100 * time.Millisecond)
	if p.Overloaded() || tr.Active() != conns {
		t.Fatalf("acted below the enter threshold: overloaded=%v active=%d", p.Overloaded(), tr.Active())
	}
	cpu.set(0.95)
	waitFor(t, 5*time.Second, "three rounds", func() bool { return len(logs.find("goaway policy: round")) >= 3 })
	cpu.set(0.5)
	waitFor(t, 5*time.Second, "policy to stop", func() bool { return !p.Overloaded() })
	cpu.set(0.95) // during the cooldown: must wait
	waitFor(t, 5*time.Second, "policy to enter again", func() bool { return p.Overloaded() })
	exits, enters := logs.find("goaway policy: load below"), logs.find("goaway policy: overloaded")
	if len(exits) != 1 || len(enters) != 2 {
		t.Fatalf("%d exits and %d entries logged, want 1 and 2", len(exits), len(enters))
	}
	if d := enters[1]["at"].Time().Sub(exits[0]["at"].Time()); d < cooldown {
		t.Fatalf("entered again %v after leaving (sample time), before the %v cooldown", d, cooldown)
	}
	cpu.set(0)
	waitFor(t, 5*time.Second, "policy to stop", func() bool { return !p.Overloaded() })
	_ = p.Close()

	rounds := logs.find("goaway policy: round")
	var last time.Time
	var total int64
	for i, r := range rounds {
		active, sent := r["active"].Int64(), r["sent"].Int64()
		limit := max(1, int64(0.1*float64(active)))
		if sent > limit || (active > 0 && sent < 1) {
			t.Fatalf("round %d: sent %d of %d active, want 1..%d", i, sent, active, limit)
		}
		if active > 1 && sent >= active {
			t.Fatalf("round %d: every connection moved at once", i)
		}
		at := r["at"].Time()
		// Rounds are an interval apart (across the two overloaded periods
		// the cooldown, longer, separates them).
		if !last.IsZero() && at.Sub(last) < interval {
			t.Fatalf("round %d only %v after the previous one", i, at.Sub(last))
		}
		last = at
		total += sent
	}
	// A GOAWAY is counted when written, which on an idle connection happens
	// on its own goroutine just after the round returns.
	load := func() int64 { return m.sum(t, "grpcmgmt.goaway.sent", attribute.String("reason", "load")) }
	waitFor(t, 5*time.Second, "every GOAWAY counted", func() bool { return load() >= total })
	if got := load(); got != total {
		t.Fatalf("sent{load} = %d, rounds logged %d", got, total)
	}
	states := logs.find("goaway policy: ")
	var infos int
	for _, s := range states {
		if s["level"].String() == "INFO" {
			infos++
		}
	}
	if infos != 4 {
		t.Fatalf("%d info records for state changes, want 4 (enter, exit, enter, exit)", infos)
	}
	if got := m.sum(t, "grpcmgmt.goaway.policy_transitions", attribute.String("state", "overloaded")); got != 2 {
		t.Fatalf("policy_transitions{overloaded} = %d, want 2", got)
	}
}

// TestPolicyInFlight: the in-flight threshold alone triggers the policy,
// counted by the sampler's real call counter.
func TestPolicyInFlight(t *testing.T) {
	sampler, err := load.NewSampler(load.Config{Period: 10 * time.Millisecond, TimeConstant: 10 * time.Millisecond,
		CPU: load.SourceFunc(func() (float64, error) { return 0, nil })})
	if err != nil {
		t.Fatal(err)
	}
	defer sampler.Close()
	tr := newTracker(t, goaway.Config{Logger: slog.New(slog.DiscardHandler)})
	p, err := goaway.NewPolicy(tr, sampler, goaway.PolicyConfig{InFlightEnter: 100, Interval: 50 * time.Millisecond, Cooldown: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	calls := sampler.Calls()
	for range 100 {
		calls.Begin()
	}
	waitFor(t, 5*time.Second, "overloaded by in-flight calls", p.Overloaded)
	for range 30 { // 70 in flight: below the exit threshold (3/4 of 100)
		calls.End(false)
	}
	waitFor(t, 5*time.Second, "back to normal", func() bool { return !p.Overloaded() })
	for range 70 {
		calls.End(false)
	}
}

// TestPolicySparesYoungConnections: connections younger than MinAge are
// never sent away, however overloaded the server is.
func TestPolicySparesYoungConnections(t *testing.T) {
	cpu := &cpuReading{}
	sampler, err := load.NewSampler(load.Config{Period: 10 * time.Millisecond, TimeConstant: 10 * time.Millisecond, CPU: cpu})
	if err != nil {
		t.Fatal(err)
	}
	defer sampler.Close()
	logs := &logRecorder{}
	tr := newTracker(t, goaway.Config{Logger: slog.New(logs)})
	p, err := goaway.NewPolicy(tr, sampler, goaway.PolicyConfig{Interval: 10 * time.Millisecond, MinAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	addr, _ := startServer(t, grpc.Creds(tr.WrapCredentials(insecure.NewCredentials())))
	for range 3 {
		dial(t, addr, insecure.NewCredentials()).Connect()
	}
	waitFor(t, 5*time.Second, "connections", func() bool { return tr.Len() == 3 })
	// Overloaded only now: a spell's budget is one GOAWAY per connection
	// active at its first round, so a first round before the connections
	// were up (a slow machine) spent the budget at 0 and no round followed.
	cpu.set(0.99)
	waitFor(t, 5*time.Second, "five rounds", func() bool { return len(logs.find("goaway policy: round")) >= 5 })
	if !p.Overloaded() || tr.Active() != 3 {
		t.Fatalf("overloaded=%v, active=%d: young connections were moved", p.Overloaded(), tr.Active())
	}
}

func TestPolicyConfigValidate(t *testing.T) {
	bad := []struct {
		field string
		cfg   goaway.PolicyConfig
	}{
		{"CPUEnter", goaway.PolicyConfig{CPUEnter: -1}},
		{"CPUEnter", goaway.PolicyConfig{CPUEnter: 5}},
		{"CPUExit", goaway.PolicyConfig{CPUEnter: 0.5, CPUExit: 0.6}},
		{"InFlightEnter", goaway.PolicyConfig{InFlightEnter: -1}},
		{"InFlightExit", goaway.PolicyConfig{InFlightEnter: 10, InFlightExit: 10}},
		{"Fraction", goaway.PolicyConfig{Fraction: 0.9}},
		{"Interval", goaway.PolicyConfig{Interval: time.Millisecond}},
		{"Cooldown", goaway.PolicyConfig{Cooldown: -time.Second}},
		{"Selector", goaway.PolicyConfig{Selector: 9}},
		{"MinAge", goaway.PolicyConfig{MinAge: 2 * time.Hour}},
	}
	for _, b := range bad {
		err := b.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), b.field) {
			t.Errorf("Validate(%+v) = %v, want an error naming %s", b.cfg, err, b.field)
		}
	}
	if err := (goaway.PolicyConfig{}).Validate(); err != nil {
		t.Errorf("zero config: %v", err)
	}
}
