package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/grpcmgmt/grpcmgmt/internal/chart"
)

// Scale is the scale scenario: Replicas example servers (GOMAXPROCS=1) on
// 127.0.0.x behind a real HAProxy in TCP mode (Balance: "random(1)" is
// kube-proxy's uniform choice, "leastconn" IPVS's), Conns client
// connections from Clients connload processes (pick_first through HAProxy,
// Rate calls per second each; Heavy of them at 10 times that), and at
// ScaleAt the set goes from Before to After replicas: HAProxy's rotation
// and the replicas' own DNS name (a real dnsmasq) change together, as a
// Kubernetes Service's endpoints and its headless name do. Removed
// replicas are stopped with SIGTERM (lame duck: GOAWAY to every
// connection). The connections per replica are read from HAProxy's
// statistics every 250 ms; the GOAWAYs from each replica's /metrics.
type Scale struct {
	ServerBin, LoadBin string
	// ServerArgs are added to every replica's flags (the replica-set name,
	// resolver and metrics address are the scenario's).
	ServerArgs            []string
	Before, After         int
	Balance               string
	Conns, Clients, Heavy int
	Rate                  float64
	// ScaleAt is when the set changes, For how long the run goes on after,
	// both from the start of the load.
	ScaleAt, For time.Duration
	// Name is the replica set's DNS name; default "svc.scale.test".
	Name string
}

// ScaleResult is what a scale run measured.
type ScaleResult struct {
	// SecondsToFairShare: for a scale-out, from ScaleAt until the added
	// replicas together held at least 90 % of their fair share of the
	// connections for 3 s; for a scale-in, until no connection was left on
	// a removed replica. Negative if never.
	SecondsToFairShare float64
	// GoAways is the rebalancing GOAWAYs the replicas sent (their
	// grpcmgmt.goaway.sent{reason="rebalance"}); HadToMove the fewest
	// moves that balanced the connections at ScaleAt (the sum over the
	// replicas after the change of their connections above the mean).
	GoAways, HadToMove  int
	GoAwaysPerMovedConn float64
	// PeakReconnectsPerSec is the most connections HAProxy gave one replica
	// within one second after ScaleAt.
	PeakReconnectsPerSec int
	// MaxOverMean is the most connections on one replica over the mean, at
	// the end (replicas in rotation); MaxOverMeanBefore the same just
	// before the change, over the Before replicas (what the balancer's
	// placement left).
	MaxOverMean, MaxOverMeanBefore float64
	// Calls and Failed count the clients' calls; Codes the failures.
	Calls, Failed int
	Codes         map[string]int
	// FailedAt lists the seconds (from the start of the load) in which a
	// call failed, once per client process.
	FailedAt []int
	// HeavyMoves counts the times a heavy client's calls moved to another
	// replica after ScaleAt + 1 s.
	HeavyMoves int
	// Samples are the connections per replica (Names order) every Every.
	Samples [][]int
	Every   time.Duration
	Names   []string
	ScaleAt time.Duration
}

// Run runs the scenario in cluster c.
func (s Scale) Run(ctx context.Context, c *Cluster) (ScaleResult, error) {
	n := max(s.Before, s.After)
	if s.Name == "" {
		s.Name = "svc.scale.test"
	}
	ips := make([]string, n)
	for i := range ips {
		ips[i] = fmt.Sprintf("127.0.0.%d", i+2)
	}
	port, err := FreePort(ips...)
	if err != nil {
		return ScaleResult{}, err
	}
	mport, err := FreePort(ips...)
	if err != nil {
		return ScaleResult{}, err
	}
	dns, err := c.StartDNS(s.Name, 0, ips[:s.Before]...)
	if err != nil {
		return ScaleResult{}, err
	}
	env := c.ReplicaEnv
	c.ReplicaEnv = append(env, "GOMAXPROCS=1")
	defer func() { c.ReplicaEnv = env }()
	reps := make([]*Replica, n)
	names := make([]string, n)
	for i, ip := range ips {
		args := append([]string{"-replica-set-name", s.Name, "-replica-set-resolver", dns.Addr,
			"-metrics-listen", fmt.Sprintf("%s:%d", ip, mport)}, s.ServerArgs...)
		r, err := c.StartReplica(s.ServerBin, fmt.Sprintf("r%d", i+1), ip, port, args...)
		if err != nil {
			return ScaleResult{}, err
		}
		reps[i], names[i] = r, r.Name
	}
	lb, err := c.StartHAProxyWith(0, HAProxyOptions{Balance: s.Balance, MaxConn: 3*s.Conns + 100}, reps, names[:s.Before]...)
	if err != nil {
		return ScaleResult{}, err
	}

	res := ScaleResult{Every: 250 * time.Millisecond, Names: names, ScaleAt: s.ScaleAt, Codes: map[string]int{}}
	t0 := time.Now().Add(500 * time.Millisecond)
	outs, wait, err := s.startClients(ctx, c, lb.Addr, t0)
	if err != nil {
		return ScaleResult{}, err
	}
	// Sample HAProxy until the clients are done.
	var totals [][]int
	var mu sync.Mutex
	sampleCtx, stopSampling := context.WithCancel(ctx)
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		next := t0
		for sampleCtx.Err() == nil {
			next = next.Add(res.Every)
			select {
			case <-time.After(time.Until(next)):
			case <-sampleCtx.Done():
				return
			}
			st, err := lb.Stats()
			if err != nil {
				continue
			}
			cur, tot := make([]int, n), make([]int, n)
			for i, name := range names {
				cur[i], tot[i] = st[name].Current, st[name].Total
			}
			mu.Lock()
			res.Samples = append(res.Samples, cur)
			totals = append(totals, tot)
			mu.Unlock()
		}
	}()

	var scaleErr error
	var stopped sync.WaitGroup
	select {
	case <-time.After(time.Until(t0.Add(s.ScaleAt))):
	case <-ctx.Done():
	}
	scaleErr = s.change(lb, dns, reps, ips, &stopped)
	clientsErr := wait()
	stopSampling()
	<-sampled
	stopped.Wait()

	for _, o := range outs {
		if o == nil {
			continue // its error is in clientsErr
		}
		res.Calls += o.Calls
		res.Failed += o.Failed
		for k, v := range o.Codes {
			res.Codes[k] += v
		}
		res.HeavyMoves += heavyMoves(o.Heavy, int((s.ScaleAt+time.Second)/time.Second))
		for sec, ps := range o.PerSecond {
			if ps[1] > 0 {
				res.FailedAt = append(res.FailedAt, sec)
			}
		}
	}
	for _, r := range reps[:s.After] {
		m, err := scrape(fmt.Sprintf("http://%s:%d/metrics", r.IP, mport), "grpcmgmt_goaway_sent_total")
		if err != nil {
			return ScaleResult{}, fmt.Errorf("metrics of %s: %w", r.Name, err)
		}
		res.GoAways += int(m[`reason="rebalance"`])
	}
	s.measure(&res, totals)
	return res, errors.Join(scaleErr, clientsErr)
}

// change applies the scale event.
func (s Scale) change(lb *HAProxy, dns *DNS, reps []*Replica, ips []string, stopped *sync.WaitGroup) error {
	var errs []error
	if s.After > s.Before {
		for _, r := range reps[s.Before:s.After] {
			errs = append(errs, lb.Enable(r.Name))
		}
		return errors.Join(append(errs, dns.Set(ips[:s.After]...))...)
	}
	for _, r := range reps[s.After:s.Before] {
		errs = append(errs, lb.Disable(r.Name))
	}
	errs = append(errs, dns.Set(ips[:s.After]...))
	for _, r := range reps[s.After:s.Before] {
		stopped.Add(1)
		go func() {
			defer stopped.Done()
			_, _ = r.Stop(30 * time.Second) // lame duck; its GOAWAYs send the clients to the others
		}()
	}
	return errors.Join(errs...)
}

// startClients starts the connload processes and returns their outputs
// (filled when wait returns).
func (s Scale) startClients(ctx context.Context, c *Cluster, target string, t0 time.Time) ([]*loadOutput, func() error, error) {
	outs := make([]*loadOutput, s.Clients)
	cmds := make([]*exec.Cmd, s.Clients)
	bufs := make([]*bytes.Buffer, s.Clients)
	for i := range s.Clients {
		conns := s.Conns / s.Clients
		if i < s.Conns%s.Clients {
			conns++
		}
		heavy := s.Heavy / s.Clients
		if i < s.Heavy%s.Clients {
			heavy++
		}
		logf, err := os.Create(filepath.Join(c.Dir, fmt.Sprintf("connload%d.log", i)))
		if err != nil {
			return nil, nil, err
		}
		cmd := exec.CommandContext(ctx, s.LoadBin, "-target", target, "-conns", fmt.Sprint(conns), "-heavy", fmt.Sprint(heavy),
			"-rate", fmt.Sprint(s.Rate), "-for", (s.ScaleAt + s.For).String(), "-t0", fmt.Sprint(t0.UnixNano()))
		bufs[i] = &bytes.Buffer{}
		cmd.Stdout, cmd.Stderr = bufs[i], logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			logf.Close()
			return nil, nil, err
		}
		cmds[i] = cmd
		c.onClose(func() { _ = cmd.Process.Kill(); logf.Close() })
	}
	wait := func() error {
		var errs []error
		for i, cmd := range cmds {
			if err := cmd.Wait(); err != nil {
				errs = append(errs, fmt.Errorf("connload %d: %v", i, err))
				continue
			}
			outs[i] = &loadOutput{}
			if err := json.Unmarshal(bufs[i].Bytes(), outs[i]); err != nil {
				errs = append(errs, fmt.Errorf("connload %d output: %v", i, err))
			}
		}
		return errors.Join(errs...)
	}
	return outs, wait, nil
}

// loadOutput is bench/cmd/connload's output.
type loadOutput struct {
	Calls, Failed int
	Codes         map[string]int
	PerSecond     [][2]int
	Heavy         [][]string
}

// heavyMoves counts, from second from on, how often each heavy channel's
// serving replica changed.
func heavyMoves(heavy [][]string, from int) int {
	moves := 0
	for _, h := range heavy {
		last := ""
		for i, r := range h {
			if r == "" || i < from {
				if r != "" {
					last = r
				}
				continue
			}
			if last != "" && r != last {
				moves++
			}
			last = r
		}
	}
	return moves
}

// measure computes the figures from the samples.
func (s Scale) measure(res *ScaleResult, totals [][]int) {
	res.SecondsToFairShare = -1
	at := int(s.ScaleAt / res.Every) // the first sample after the change
	if at < 1 || at >= len(res.Samples) {
		return
	}
	sum := func(v []int) int {
		t := 0
		for _, x := range v {
			t += x
		}
		return t
	}
	// Had to move: at the last sample before the change.
	before := res.Samples[max(0, at-2)] // taken before the change
	mean := float64(sum(before)) / float64(s.After)
	moves := 0.0
	for _, c := range before[:s.After] {
		moves += math.Max(0, float64(c)-mean)
	}
	res.HadToMove = int(math.Round(moves))
	bmax := 0
	for _, c := range before[:s.Before] {
		bmax = max(bmax, c)
	}
	if t := sum(before[:s.Before]); t > 0 {
		res.MaxOverMeanBefore = float64(bmax) / (float64(t) / float64(s.Before))
	}
	if res.HadToMove > 0 {
		res.GoAwaysPerMovedConn = float64(res.GoAways) / float64(res.HadToMove)
	}
	held := int(3 * time.Second / res.Every)
	run := 0
	for i := at; i < len(res.Samples); i++ {
		cur := res.Samples[i]
		ok := false
		if s.After > s.Before {
			fair := float64(s.After-s.Before) / float64(s.After)
			total := sum(cur[:s.After])
			ok = total > 0 && float64(sum(cur[s.Before:s.After]))/float64(total) >= 0.9*fair
		} else {
			ok = sum(cur[s.After:s.Before]) == 0
			held = 1
		}
		if !ok {
			run = 0
			continue
		}
		if run++; run == held {
			res.SecondsToFairShare = float64(i-held+1-at+1) * res.Every.Seconds()
			break
		}
	}
	// At the end: a second before the clients stop (their connections
	// close unevenly as the processes exit).
	end := min(len(res.Samples)-1, int((s.ScaleAt+s.For-time.Second)/res.Every))
	res.Samples = res.Samples[:end+1]
	last := res.Samples[end][:s.After]
	mx := 0
	for _, c := range last {
		mx = max(mx, c)
	}
	if t := sum(last); t > 0 {
		res.MaxOverMean = float64(mx) / (float64(t) / float64(s.After))
	}
	per := int(time.Second / res.Every)
	for i := at; i+per < len(totals); i++ {
		for r := range totals[i] {
			res.PeakReconnectsPerSec = max(res.PeakReconnectsPerSec, totals[i+per][r]-totals[i][r])
		}
	}
}

// ConnsChart writes an SVG of the connections per replica over time, one
// point per second, with the change marked.
func (r ScaleResult) ConnsChart(path, title string) error {
	c := chart.Line{Title: title, XLabel: "seconds", YLabel: "connections",
		Markers: []chart.Marker{{X: r.ScaleAt.Seconds(), Label: "set changes"}}}
	step := int(time.Second / r.Every)
	for j, name := range r.Names {
		ser := chart.Series{Name: name}
		for i := 0; i < len(r.Samples); i += step {
			ser.Points = append(ser.Points, chart.Point{X: float64(i/step) + 1, Y: float64(r.Samples[i][j])})
		}
		c.Series = append(c.Series, ser)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := c.WriteSVG(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
