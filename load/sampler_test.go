package load_test

import (
	"errors"
	"io"
	"log/slog"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/metric/noop"

	"github.com/grpcmgmt/grpcmgmt/load"
)

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func constant(v float64) load.Source {
	return load.SourceFunc(func() (float64, error) { return v, nil })
}

// newSampler starts a fast Sampler with injected readings, closed at the
// end of the test.
func newSampler(t *testing.T, cfg load.Config) *load.Sampler {
	t.Helper()
	if cfg.Period == 0 {
		cfg.Period = 10 * time.Millisecond
	}
	if cfg.CPU == nil {
		cfg.CPU = constant(0)
	}
	if cfg.Memory == nil {
		cfg.Memory = constant(0)
	}
	if cfg.MeterProvider == nil {
		cfg.MeterProvider = noop.NewMeterProvider()
	}
	if cfg.Logger == nil {
		cfg.Logger = quiet()
	}
	s, err := load.NewSampler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConfigValidation(t *testing.T) {
	tests := []struct {
		name string
		cfg  load.Config
		want string // "" means valid
	}{
		{"zero value", load.Config{}, ""},
		{"period too short", load.Config{Period: time.Nanosecond}, "load: Period must be within 10ms..10s, got 1ns"},
		{"period negative", load.Config{Period: -time.Second}, "load: Period must be within 10ms..10s, got -1s"},
		{"period too long", load.Config{Period: time.Minute}, "load: Period must be within 10ms..10s, got 1m0s"},
		{"time constant below period", load.Config{Period: time.Second, TimeConstant: 500 * time.Millisecond},
			"load: TimeConstant must be within Period (1s)..1m0s, got 500ms"},
		{"time constant too long", load.Config{TimeConstant: time.Hour}, "load: TimeConstant must be within Period (250ms)..1m0s, got 1h0m0s"},
		{"long period, default time constant", load.Config{Period: 5 * time.Second}, ""},
		{"queueing enter off", load.Config{QueueingEnter: load.Off}, ""},
		{"queueing enter too high", load.Config{QueueingEnter: 1},
			"load: QueueingEnter must be within 0.05..0.99 or load.Off (0 means 0.75), got 1"},
		{"queueing enter NaN", load.Config{QueueingEnter: math.NaN()},
			"load: QueueingEnter must be within 0.05..0.99 or load.Off (0 means 0.75), got NaN"},
		{"queueing enter Inf", load.Config{QueueingEnter: math.Inf(1)},
			"load: QueueingEnter must be within 0.05..0.99 or load.Off (0 means 0.75), got +Inf"},
		{"queueing exit above enter", load.Config{QueueingEnter: 0.4, QueueingExit: 0.6},
			"load: QueueingExit must be above 0 and below QueueingEnter (0.4) (0 means two thirds of it), got 0.6"},
		{"queueing exit NaN", load.Config{QueueingExit: math.NaN()},
			"load: QueueingExit must be above 0 and below QueueingEnter (0.75) (0 means two thirds of it), got NaN"},
		{"queueing exit negative", load.Config{QueueingExit: -0.1},
			"load: QueueingExit must be above 0 and below QueueingEnter (0.75) (0 means two thirds of it), got -0.1"},
		{"queueing min delay negative", load.Config{QueueingMinDelay: -time.Millisecond},
			"load: QueueingMinDelay must be within 1µs..10s (0 means 1ms), got -1ms"},
		{"no-load window too short", load.Config{NoLoadWindow: time.Second},
			"load: NoLoadWindow must be within 8×Period (2s)..24h0m0s (0 means 5m0s), got 1s"},
		{"nil source", load.Config{Sources: map[string]load.Source{"queue": nil}}, `load: Sources["queue"] must not be nil`},
		{"empty name", load.Config{Sources: map[string]load.Source{"": constant(1)}}, "load: Sources: name must not be empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if got := errString(err); got != tt.want {
				t.Errorf("Validate() = %q, want %q", got, tt.want)
			}
			tt.cfg.MeterProvider, tt.cfg.Logger = noop.NewMeterProvider(), quiet()
			s, err := load.NewSampler(tt.cfg)
			if got := errString(err); got != tt.want {
				t.Errorf("NewSampler() error = %q, want %q", got, tt.want)
			}
			if s != nil {
				_ = s.Close()
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestInjectedReadings(t *testing.T) {
	s := newSampler(t, load.Config{
		CPU:    constant(0.95),
		Memory: constant(0.5),
		Sources: map[string]load.Source{
			"queue": constant(0.7),
			"pool":  load.SourceFunc(func() (float64, error) { return 0, errors.New("pool stats unavailable") }),
		},
	})
	if at := s.Snapshot().At; !at.IsZero() {
		t.Fatalf("Snapshot before the first sample has At %v, want zero", at)
	}
	waitFor(t, "the first sample", 5*time.Second, func() bool { return !s.Snapshot().At.IsZero() })
	sn := s.Snapshot()
	if sn.CPU != 0.95 || sn.CPURaw != 0.95 || sn.Memory != 0.5 || sn.MemoryRaw != 0.5 {
		t.Errorf("CPU %v raw %v, memory %v raw %v; want 0.95, 0.95, 0.5, 0.5", sn.CPU, sn.CPURaw, sn.Memory, sn.MemoryRaw)
	}
	if len(sn.Custom) != 1 || sn.Custom["queue"] != 0.7 {
		t.Errorf("Custom = %v, want map[queue:0.7] (the failing pool absent)", sn.Custom)
	}
	if s.Period() != 10*time.Millisecond {
		t.Errorf("Period() = %v, want 10ms", s.Period())
	}
}

func TestOnSample(t *testing.T) {
	s := newSampler(t, load.Config{})
	var a, b atomic.Int64
	cancelA := s.OnSample(func(load.Snapshot) { a.Add(1) })
	var cancelB func()
	cancelB = s.OnSample(func(load.Snapshot) {
		if b.Add(1) == 3 {
			cancelB() // cancelling from inside the callback must not deadlock
		}
	})
	var last atomic.Int64
	var ordered atomic.Bool
	ordered.Store(true)
	cancelC := s.OnSample(func(sn load.Snapshot) {
		if prev := last.Swap(sn.At.UnixNano()); prev >= sn.At.UnixNano() {
			ordered.Store(false)
		}
	})
	defer cancelC()
	waitFor(t, "5 deliveries", 5*time.Second, func() bool { return a.Load() >= 5 })
	if b.Load() != 3 {
		t.Errorf("callback that cancelled itself at 3 ran %d times", b.Load())
	}
	cancelA()
	cancelA() // idempotent
	// A call already past the check may still run once; after it, none.
	n := a.Load()
	var seen atomic.Int64
	cancelD := s.OnSample(func(load.Snapshot) { seen.Add(1) })
	defer cancelD()
	waitFor(t, "3 more samples", 5*time.Second, func() bool { return seen.Load() >= 3 })
	if got := a.Load(); got > n+1 {
		t.Errorf("cancelled callback ran %d more times", got-n)
	}
	if !ordered.Load() {
		t.Error("samples delivered out of order")
	}
	if nilCancel := s.OnSample(nil); nilCancel == nil {
		t.Error("OnSample(nil) returned a nil cancel")
	} else {
		nilCancel()
	}
}

// TestSubscribeFromCallback: a callback may register another; the new one
// is called from the next sample on.
func TestSubscribeFromCallback(t *testing.T) {
	s := newSampler(t, load.Config{})
	var inner atomic.Int64
	var once sync.Once
	s.OnSample(func(load.Snapshot) {
		once.Do(func() { s.OnSample(func(load.Snapshot) { inner.Add(1) }) })
	})
	waitFor(t, "the subscriber registered from a callback to run", 5*time.Second, func() bool { return inner.Load() >= 2 })
}

// TestCloseFromCallback: a callback may call Close; neither deadlocks.
func TestCloseFromCallback(t *testing.T) {
	s := newSampler(t, load.Config{})
	closed := make(chan struct{})
	var once sync.Once
	s.OnSample(func(load.Snapshot) {
		once.Do(func() {
			_ = s.Close()
			close(closed)
		})
	})
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close called from an OnSample callback did not return")
	}
}

// TestCloseDoesNotWaitForStuckCallback: a callback blocked on something
// that only happens after Close cannot hang Close; no callback starts after
// Close returns, and the goroutine exits once the callback returns (leakcheck
// checks that at the end of the package).
func TestCloseDoesNotWaitForStuckCallback(t *testing.T) {
	s := newSampler(t, load.Config{})
	release := make(chan struct{})
	entered := make(chan struct{})
	var calls atomic.Int64
	s.OnSample(func(load.Snapshot) {
		if calls.Add(1) == 1 {
			close(entered)
			<-release
		}
	})
	<-entered
	done := make(chan struct{})
	go func() { _ = s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		close(release)
		t.Fatal("Close waited for a stuck callback")
	}
	close(release)
	before := calls.Load()
	time.Sleep(50 * time.Millisecond) // 5 periods: any sample would have run by now
	if got := calls.Load(); got != before {
		t.Errorf("%d callbacks ran after Close", got-before)
	}
	_ = s.Close() // idempotent
	if s.Snapshot() == nil {
		t.Error("Snapshot after Close is nil")
	}
}

// TestCloseDoesNotWaitForStuckSource: the same for a Source.Read.
func TestCloseDoesNotWaitForStuckSource(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	s := newSampler(t, load.Config{CPU: load.SourceFunc(func() (float64, error) {
		select {
		case entered <- struct{}{}:
			<-release
		default:
		}
		return 0, nil
	})})
	<-entered
	done := make(chan struct{})
	go func() { _ = s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close waited for a stuck Source.Read")
	}
	close(release)
}

func TestErrorMessagesNameTheSource(t *testing.T) {
	var buf strings.Builder
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(lockedWriter{&mu, &buf}, nil))
	fail := atomic.Bool{}
	fail.Store(true)
	s := newSampler(t, load.Config{Logger: log, CPU: load.SourceFunc(func() (float64, error) {
		if fail.Load() {
			return 0, errors.New("sensor offline")
		}
		return 0.3, nil
	})})
	waitFor(t, "the failure to be logged", 5*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return strings.Contains(buf.String(), "source failing")
	})
	fail.Store(false)
	waitFor(t, "the recovery to be logged", 5*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return strings.Contains(buf.String(), "source recovered")
	})
	_ = s.Close()
	mu.Lock()
	defer mu.Unlock()
	out := buf.String()
	if strings.Count(out, "source failing") != 1 || !strings.Contains(out, "source=cpu") || !strings.Contains(out, "sensor offline") {
		t.Errorf("log should hold one WARN naming the source and the error, got:\n%s", out)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
