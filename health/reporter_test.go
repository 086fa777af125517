package health_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	grpchealth "google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/grpcmgmt/grpcmgmt/health"
)

// skew is how far a Watch stream's receive times may be from the sample
// times the decisions were made at (two sampler periods).
const skew = 20 * time.Millisecond

const (
	serving    = healthpb.HealthCheckResponse_SERVING
	notServing = healthpb.HealthCheckResponse_NOT_SERVING
)

// newReporter builds a Reporter on a fast sampler fed by cpu.
func newReporter(t *testing.T, cpu *signal, cfg health.Config) (*health.Reporter, *grpc.ClientConn) {
	t.Helper()
	mp, _ := newReader(t)
	if cfg.MeterProvider == nil {
		cfg.MeterProvider = mp
	}
	r, err := health.New(newSampler(t, cpu), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r, serve(t, r)
}

func TestFlipAndRecovery(t *testing.T) {
	mp, rd := newReader(t)
	cpu := &signal{}
	cpu.Set(0.2)
	const hold, dwell = 100 * time.Millisecond, 200 * time.Millisecond
	_, cc := newReporter(t, cpu, health.Config{
		Hold: hold, MinDwell: dwell, MaxNotServing: time.Minute, Cooldown: 50 * time.Millisecond,
		MeterProvider: mp,
	})
	w := watch(t, cc, "")
	if got := w.waitFor(t, 1, 5*time.Second); got.st != serving {
		t.Fatalf("initial status %v, want SERVING", got.st)
	}

	over := time.Now()
	cpu.Set(0.95)
	down := w.waitFor(t, 2, 5*time.Second)
	if down.st != notServing {
		t.Fatalf("status after overload %v, want NOT_SERVING", down.st)
	}
	if d := down.at.Sub(over); d < hold {
		t.Errorf("NOT_SERVING %v after the overload began, want at least Hold=%v", d, hold)
	}
	if v, _ := gauge(t, rd, "grpcmgmt.health.status", ""); v != 0 {
		t.Errorf("status gauge %d while NOT_SERVING, want 0", v)
	}

	cpu.Set(0.1)
	up := w.waitFor(t, 3, 5*time.Second)
	if up.st != serving {
		t.Fatalf("status after recovery %v, want SERVING", up.st)
	}
	// Watch times are receive times, the decisions' are sample times: allow
	// a sampler period or two of skew.
	if d := up.at.Sub(down.at); d < dwell-skew {
		t.Errorf("SERVING again %v after NOT_SERVING, want at least MinDwell=%v", d, dwell)
	}
	if got := check(t, cc, ""); got != serving {
		t.Errorf("Check after recovery = %v, want SERVING", got)
	}
	if v, ok := gauge(t, rd, "grpcmgmt.health.status", ""); !ok || v != 1 {
		t.Errorf("status gauge %d (present %v) after recovery, want 1", v, ok)
	}
	for _, c := range []struct {
		dir  string
		want int64
	}{{"not_serving", 1}, {"serving", 1}} {
		if got := counter(t, rd, "grpcmgmt.health.flips", "service", "", "reason", "load", "direction", c.dir); got != c.want {
			t.Errorf("flips{reason=load,direction=%s} = %d, want %d", c.dir, got, c.want)
		}
	}
}

// A signal oscillating around one threshold, slower than Hold, must not
// make the status follow it: the enter and exit thresholds are apart.
func TestNoFlappingAroundThreshold(t *testing.T) {
	for _, tc := range []struct {
		name   string
		lo, hi float64
		want   []healthpb.HealthCheckResponse_ServingStatus
	}{
		// Around CPUEnter 0.9: turns NOT_SERVING once and stays, since 0.85
		// is not below CPUExit 0.7.
		{"enter", 0.85, 0.95, []healthpb.HealthCheckResponse_ServingStatus{serving, notServing}},
		// Around CPUExit 0.7: never overloaded.
		{"exit", 0.65, 0.75, []healthpb.HealthCheckResponse_ServingStatus{serving}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cpu := &signal{}
			cpu.Set(tc.lo)
			_, cc := newReporter(t, cpu, health.Config{
				CPUEnter: 0.9, CPUExit: 0.7,
				Hold: 50 * time.Millisecond, MinDwell: 50 * time.Millisecond, MaxNotServing: time.Minute,
			})
			w := watch(t, cc, "")
			w.waitFor(t, 1, 5*time.Second)
			// Ten half-periods of 150ms, each three times Hold: a single
			// threshold with Hold would flip on every one.
			for i := range 10 {
				if i%2 == 0 {
					cpu.Set(tc.hi)
				} else {
					cpu.Set(tc.lo)
				}
				time.Sleep(150 * time.Millisecond) // the signal's shape, not synchronisation
			}
			if diff := cmp.Diff(statuses(w.changes()), tc.want); diff != "" {
				t.Errorf("statuses on Watch (-got +want):\n%s", diff)
			}
		})
	}
}

// A server that stays overloaded is SERVING again after MaxNotServing, then
// stays SERVING for a cooldown that doubles while the overload persists.
func TestMaxNotServingReleases(t *testing.T) {
	mp, rd := newReader(t)
	cpu := &signal{}
	cpu.Set(0.95)
	const maxNS, cool = 300 * time.Millisecond, 700 * time.Millisecond
	_, cc := newReporter(t, cpu, health.Config{
		Hold: 50 * time.Millisecond, MinDwell: 50 * time.Millisecond,
		MaxNotServing: maxNS, Cooldown: cool, MaxCooldown: time.Minute, MeterProvider: mp,
	})
	w := watch(t, cc, "")
	// SERVING (first status, possibly already NOT_SERVING if the watch
	// started late), NOT_SERVING, SERVING (release), NOT_SERVING (after the
	// cooldown), SERVING (release): the last gap is the doubled cooldown.
	deadline := time.Now().Add(10 * time.Second)
	var cs []change
	for time.Now().Before(deadline) {
		cs = w.changes()
		if len(cs) > 0 && cs[0].st == notServing {
			cs = append([]change{{}}, cs...)
		}
		if len(cs) >= 5 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if len(cs) < 5 {
		t.Fatalf("Watch received %v, want SERVING, NOT_SERVING, SERVING, NOT_SERVING, SERVING", statuses(cs))
	}
	if diff := cmp.Diff(statuses(cs[1:5]), []healthpb.HealthCheckResponse_ServingStatus{notServing, serving, notServing, serving}); diff != "" {
		t.Fatalf("statuses (-got +want):\n%s", diff)
	}
	if d := cs[2].at.Sub(cs[1].at); d < maxNS-skew || d > maxNS+time.Second {
		t.Errorf("NOT_SERVING lasted %v, want MaxNotServing=%v (within 1s of slack)", d, maxNS)
	}
	if d := cs[3].at.Sub(cs[2].at); d < cool*8/10-skew {
		t.Errorf("SERVING after release lasted %v, want at least the cooldown %v - 20%% jitter", d, cool)
	}
	// The first stint was released, not resolved: the next cooldown doubles.
	cs = append(cs[:5], w.waitFor(t, 5+1, 10*time.Second))
	if d := cs[5].at.Sub(cs[4].at); d < 2*cool*8/10-skew {
		t.Errorf("second cooldown lasted %v, want at least 2×%v - 20%% jitter", d, cool)
	}
	if got := counter(t, rd, "grpcmgmt.health.flips", "reason", "max_time", "direction", "serving"); got < 2 {
		t.Errorf("flips{reason=max_time,direction=serving} = %d, want ≥ 2", got)
	}
	if got := counter(t, rd, "grpcmgmt.health.load_decisions", "reason", "cooldown"); got < 1 {
		t.Errorf("load_decisions{reason=cooldown} = %d, want ≥ 1", got)
	}
}

func TestAppStatusIsNeverOverriddenByLoad(t *testing.T) {
	cpu := &signal{}
	cpu.Set(0.1)
	r, cc := newReporter(t, cpu, health.Config{
		Services: []string{"", "svc.A"},
		Hold:     20 * time.Millisecond, MinDwell: 20 * time.Millisecond, MaxNotServing: time.Minute, Cooldown: time.Millisecond,
	})
	r.SetStatus("svc.A", notServing)
	r.SetStatus("svc.B", serving) // does not follow load
	wA, wAll, wB := watch(t, cc, "svc.A"), watch(t, cc, ""), watch(t, cc, "svc.B")
	wA.waitFor(t, 1, 5*time.Second)
	wAll.waitFor(t, 1, 5*time.Second)
	wB.waitFor(t, 1, 5*time.Second)

	cpu.Set(0.95)
	if got := wAll.waitFor(t, 2, 5*time.Second).st; got != notServing {
		t.Fatalf(`"" after overload = %v, want NOT_SERVING`, got)
	}
	cpu.Set(0.1)
	if got := wAll.waitFor(t, 3, 5*time.Second).st; got != serving {
		t.Fatalf(`"" after recovery = %v, want SERVING`, got)
	}
	// The application's NOT_SERVING survived the load's SERVING, and svc.B
	// never followed load.
	if diff := cmp.Diff(statuses(wA.changes()), []healthpb.HealthCheckResponse_ServingStatus{notServing}); diff != "" {
		t.Errorf("svc.A statuses (-got +want):\n%s", diff)
	}
	if diff := cmp.Diff(statuses(wB.changes()), []healthpb.HealthCheckResponse_ServingStatus{serving}); diff != "" {
		t.Errorf("svc.B statuses (-got +want):\n%s", diff)
	}
	r.SetStatus("svc.A", serving)
	if got := wA.waitFor(t, 2, 5*time.Second).st; got != serving {
		t.Errorf("svc.A after the application set SERVING = %v, want SERVING", got)
	}
}

func TestDrain(t *testing.T) {
	mp, rd := newReader(t)
	cpu := &signal{}
	cpu.Set(0.1)
	r, cc := newReporter(t, cpu, health.Config{
		Services: []string{"", "svc.A"}, PropagationDelay: 1234 * time.Millisecond, MeterProvider: mp,
	})
	r.SetStatus("svc.B", serving)
	check(t, cc, "svc.B") // a probe: the drain must wait for such as it
	if got := r.BeginDrain(); got != 1234*time.Millisecond {
		t.Errorf("BeginDrain() = %v, want the PropagationDelay 1.234s", got)
	}
	if got := r.BeginDrain(); got != 0 {
		t.Errorf("second BeginDrain() = %v, want 0", got)
	}
	r.SetStatus("svc.B", serving) // ignored while draining
	for _, svc := range []string{"", "svc.A", "svc.B"} {
		if got := check(t, cc, svc); got != notServing {
			t.Errorf("Check(%q) after BeginDrain = %v, want NOT_SERVING", svc, got)
		}
	}
	if got := counter(t, rd, "grpcmgmt.health.flips", "reason", "drain", "direction", "not_serving"); got != 3 {
		t.Errorf("flips{reason=drain} = %d, want 3", got)
	}
}

func TestBringYourOwnServer(t *testing.T) {
	hs := grpchealth.NewServer()
	hs.SetServingStatus("svc.A", notServing) // the application's own, before the Reporter
	r, err := health.New(nil, health.Config{Server: hs, Services: []string{"", "svc.A"}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Server() != hs {
		t.Fatal("Server() is not the health.Server passed in Config.Server")
	}
	if st, _ := r.Status("svc.A"); st != notServing {
		t.Errorf("Status(svc.A) = %v, want the NOT_SERVING set before New", st)
	}
	if st, _ := r.Status(""); st != serving {
		t.Errorf(`Status("") = %v, want SERVING`, st)
	}

	// A server that already serves grpc.health.v1 gets an error, not
	// grpc-go's fatal duplicate registration.
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	if err := r.Register(srv); !errors.Is(err, health.ErrAlreadyRegistered) {
		t.Errorf("Register on a server with health registered = %v, want ErrAlreadyRegistered", err)
	}
	if err := r.Register(grpc.NewServer()); err != nil {
		t.Errorf("Register on a fresh server = %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg   health.Config
		field string
	}{
		{health.Config{CPUEnter: -1}, "CPUEnter"},
		{health.Config{CPUEnter: 11}, "CPUEnter"},
		{health.Config{CPUEnter: 0.5, CPUExit: 0.6}, "CPUExit"},
		{health.Config{InFlightEnter: -1}, "InFlightEnter"},
		{health.Config{InFlightExit: 3}, "InFlightExit"},
		{health.Config{InFlightEnter: 10, InFlightExit: 10}, "InFlightExit"},
		{health.Config{Hold: -time.Second}, "Hold"},
		{health.Config{MinDwell: 2 * time.Second, MaxNotServing: time.Second}, "MinDwell"},
		{health.Config{MaxNotServing: 2 * time.Hour}, "MaxNotServing"},
		{health.Config{Cooldown: -1}, "Cooldown"},
		{health.Config{Cooldown: time.Minute, MaxCooldown: time.Second}, "MaxCooldown"},
		{health.Config{PropagationDelay: time.Hour}, "PropagationDelay"},
	} {
		err := tc.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.field+" must be within") {
			t.Errorf("Validate(%+v) = %v, want an error naming %s and its range", tc.cfg, err, tc.field)
		}
		if _, nerr := health.New(nil, tc.cfg); nerr == nil {
			t.Errorf("New with %+v succeeded, want the Validate error", tc.cfg)
		}
	}
	if err := (health.Config{}).Validate(); err != nil {
		t.Errorf("zero Config: %v", err)
	}
	got := health.Config{InFlightEnter: 8, MaxNotServing: 500 * time.Millisecond}.WithDefaults()
	if got.InFlightExit != 6 || got.MinDwell != 500*time.Millisecond || got.CPUExit != health.DefaultCPUExit {
		t.Errorf("WithDefaults: InFlightExit %d MinDwell %v CPUExit %v, want 6, 500ms, %v",
			got.InFlightExit, got.MinDwell, got.CPUExit, health.DefaultCPUExit)
	}
}

// A server nobody asked for its health has nobody to wait for, unless
// DelayUnobserved says otherwise.
func TestDrainUnobserved(t *testing.T) {
	for _, tc := range []struct {
		delayUnobserved bool
		want            time.Duration
	}{{false, 0}, {true, time.Second}} {
		r, err := health.New(nil, health.Config{PropagationDelay: time.Second, DelayUnobserved: tc.delayUnobserved})
		if err != nil {
			t.Fatal(err)
		}
		if got := r.BeginDrain(); got != tc.want {
			t.Errorf("DelayUnobserved %v: BeginDrain() = %v with no health call, want %v", tc.delayUnobserved, got, tc.want)
		}
		if st, _ := r.Status(""); st != notServing {
			t.Errorf("status after BeginDrain %v, want NOT_SERVING", st)
		}
		_ = r.Close()
	}
}
