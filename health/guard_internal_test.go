package health

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"

	"github.com/grpcmgmt/grpcmgmt/internal/loopback"
	"github.com/grpcmgmt/grpcmgmt/internal/replica"
	"github.com/grpcmgmt/grpcmgmt/load"
)

// The guard's tests run real replicas (a Reporter registered on a grpc-go
// server on 127.0.0.x, one per replica) whose guards Check each other over
// loopback with real clients, and drive time themselves: the samples (with
// their times) are fed to Reporter.step and the rounds are run by the test
// (guard.manual), on one fake clock shared by the replicas. So every
// decision is deterministic, and the tests never sleep.

// clock is a fake clock shared by the replicas of a test.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	return c.now
}

// member is one replica of a test set.
type member struct {
	r    *Reporter
	addr string
	rd   *sdkmetric.ManualReader
	// changes records the replica's states out of rotation or in, with the
	// fake time of each change.
	changes []stateChange
}

type stateChange struct {
	at time.Time
	st state
}

// guardConfig is the configuration of the replicas: Hold 2s and MinDwell
// 500ms (the defaults), Delay 20s of the fake clock (the Checks of one
// round have Delay/4 of real time, 5s: ample for loopback with the race
// detector on a loaded machine; a slower answer would count the peer as
// out), and the set's addresses.
func guardConfig(addrs []string, mp *sdkmetric.MeterProvider) Config {
	return Config{
		MeterProvider: mp,
		Peers: Peers{
			Addrs:       addrs,
			Delay:       20 * time.Second,
			DialOptions: []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())},
		},
	}
}

// startSet starts n replicas on 127.0.0.2.. with one port, each knowing the
// whole set.
func startSet(t *testing.T, n int, clk *clock) []*member {
	t.Helper()
	var ips, addrs []string
	for i := range n {
		ips = append(ips, fmt.Sprintf("127.0.0.%d", i+2))
	}
	port, err := loopback.FreePort(ips...)
	if err != nil {
		t.Fatal(err)
	}
	for _, ip := range ips {
		addrs = append(addrs, net.JoinHostPort(ip, fmt.Sprint(port)))
	}
	var ms []*member
	for i, addr := range addrs {
		rd := sdkmetric.NewManualReader()
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))
		t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
		r, err := newReporter(guardConfig(addrs, mp), true)
		if err != nil {
			t.Fatal(err)
		}
		r.now = clk.Now
		r.guard.manual = true
		lis, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		srv := grpc.NewServer()
		replica.New(replica.Config{Name: fmt.Sprintf("r%d", i)}).Register(srv)
		if err := r.Register(srv); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { defer close(done); _ = srv.Serve(lis) }()
		t.Cleanup(func() { srv.Stop(); <-done; _ = r.Close() })
		ms = append(ms, &member{r: r, addr: addr, rd: rd})
	}
	return ms
}

// feed gives m one sample of l at the clock's time, and records a change of
// state.
func (m *member) feed(clk *clock, l Load) {
	m.r.step(clk.Now(), l, &load.Snapshot{})
	m.note(clk)
}

func (m *member) note(clk *clock) {
	st := m.state()
	if n := len(m.changes); n == 0 || m.changes[n-1].st != st {
		m.changes = append(m.changes, stateChange{clk.Now(), st})
	}
}

func (m *member) state() state {
	m.r.mu.Lock()
	defer m.r.mu.Unlock()
	return m.r.policy.st
}

// rounds runs one round of the guard on every member of ms at once (the
// same instant on the fake clock, started together), and records their
// changes.
func rounds(clk *clock, ms []*member) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for _, m := range ms {
		wg.Go(func() { <-start; m.r.guard.round() })
	}
	close(start)
	wg.Wait()
	for _, m := range ms {
		m.note(clk)
	}
}

// overloadFor feeds hot samples to ms every 100ms for d.
func overloadFor(clk *clock, ms []*member, d time.Duration) {
	for end := clk.Now().Add(d); clk.Now().Before(end); clk.advance(100 * time.Millisecond) {
		for _, m := range ms {
			m.feed(clk, hot)
		}
	}
	for _, m := range ms {
		m.feed(clk, hot)
	}
}

func (m *member) guardCount(t *testing.T, decision string) int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := m.rd.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, sm := range rm.ScopeMetrics {
		for _, mt := range sm.Metrics {
			if sum, ok := mt.Data.(metricdata.Sum[int64]); ok && mt.Name == "grpcmgmt.health.guard_decisions" {
				for _, dp := range sum.DataPoints {
					if v, _ := dp.Attributes.Value(attribute.Key("decision")); v.AsString() == decision {
						n += dp.Value
					}
				}
			}
		}
	}
	return n
}

// firstOut overloads the first member until it is out of rotation, alone.
func firstOut(t *testing.T, clk *clock, ms []*member) {
	t.Helper()
	overloadFor(clk, ms[:1], ms[0].r.cfg.Hold)
	clk.advance(ms[0].r.cfg.Peers.Delay)
	rounds(clk, ms[:1])
	if got := outs(ms); !slices.Equal(got, []int{0}) {
		t.Fatalf("out %v, want [0]", got)
	}
}

// outs returns the indexes of the members out of rotation.
func outs(ms []*member) []int {
	var out []int
	for i, m := range ms {
		if m.state() == stateOut {
			out = append(out, i)
		}
	}
	return out
}

// checkAll asks every member for its whole-server status with a real
// Check, as a Kubernetes probe does.
func checkAll(t *testing.T, ms []*member) []Status {
	t.Helper()
	var sts []Status
	for _, m := range ms {
		cc, err := grpc.NewClient(m.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
		cancel()
		_ = cc.Close()
		if err != nil {
			t.Fatal(err)
		}
		sts = append(sts, resp.GetStatus())
	}
	return sts
}

// callThroughHealth makes calls with a standard grpc-go client that checks
// health (round_robin, healthCheckConfig) over the whole set, and returns
// the replicas that served them; any failure (every replica NOT_SERVING
// fails calls with UNAVAILABLE) fails the test.
func callThroughHealth(t *testing.T, ms []*member, calls int) map[string]int {
	t.Helper()
	r := manual.NewBuilderWithScheme("guard")
	var st resolver.State
	for _, m := range ms {
		st.Addresses = append(st.Addresses, resolver.Address{Addr: m.addr})
	}
	r.InitialState(st)
	cc, err := grpc.NewClient("guard:///set", grpc.WithResolvers(r),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}],"healthCheckConfig":{"serviceName":""}}`))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	c := testpb.NewTestServiceClient(cc)
	served := map[string]int{}
	for range calls {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var md metadata.MD
		_, err := c.UnaryCall(ctx, &testpb.SimpleRequest{}, grpc.Header(&md), grpc.WaitForReady(true))
		cancel()
		if err != nil {
			t.Fatalf("a call through a health-checking client failed: %v", err)
		}
		served[md.Get(replica.HeaderName)[0]]++
	}
	return served
}

// The guard's decisions with 3, 5 and 7 replicas where 1, 2 or all want
// out at the same instant: the replicas with the lowest addresses among
// those that want out take the free slots (⌊(n−1)/3⌋, at least 1), the
// others stay SERVING and count "fleet_needed"; more rounds change nothing
// while the load does not change; no replica changes state faster than the
// hysteresis; a health-checking client is served throughout, only by
// replicas in rotation; and once the replicas out recover, those still
// waiting take the slots in address order.
func TestGuardDecisions(t *testing.T) {
	for _, n := range []int{3, 5, 7} {
		maxOut := max(1, (n-1)/3)
		for _, wanting := range []int{1, 2, n} {
			t.Run(fmt.Sprintf("n=%d/want=%d", n, wanting), func(t *testing.T) {
				clk := &clock{now: time.Unix(1000, 0)}
				ms := startSet(t, n, clk)
				hold, delay := ms[0].r.cfg.Hold, ms[0].r.cfg.Peers.Delay
				// The replicas that want out: spread over the address
				// order, so that rank by address is what decides.
				idx := rand.New(rand.NewPCG(uint64(n), uint64(wanting))).Perm(n)[:wanting]
				slices.Sort(idx)
				var want []*member
				for _, i := range idx {
					want = append(want, ms[i])
				}
				cool := slices.DeleteFunc(slices.Clone(ms), func(m *member) bool { return slices.Contains(want, m) })

				overloadFor(clk, want, hold)
				for _, m := range want {
					if m.state() != stateWant {
						t.Fatalf("%s: state %v after Hold overloaded, want want", m.addr, m.state())
					}
				}
				// Nobody is out before the re-check delay.
				rounds(clk, want)
				if got := outs(ms); len(got) != 0 {
					t.Fatalf("out before the re-check delay: %v", got)
				}
				clk.advance(delay)
				rounds(clk, want)

				wantOut := idx[:min(wanting, maxOut)]
				if got := outs(ms); !slices.Equal(got, wantOut) {
					t.Fatalf("out of rotation: %v, want %v (the lowest addresses among %v, %d slots)", got, wantOut, idx, maxOut)
				}
				sts := checkAll(t, ms)
				for i, st := range sts {
					if slices.Contains(wantOut, i) != (st == NotServing) {
						t.Errorf("replica %d: Check %v (out of rotation: %v)", i, st, slices.Contains(wantOut, i))
					}
				}
				for _, m := range want[len(wantOut):] {
					if got := m.guardCount(t, guardFleetNeeded); got != 1 {
						t.Errorf("%s: guard_decisions{fleet_needed} = %d after one round, want 1", m.addr, got)
					}
				}

				// Ten more seconds overloaded, a round every second: nothing
				// changes (no oscillation). A health-checking client is
				// served throughout (a replica out turns a share of the
				// Watch streams away, perhaps this client's).
				for range 10 {
					overloadFor(clk, want, 900*time.Millisecond)
					for _, m := range cool {
						m.feed(clk, cold)
					}
					clk.advance(100 * time.Millisecond)
					rounds(clk, want)
					if got := outs(ms); !slices.Equal(got, wantOut) {
						t.Fatalf("at +%v: out of rotation %v, want %v still", clk.Now().Sub(time.Unix(1000, 0)), got, wantOut)
					}
				}
				served := callThroughHealth(t, ms, 3*n)
				t.Logf("out %v; calls served through health checking: %v", wantOut, served)

				// The replicas out recover: below the exit thresholds, their
				// share steps down every dwell until they are back; the next
				// wanting replicas in address order take the slots.
				for range 40 {
					for i, m := range ms {
						switch {
						case slices.Contains(wantOut, i):
							m.feed(clk, cold)
						case slices.Contains(idx, i):
							m.feed(clk, hot)
						default:
							m.feed(clk, cold)
						}
					}
					clk.advance(100 * time.Millisecond)
				}
				for _, i := range wantOut {
					if st := ms[i].state(); st != stateIn {
						t.Fatalf("replica %d: %v 4s after its load cleared, want in", i, st)
					}
				}
				rounds(clk, want)
				rest := slices.DeleteFunc(slices.Clone(idx), func(i int) bool { return slices.Contains(wantOut, i) })
				next := rest[:min(len(rest), maxOut)]
				if got := outs(ms); !slices.Equal(got, next) {
					t.Fatalf("after the first ones recovered: out %v, want %v", got, next)
				}
				callThroughHealth(t, ms, 2*n)

				// No replica changed state faster than the hysteresis
				// allows: min(Hold, MinDwell, Delay) between two changes.
				floor := min(hold, ms[0].r.cfg.MinDwell, delay)
				for i, m := range ms {
					for j := 1; j < len(m.changes); j++ {
						if d := m.changes[j].at.Sub(m.changes[j-1].at); d < floor {
							t.Errorf("replica %d: %v -> %v within %v (< %v)", i, m.changes[j-1].st, m.changes[j].st, d, floor)
						}
					}
				}
			})
		}
	}
}

// Two replicas deciding at the same instant do not both take the last
// slot. Seven replicas (two slots): the lowest address is out already;
// then two others want out, announce together, and run their rounds at the
// same instant, started together: exactly one takes the last slot, the
// lower address, and the other stays SERVING. Repeated, with the winner
// recovering in between.
func TestGuardLastSlot(t *testing.T) {
	clk := &clock{now: time.Unix(1000, 0)}
	ms := startSet(t, 7, clk)
	hold, delay := ms[0].r.cfg.Hold, ms[0].r.cfg.Peers.Delay
	firstOut(t, clk, ms)
	pairs := [][2]int{{3, 5}, {6, 1}, {2, 4}, {5, 6}, {1, 2}}
	for _, p := range pairs {
		a, b := ms[p[0]], ms[p[1]]
		overloadFor(clk, []*member{ms[0], a, b}, hold)
		clk.advance(delay)
		rounds(clk, []*member{a, b})
		got := outs(ms)
		winner := min(p[0], p[1])
		if !slices.Equal(got, []int{0, winner}) {
			t.Fatalf("%v deciding at once: out %v, want [0 %d] (one slot left, the lower address takes it)", p, got, winner)
		}
		// The winner recovers, the loser's load clears too.
		for range 40 {
			ms[0].feed(clk, hot)
			a.feed(clk, cold)
			b.feed(clk, cold)
			clk.advance(100 * time.Millisecond)
		}
		if got := outs(ms); !slices.Equal(got, []int{0}) {
			t.Fatalf("after %v recovered: out %v, want [0]", p, got)
		}
	}
}

// A replica out of rotation returns when the set needs it: another replica
// drains (NOT_SERVING for its lame duck), and with both out more than the
// one slot of four replicas would be. Two rounds in a row must see it (one
// slow answer counts as out). Still overloaded, it asks again after Hold
// and is refused while the drain lasts.
func TestGuardRecall(t *testing.T) {
	clk := &clock{now: time.Unix(1000, 0)}
	ms := startSet(t, 4, clk) // one slot
	hold, delay := ms[0].r.cfg.Hold, ms[0].r.cfg.Peers.Delay
	firstOut(t, clk, ms)
	ms[2].r.BeginDrain()
	clk.advance(time.Second)
	rounds(clk, ms[:1])
	if st := ms[0].state(); st != stateOut {
		t.Fatalf("state %v after one round that saw the drain, want out (a second round confirms)", st)
	}
	clk.advance(ms[0].r.cfg.Peers.Delay)
	rounds(clk, ms[:1])
	if st := ms[0].state(); st != stateIn {
		t.Fatalf("state %v with another replica draining and one slot, want in (recalled)", st)
	}
	if got := ms[0].guardCount(t, guardRecalled); got != 1 {
		t.Errorf("guard_decisions{recalled} = %d, want 1", got)
	}
	if sts := checkAll(t, ms); sts[0] != Serving || sts[2] != NotServing {
		t.Errorf("Checks %v, want SERVING from the recalled replica, NOT_SERVING from the draining one", sts)
	}
	// Still overloaded: it asks again after Hold, and is refused while the
	// drain lasts.
	overloadFor(clk, ms[:1], hold)
	clk.advance(delay)
	rounds(clk, ms[:1])
	if st := ms[0].state(); st != stateWant {
		t.Fatalf("state %v, want want (refused)", st)
	}
	if got := ms[0].guardCount(t, guardFleetNeeded); got != 1 {
		t.Errorf("guard_decisions{fleet_needed} = %d, want 1", got)
	}
}

// A replica whose set does not list it cannot take a slot.
func TestGuardNotInSet(t *testing.T) {
	clk := &clock{now: time.Unix(1000, 0)}
	ms := startSet(t, 3, clk)
	m := ms[0]
	m.r.guard.mu.Lock()
	delete(m.r.guard.members, m.addr)
	m.r.guard.mu.Unlock()
	overloadFor(clk, ms[:1], m.r.cfg.Hold)
	clk.advance(m.r.cfg.Peers.Delay)
	rounds(clk, ms[:1])
	if st := m.state(); st != stateWant {
		t.Fatalf("state %v, want want (refused: not in its set)", st)
	}
	if got := m.guardCount(t, guardNotInSet); got != 1 {
		t.Errorf("guard_decisions{not_in_set} = %d, want 1", got)
	}
}

// The rule, checked on many random interleavings without a network: each
// replica announces at a random time, runs rounds no earlier than Delay
// after it, each observation of a peer inside a round that decides within
// Delay/2 of its start (as guard.look and Reporter.decide enforce), sees
// each peer as it was at that instant, and decides with mayGoOut. Never are
// more than maxOut replicas out at once. With rounds allowed to last as long
// as Delay (the bound the guard enforces is Delay/2), the same check finds
// violations, so the test can fail.
func TestGuardRuleInterleavings(t *testing.T) {
	run := func(roundLen int, seed uint64) (violations int) {
		rng := rand.New(rand.NewPCG(seed, 1))
		const delay = 4
		for range 5000 {
			n := 2 + rng.IntN(6)
			p := Peers{MaxOut: 1 + rng.IntN(n-1)}
			addrs := make([]string, n)
			for i := range addrs {
				addrs[i] = fmt.Sprintf("10.0.0.%d:1", i+1)
			}
			type round struct {
				start int
				obs   []int // observation time of each peer
			}
			announce := make([]int, n)
			var plan [][]round
			for i := range n {
				announce[i] = rng.IntN(10)
				s := announce[i] + delay + rng.IntN(4)
				var rs []round
				for range 1 + rng.IntN(3) {
					r := round{start: s, obs: make([]int, n)}
					for j := range n {
						r.obs[j] = s + rng.IntN(roundLen+1)
					}
					rs = append(rs, r)
					s += roundLen + rng.IntN(4)
				}
				plan = append(plan, rs)
			}
			type ev struct{ at, who, round int }
			var evs []ev
			for i, rs := range plan {
				for k, r := range rs {
					evs = append(evs, ev{r.start + roundLen, i, k})
				}
			}
			slices.SortFunc(evs, func(a, b ev) int { return a.at - b.at })
			outAt := make([]int, n)
			for i := range outAt {
				outAt[i] = -1
			}
			for _, e := range evs {
				if outAt[e.who] >= 0 {
					continue
				}
				r := plan[e.who][e.round]
				v := view{members: addrs, self: addrs[e.who], states: map[string]peerState{}}
				for j := range n {
					x := r.obs[j]
					switch {
					case outAt[j] >= 0 && x >= outAt[j]:
						v.states[addrs[j]] = peerOut
					case x >= announce[j]:
						v.states[addrs[j]] = peerWant
					default:
						v.states[addrs[j]] = peerIn
					}
				}
				if v.count(p).mayGoOut() {
					outAt[e.who] = e.at
				}
			}
			out := 0
			for _, o := range outAt {
				if o >= 0 {
					out++
				}
			}
			if out > p.maxOut(n) {
				violations++
			}
		}
		return violations
	}
	if v := run(2, 1); v != 0 { // rounds within Delay/2
		t.Errorf("%d interleavings with more replicas out than allowed", v)
	}
	if v := run(8, 1); v == 0 { // rounds twice as long as Delay
		t.Errorf("with rounds longer than the delay the check found no violation: it cannot fail")
	}
}
