package health_test

import (
	"sync"
	"testing"
	"time"

	"github.com/grpcmgmt/grpcmgmt/health"
	"github.com/grpcmgmt/grpcmgmt/internal/replica"
	"github.com/grpcmgmt/grpcmgmt/load"
)

// excessSignal is a health signal over the injected CPU: overloaded at 0.9
// and above, recovered below 0.7, and an excess of 2 while overloaded (a
// replica at twice what it should carry).
func excessSignal(s load.Snapshot) health.Load {
	l := health.Load{Over: s.CPU >= 0.9, Clear: s.CPU < 0.7, Excess: s.CPU / 0.7}
	if l.Over {
		l.Excess = 2
	}
	return l
}

// A replica at twice what it should carry turns away half of its
// health-checking clients, not all of them: eight standard grpc-go clients
// (round_robin, healthCheckConfig) over a hot and a cold replica; exactly
// four stop sending to the hot one, the other four keep sending to it for as
// long as the overload lasts, and a Check (what a probe sees) answers
// NOT_SERVING. Once the load clears, the share steps down and every client
// comes back.
func TestProportionalRemoval(t *testing.T) {
	mp, rd := newReader(t)
	hotCPU, coldCPU := &signal{}, &signal{}
	hotCPU.Set(0.2)
	coldCPU.Set(0.2)
	// MaxShare 5/9: at most five of the nine streams out, as many as the
	// share an excess of 2 calls for (⌈0.5·9⌉). A test goroutine that the
	// machine stalls for a Hold (200 ms) between the flip and the CPU
	// dropping to 0.8 saw the share step up (a correct step: the overload
	// lasted), and more clients turned away; capped, a step up changes no
	// stream. The steps themselves are checked on an injected clock
	// (TestPolicyTransitions); this test checks what the clients do.
	hcfg := health.Config{
		Hold: 200 * time.Millisecond, MinDwell: 200 * time.Millisecond, MaxNotServing: time.Minute, MaxShare: 5.0 / 9,
		Cooldown: 50 * time.Millisecond, PropagationDelay: 10 * time.Millisecond, Signal: excessSignal,
	}
	hot := startNode(t, nodeConfig{addr: "127.0.0.1:0", replica: replica.Config{Name: "hot"}, load: fastLoad(hotCPU), health: hcfg, mp: mp})
	cold := startNode(t, nodeConfig{addr: "127.0.0.1:0", replica: replica.Config{Name: "cold"}, load: fastLoad(coldCPU), health: hcfg})

	const clients = 8
	recs := make([]*recorder, clients)
	var stops []func()
	for i := range recs {
		recs[i] = &recorder{}
		cc := dialConfig(t, `{"loadBalancingConfig":[{"round_robin":{}}],"healthCheckConfig":{"serviceName":""}}`, hot.addr, cold.addr)
		stops = append(stops, closedLoop(cc, 1, 2*time.Millisecond, recs[i]))
	}
	stopAll := func() {
		var wg sync.WaitGroup
		for _, s := range stops {
			wg.Go(s)
		}
		wg.Wait()
	}
	defer stopAll()
	for _, rec := range recs {
		waitServedBy(t, rec, "hot", time.Now(), 5*time.Second)
	}

	w := healthWatch(t, hot.addr) // a ninth stream; it may or may not be turned away
	hotCPU.Set(0.95)
	waitStatus(t, hot.m.Health(), health.NotServing)
	hotCPU.Set(0.8) // between the thresholds: the share stays
	if got := hot.m.Health().RemovedShare(); got != 0.5 && got != 5.0/9 {
		t.Fatalf("removed share %v at an excess of 2, want 0.5 (or MaxShare, 5/9, after a step up)", got)
	}
	if got := check(t, dialConfig(t, `{}`, hot.addr), ""); got != notServing {
		t.Errorf("Check while out of rotation = %v, want NOT_SERVING (the binary status)", got)
	}
	// The clients see the change within a round trip; then a window in
	// which the choice must hold.
	from := time.Now().Add(300 * time.Millisecond)
	time.Sleep(time.Second) // traffic observed across this window
	to := time.Now()
	var kept, away int
	for i, rec := range recs {
		n := 0
		for _, r := range rec.results() {
			if r.replica == "hot" && r.start.After(from) && r.start.Before(to) {
				n++
			}
		}
		if n == 0 {
			away++
		} else {
			kept++
		}
		t.Logf("client %d: %d calls served by the hot replica in the window", i, n)
	}
	// Nine streams (eight clients and w), half of them: ⌈4.5⌉ = 5 turned
	// away, of which w is one or not.
	want := 5
	if ws := w.changes(); len(ws) > 0 && ws[len(ws)-1].st == notServing {
		want = 4
	}
	if away != want || kept != clients-want {
		t.Errorf("%d clients stopped sending to the hot replica and %d kept sending, want %d and %d", away, kept, want, clients-want)
	}
	if v := gaugeAttr(t, rd, "grpcmgmt.health.watch_streams", "status", "not_serving"); v != 5 {
		t.Errorf("watch_streams{status=not_serving} = %d, want 5", v)
	}

	hotCPU.Set(0.1)
	waitStatus(t, hot.m.Health(), health.Serving)
	since := time.Now()
	for _, rec := range recs {
		waitServedBy(t, rec, "hot", since, 5*time.Second)
	}
	stopAll()
	for i, rec := range recs {
		if f := failed(rec.results()); len(f) > 0 {
			t.Errorf("client %d: %d calls failed, want 0; first: %v", i, len(f), f[0].err)
		}
	}
}

// waitStatus polls the published status of service "" until it is want.
func waitStatus(t *testing.T, r *health.Reporter, want health.Status) {
	t.Helper()
	waitStatusWithin(t, r, want, 5*time.Second)
}

// waitStatusWithin waits until r's status is want, at most d.
func waitStatusWithin(t *testing.T, r *health.Reporter, want health.Status, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if st, _ := r.Status(""); st == want {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("status did not become %v within %v", want, d)
}
