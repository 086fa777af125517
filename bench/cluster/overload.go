package cluster

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
)

// Overload is the overload scenario for one replica with a real capacity
// (Work of CPU per call behind Workers slots): open-loop load with a
// deadline on every call at 0.5×, 3×, 0.5× (recovery) and 10× the measured
// capacity.
type Overload struct {
	Bin      string   // examples/server or bench/cmd/peerserver
	Args     []string // the stack under test
	Phase    time.Duration
	Deadline time.Duration
}

// OverloadResult holds the figures of one leg.
type OverloadResult struct {
	// GoodputLow, Goodput3x and Goodput10x are calls completed within their
	// deadline per second ÷ capacity, at 0.5×, 3× and 10× offered load.
	GoodputLow, Goodput3x, Goodput10x float64
	// P99Low, P99At3x and P99At10x are the p99 latencies of completed
	// calls at 0.5×, at 3× and at 10×.
	P99Low, P99At3x, P99At10x time.Duration
	// RecoverySeconds is the time after the 3× load stops until the p99
	// over a 500 ms window is back within 1.2× of P99Low (-1: never).
	RecoverySeconds float64
	// Codes counts failed calls by status, over the whole leg.
	Codes map[codes.Code]int
	// Offered is the offered rate of each phase (calls/s); PerSec the
	// completed calls per second.
	Offered []float64
	PerSec  []int
}

// Capacity measures the replica's capacity in calls/s: a closed loop with
// many more callers than workers, for d.
func (o Overload) Capacity(ctx context.Context, c *Cluster, d time.Duration) (float64, error) {
	r, client, err := o.start(c, "cap")
	if err != nil {
		return 0, err
	}
	defer r.Kill()
	defer client.Close()
	rec := NewRecorder()
	rctx, cancel := context.WithTimeout(ctx, d)
	client.ClosedLoop(rctx, 32, 10*time.Second, rec)
	cancel()
	w := rec.Window(time.Second, d) // skip the warm-up second
	return float64(w.OK) / (d - time.Second).Seconds(), nil
}

func (o Overload) start(c *Cluster, name string) (*Replica, *Client, error) {
	port, err := FreePort("127.0.0.2")
	if err != nil {
		return nil, nil, err
	}
	r, err := c.StartReplica(o.Bin, name, "127.0.0.2", port, o.Args...)
	if err != nil {
		return nil, nil, err
	}
	client, err := Dial(r.Addr(), `{"loadBalancingConfig":[{"round_robin":{}}]}`, 4)
	if err != nil {
		r.Kill()
		return nil, nil, err
	}
	return r, client, nil
}

// Run runs the four phases against a fresh replica.
func (o Overload) Run(ctx context.Context, c *Cluster, capacity float64) (OverloadResult, error) {
	res := OverloadResult{RecoverySeconds: -1}
	r, client, err := o.start(c, "ovl")
	if err != nil {
		return res, err
	}
	defer r.Kill()
	defer client.Close()
	rec := NewRecorder()
	mult := []float64{0.5, 3, 0.5, 10}
	for _, m := range mult {
		rate := m * capacity
		res.Offered = append(res.Offered, rate)
		pctx, cancel := context.WithTimeout(ctx, o.Phase)
		client.OpenLoop(pctx, rate, o.Deadline, rec)
		cancel()
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
	}
	// Phase boundaries on the recorder's clock (calls are recorded when they
	// end; OpenLoop waits for its calls, so a phase's calls end before the
	// next phase's start plus one deadline).
	p := o.Phase
	skip := time.Second // warm-up at the start of a phase
	low := rec.Window(skip, p)
	at3 := rec.Window(p+skip, 2*p)
	at10 := rec.Window(3*p+skip, 4*p)
	span := (p - skip).Seconds()
	res.GoodputLow = float64(low.OK) / span / capacity
	res.Goodput3x = float64(at3.OK) / span / capacity
	res.Goodput10x = float64(at10.OK) / span / capacity
	res.P99Low, res.P99At3x, res.P99At10x = low.Quantile(0.99), at3.Quantile(0.99), at10.Quantile(0.99)
	for t := 2 * p; t < 3*p; t += 100 * time.Millisecond {
		w := rec.Window(t, t+500*time.Millisecond)
		if w.OK > 0 && w.Failed == 0 && float64(w.Quantile(0.99)) <= 1.2*float64(res.P99Low) {
			res.RecoverySeconds = (t - 2*p).Seconds()
			break
		}
	}
	all := rec.Window(0, time.Hour)
	res.Codes = all.Codes
	for _, m := range rec.PerSecond(int(4 * p / time.Second)) {
		n := 0
		for _, v := range m {
			n += v
		}
		res.PerSec = append(res.PerSec, n)
	}
	return res, nil
}

// String summarises a leg.
func (r OverloadResult) String() string {
	return fmt.Sprintf("goodput 3x %.2f 10x %.2f, p99 0.5x %v 3x %v 10x %v, recovery %.1fs, failed %v",
		r.Goodput3x, r.Goodput10x, r.P99Low.Round(time.Millisecond), r.P99At3x.Round(time.Millisecond),
		r.P99At10x.Round(time.Millisecond), r.RecoverySeconds, r.Codes)
}
