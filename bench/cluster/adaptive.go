package cluster

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc/codes"
)

// Adaptive runs one profile of the adaptive scenario against one replica:
// open-loop load with a deadline on every call at a sequence of multiples
// of its capacity, each for Phase, while the replica's adaptive limit is
// read from its Prometheus /metrics every 100 ms (when Bin serves them).
type Adaptive struct {
	Bin  string   // examples/server or bench/cmd/peerserver
	Args []string // capacity flags and the stack under test
	// Metrics, when set, makes the replica serve /metrics on a free port
	// (examples/server's -metrics-listen) for the limit trace.
	Metrics  bool
	Phase    time.Duration
	Deadline time.Duration
	// Drift sends the replica SIGUSR1 (its CPU per call doubles) at
	// DriftAt[0] and again (restored) at DriftAt[1], in every phase.
	DriftAt []time.Duration
	// Callers is the closed-loop concurrency of the capacity measurement
	// (more than the replica's workers). Default 32.
	Callers int
}

// AdaptivePhase is what one phase measured.
type AdaptivePhase struct {
	Mult float64
	// OK and Failed count the calls that ended in the phase after its
	// first second; P99 is the p99 latency of the OK ones.
	OK, Failed int
	P99        time.Duration
	// Goodput is OK per second ÷ capacity; OfferedGoodput is OK ÷ (OK +
	// Failed): the share of what was offered that was served in time.
	Goodput, OfferedGoodput float64
	// Codes counts the failed calls by status.
	Codes map[codes.Code]int
}

// AdaptiveResult is one leg: its phases, and the limit over time.
type AdaptiveResult struct {
	Phases []AdaptivePhase
	// Limit holds (seconds since the start, limit) every 100 ms; empty
	// without Metrics.
	Limit [][2]float64
	// P99Trace holds (seconds, p99 in ms) of every 500 ms window.
	P99Trace [][2]float64
}

// Capacity measures the replica's capacity in calls/s (closed loop, more
// callers than workers, the first second left out), after signalling it
// signals times (1: with its CPU per call doubled).
func (a Adaptive) Capacity(ctx context.Context, c *Cluster, d time.Duration, signals int) (float64, error) {
	r, client, _, err := a.start(c, "cap")
	if err != nil {
		return 0, err
	}
	defer r.Kill()
	defer client.Close()
	for range signals {
		if err := r.Signal(syscall.SIGUSR1); err != nil {
			return 0, err
		}
	}
	rec := NewRecorder()
	rctx, cancel := context.WithTimeout(ctx, d)
	client.ClosedLoop(rctx, max(a.Callers, 32), 10*time.Second, rec)
	cancel()
	w := rec.Window(time.Second, d)
	return float64(w.OK) / (d - time.Second).Seconds(), nil
}

func (a Adaptive) start(c *Cluster, name string) (*Replica, *Client, string, error) {
	port, err := FreePort("127.0.0.2")
	if err != nil {
		return nil, nil, "", err
	}
	args := a.Args
	metrics := ""
	if a.Metrics {
		mp, err := FreePort("127.0.0.2")
		if err != nil {
			return nil, nil, "", err
		}
		metrics = fmt.Sprintf("127.0.0.2:%d", mp)
		args = append([]string{"-metrics-listen", metrics}, args...)
	}
	r, err := c.StartReplica(a.Bin, name, "127.0.0.2", port, args...)
	if err != nil {
		return nil, nil, "", err
	}
	client, err := Dial(r.Addr(), `{"loadBalancingConfig":[{"round_robin":{}}]}`, 4)
	if err != nil {
		r.Kill()
		return nil, nil, "", err
	}
	return r, client, metrics, nil
}

// Run runs the phases (multiples of capacity) against a fresh replica.
func (a Adaptive) Run(ctx context.Context, c *Cluster, capacity float64, mults []float64) (AdaptiveResult, error) {
	var res AdaptiveResult
	r, client, metrics, err := a.start(c, "adp")
	if err != nil {
		return res, err
	}
	defer r.Kill()
	defer client.Close()
	rec := NewRecorder()
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		sctx context.Context
	)
	sctx, stopScrape := context.WithCancel(ctx)
	if metrics != "" {
		wg.Go(func() {
			t := time.NewTicker(100 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-sctx.Done():
					return
				case <-t.C:
				}
				if v, ok := scrapeLimit(sctx, metrics); ok {
					mu.Lock()
					res.Limit = append(res.Limit, [2]float64{time.Since(rec.Start()).Seconds(), v})
					mu.Unlock()
				}
			}
		})
	}
	for i, m := range mults {
		pctx, cancel := context.WithTimeout(ctx, a.Phase)
		var signals sync.WaitGroup
		for _, at := range a.DriftAt {
			t := time.AfterFunc(at, func() { _ = r.Signal(syscall.SIGUSR1) })
			signals.Go(func() { <-pctx.Done(); t.Stop() })
		}
		client.OpenLoop(pctx, m*capacity, a.Deadline, rec)
		cancel()
		signals.Wait()
		if len(a.DriftAt)%2 == 1 {
			_ = r.Signal(syscall.SIGUSR1) // end every phase with the base work
		}
		if ctx.Err() != nil {
			stopScrape()
			wg.Wait()
			return res, ctx.Err()
		}
		from := time.Duration(i)*a.Phase + time.Second
		w := rec.Window(from, time.Duration(i+1)*a.Phase)
		p := AdaptivePhase{Mult: m, OK: w.OK, Failed: w.Failed, P99: w.Quantile(0.99), Codes: w.Codes}
		p.Goodput = float64(w.OK) / (a.Phase - time.Second).Seconds() / capacity
		if w.OK+w.Failed > 0 {
			p.OfferedGoodput = float64(w.OK) / float64(w.OK+w.Failed)
		}
		res.Phases = append(res.Phases, p)
	}
	stopScrape()
	wg.Wait()
	end := time.Duration(len(mults)) * a.Phase
	for t := time.Duration(0); t+500*time.Millisecond <= end; t += 500 * time.Millisecond {
		if q := rec.Window(t, t+500*time.Millisecond).Quantile(0.99); q > 0 {
			res.P99Trace = append(res.P99Trace, [2]float64{(t + 250*time.Millisecond).Seconds(), float64(q) / 1e6})
		}
	}
	return res, nil
}

// scrapeLimit reads grpcmgmt_loadshed_limit{limit="adaptive"} from a
// Prometheus text exposition.
func scrapeLimit(ctx context.Context, addr string) (float64, bool) {
	rctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return 0, false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "grpcmgmt_loadshed_limit{") || !strings.Contains(line, `limit="adaptive"`) {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		return v, err == nil
	}
	return 0, false
}

// SettleSeconds returns how long after from the limit trace took to settle
// in [from, to): the first time from which it stayed for a whole second
// within ±tol (relative, and at least ±1 call) of its median over the
// second half of the span. -1 if it never did.
func SettleSeconds(trace [][2]float64, from, to float64, tol float64) float64 {
	var tail []float64
	var span [][2]float64
	for _, p := range trace {
		if p[0] >= from && p[0] < to {
			span = append(span, p)
			if p[0] >= (from+to)/2 {
				tail = append(tail, p[1])
			}
		}
	}
	if len(tail) == 0 {
		return -1
	}
	med := median(tail)
	band := max(tol*med, 1)
	for i := range span {
		ok, j := true, i
		for ; j < len(span) && span[j][0] < span[i][0]+1; j++ {
			if d := span[j][1] - med; d > band || d < -band {
				ok = false
				break
			}
		}
		if ok && j < len(span) { // a whole second in the band
			return span[i][0] - from
		}
	}
	return -1
}

func median(v []float64) float64 {
	c := append([]float64(nil), v...)
	for i := range c {
		for j := i; j > 0 && c[j] < c[j-1]; j-- {
			c[j], c[j-1] = c[j-1], c[j]
		}
	}
	return c[len(c)/2]
}

// String summarises a leg.
func (r AdaptiveResult) String() string {
	var b strings.Builder
	for _, p := range r.Phases {
		fmt.Fprintf(&b, "%g×: goodput %.2f (of offered %.2f) p99 %v %v; ", p.Mult, p.Goodput, p.OfferedGoodput, p.P99.Round(time.Millisecond), p.Codes)
	}
	return strings.TrimSuffix(b.String(), "; ")
}
