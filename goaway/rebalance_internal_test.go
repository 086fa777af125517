package goaway

import (
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.opentelemetry.io/otel/metric/noop"
)

// clockConns is a ConnSet that records when each round acted (on the
// synctest bubble's clock); sent connections leave.
type clockConns struct {
	mu     sync.Mutex
	active int
	at     []time.Duration // since t0, one per GOAWAY batch
	sent   int
	t0     time.Time
}

func (c *clockConns) Active() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.active
}

func (c *clockConns) GoAwayOlder(n int, _ Selector, _ Reason, _ time.Duration) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n = min(n, c.active)
	c.active -= n
	c.sent += n
	c.at = append(c.at, time.Since(c.t0))
	return n
}

// reportWatcher hands its report function to the test.
type reportWatcher struct{ report func(Lookup) }

func (w *reportWatcher) Watch(report func(Lookup)) error { w.report = report; return nil }
func (w *reportWatcher) Close() error                    { return nil }

func members(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("10.0.0.%d", i+1)
	}
	return out
}

// TestRebalancerTimers: the Rebalancer runs its decider's rounds on real
// timers (the synctest bubble's clock): the first round within a step of
// the confirmed growth, the last by the end of Window, nothing after; Close
// in the middle of an episode stops its rounds.
func TestRebalancerTimers(t *testing.T) {
	opts := DecisionOptions{Logger: slog.New(slog.DiscardHandler), MeterProvider: noop.NewMeterProvider()}
	const window = 2 * time.Second
	grow := func(t *testing.T, conns *clockConns) (*Rebalancer, time.Duration) {
		w := &reportWatcher{}
		r, err := newRebalancer(conns, RebalanceConfig{Watcher: w}.WithDefaults(), opts)
		if err != nil {
			t.Fatal(err)
		}
		w.report(Lookup{At: time.Now(), Members: members(3)})
		time.Sleep(time.Minute) // past the start-up grace
		for range 3 {
			time.Sleep(time.Second)
			w.report(Lookup{At: time.Now(), Members: members(4)})
		}
		return r, time.Since(conns.t0)
	}
	t.Run("episode", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			conns := &clockConns{active: 40, t0: time.Now()}
			r, grown := grow(t, conns)
			defer r.Close()
			time.Sleep(10 * window)
			synctest.Wait()
			conns.mu.Lock()
			defer conns.mu.Unlock()
			if conns.sent != 10 || len(conns.at) != 3 {
				// 40 × 1/4 = 10, at most 2 × 40 / 20 = 4 per round: 4, 4, 2
				// (the arrival rate allows 333/s, 16 in the first 50 ms).
				t.Fatalf("sent %d GOAWAYs in %d rounds, want 10 in 3", conns.sent, len(conns.at))
			}
			step := window / 20
			if first := conns.at[0] - grown; first < step/4 || first > 3*step/4 {
				t.Errorf("first round %v after the growth was confirmed, want within %v..%v", first, step/4, 3*step/4)
			}
			if got := r.ReplicaSetSize(); got != 4 {
				t.Errorf("ReplicaSetSize = %d, want 4", got)
			}
		})
	})
	t.Run("close stops the rounds", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			conns := &clockConns{active: 400, t0: time.Now()}
			r, _ := grow(t, conns)
			time.Sleep(window / 4)
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			conns.mu.Lock()
			sent := conns.sent
			conns.mu.Unlock()
			// 3 → 4 replicas: the arrival rate allows 1000 × 1/3 per second.
			if sent == 0 || sent > 1000/3/2 {
				t.Fatalf("sent %d GOAWAYs in the first 500 ms, want some and at most 166", sent)
			}
			time.Sleep(10 * window)
			synctest.Wait()
			conns.mu.Lock()
			defer conns.mu.Unlock()
			if conns.sent != sent {
				t.Fatalf("%d GOAWAYs after Close", conns.sent-sent)
			}
		})
	})
}
