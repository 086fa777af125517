package cluster

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Fleet is a replica set behind a real dnsmasq, called by standard clients
// (grpc-go, or C-core with Stack PythonStack) on dns:/// with a service
// config, under open-loop load.
type Fleet struct {
	Bin string
	// Args are the flags of each replica (one entry per replica).
	Args          [][]string
	ServiceConfig string
	Conns         int
	Rate          float64
	// Callers, when positive, replaces the open loop at Rate with a
	// closed loop of that many callers (grpc-go clients only).
	Callers     int
	For         time.Duration
	CallTimeout time.Duration
	// Stack is the client: GoStack (in-process grpc-go) or PythonStack.
	Stack Stack
	// Guard gives every replica its replica set for the health lever's
	// outage guard: the fleet's DNS name (-health-peers).
	Guard bool
	// Watch names the replicas whose health the run samples from their
	// /metrics every 250 ms (FleetRun.Health).
	Watch []string
}

// HealthSample is one reading of a replica's health gauges.
type HealthSample struct {
	At time.Duration // since the load started
	// RemovedShare is the share of its health Watch streams answered
	// NOT_SERVING for load (grpcmgmt.health.removed_share).
	RemovedShare float64
	// NotServing is its published status (what a Check answers) being
	// other than SERVING (grpcmgmt.health.status).
	NotServing bool
}

// FleetRun is what a Fleet run recorded.
type FleetRun struct {
	Rec    *Recorder
	Health map[string][]HealthSample // by replica of Fleet.Watch
}

// MaxNotServing returns the largest number of watched replicas that were
// NOT_SERVING at the same time in [from, to), counting only what the
// samples prove: a replica is known to be NOT_SERVING between two
// consecutive samples that both say so (the samples of different replicas
// are taken at different instants, so a change between two samples could
// otherwise look like an overlap).
func (r FleetRun) MaxNotServing(from, to time.Duration) int {
	type edge struct {
		at    time.Duration
		delta int
	}
	var edges []edge
	for _, hs := range r.Health {
		for i := 1; i < len(hs); i++ {
			a, b := hs[i-1], hs[i]
			if a.NotServing && b.NotServing && a.At >= from && b.At < to {
				edges = append(edges, edge{a.At, 1}, edge{b.At, -1})
			}
		}
	}
	slices.SortFunc(edges, func(x, y edge) int {
		if x.at != y.at {
			return int(x.at - y.at)
		}
		return x.delta - y.delta // an interval that ends where another starts does not overlap it
	})
	m, n := 0, 0
	for _, e := range edges {
		n += e.delta
		m = max(m, n)
	}
	return m
}

// Run starts the fleet, runs the load and returns the recorder.
func (f Fleet) Run(ctx context.Context, c *Cluster) (*Recorder, error) {
	run, err := f.RunWatched(ctx, c)
	return run.Rec, err
}

// RunWatched is Run, with the health of Fleet.Watch sampled.
func (f Fleet) RunWatched(ctx context.Context, c *Cluster) (FleetRun, error) {
	run := FleetRun{Health: map[string][]HealthSample{}}
	ips := make([]string, len(f.Args))
	for i := range ips {
		ips[i] = fmt.Sprintf("127.0.0.%d", i+2)
	}
	port, err := FreePort(ips...)
	if err != nil {
		return run, err
	}
	dns, err := c.StartDNS("svc.fleet.test", 0, ips...)
	if err != nil {
		return run, err
	}
	metricsAddrs := map[string]string{}
	for i, ip := range ips {
		name := fmt.Sprintf("r%d", i+1)
		args := f.Args[i]
		if f.Guard {
			args = append(args[:len(args):len(args)], "-health-peers", dns.Name, "-health-peers-resolver", dns.Addr,
				"-health-peers-port", fmt.Sprint(port))
		}
		if slices.Contains(f.Watch, name) {
			mport, err := FreePort(ip)
			if err != nil {
				return run, err
			}
			metricsAddrs[name] = net.JoinHostPort(ip, fmt.Sprint(mport))
			args = append(args[:len(args):len(args)], "-metrics-listen", metricsAddrs[name])
		}
		if _, err := c.StartReplica(f.Bin, name, ip, port, args...); err != nil {
			return run, err
		}
	}
	run.Rec = NewRecorder()
	if f.Stack != GoStack {
		l := dnsLoad(f.Stack, dns, port)
		l.ServiceConfig, l.Channels, l.Rate, l.For, l.CallTimeout = f.ServiceConfig, f.Conns, f.Rate, f.For, f.CallTimeout
		ext, err := c.StartExternal(ctx, l)
		if err != nil {
			return run, err
		}
		_, err = ext.Wait(run.Rec)
		return run, err
	}
	client, err := Dial(fmt.Sprintf("dns://%s/%s:%d", dns.Addr, dns.Name, port), f.ServiceConfig, f.Conns)
	if err != nil {
		return run, err
	}
	defer client.Close()
	rctx, cancel := context.WithTimeout(ctx, f.For)
	defer cancel()
	var (
		wg sync.WaitGroup
		mu sync.Mutex
	)
	for name, addr := range metricsAddrs {
		wg.Go(func() {
			hs := sampleHealth(rctx, addr, run.Rec.Start())
			mu.Lock()
			run.Health[name] = hs
			mu.Unlock()
		})
	}
	if f.Callers > 0 {
		client.ClosedLoop(rctx, f.Callers, f.CallTimeout, run.Rec)
	} else {
		client.OpenLoop(rctx, f.Rate, f.CallTimeout, run.Rec)
	}
	wg.Wait()
	return run, ctx.Err()
}

// sampleHealth reads the health gauges at addr's /metrics every 250 ms
// until ctx ends. With TRACE_METRICS=file in the environment it also
// appends the load and loadshed gauges to file, for a closer look at why
// a lever did or did not engage.
func sampleHealth(ctx context.Context, addr string, start time.Time) []HealthSample {
	var out []HealthSample
	hc := &http.Client{Timeout: time.Second}
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return out
		case <-t.C:
		}
		resp, err := hc.Get("http://" + addr + "/metrics")
		if err != nil {
			continue
		}
		s := HealthSample{At: time.Since(start)}
		found := false
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		var trace []string
		for sc.Scan() {
			line := sc.Text()
			if os.Getenv("TRACE_METRICS") != "" && (strings.HasPrefix(line, "grpcmgmt_load_") || strings.HasPrefix(line, "grpcmgmt_loadshed_")) && !strings.HasPrefix(line, "grpcmgmt_load_custom") {
				trace = append(trace, line)
			}
			i := strings.LastIndexByte(line, ' ')
			if i < 0 {
				continue
			}
			v, err := strconv.ParseFloat(line[i+1:], 64)
			if err != nil {
				continue
			}
			switch {
			case strings.HasPrefix(line, "grpcmgmt_health_removed_share"):
				s.RemovedShare, found = v, true
			case strings.HasPrefix(line, "grpcmgmt_health_status") && strings.Contains(line, `service=""`):
				s.NotServing = v != 1
			}
		}
		resp.Body.Close()
		if len(trace) > 0 {
			if f, err := os.OpenFile(os.Getenv("TRACE_METRICS"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
				fmt.Fprintf(f, "@ %.2f\n%s\n", s.At.Seconds(), strings.Join(trace, "\n"))
				f.Close()
			}
		}
		if found {
			out = append(out, s)
		}
	}
}

// Capacity measures the fleet's capacity in calls/s: callers concurrent
// callers in closed loop for Fleet.For, the first second skipped. Rate is
// ignored.
func (f Fleet) Capacity(ctx context.Context, c *Cluster, callers int) (float64, error) {
	ips := make([]string, len(f.Args))
	for i := range ips {
		ips[i] = fmt.Sprintf("127.0.0.%d", i+2)
	}
	port, err := FreePort(ips...)
	if err != nil {
		return 0, err
	}
	dns, err := c.StartDNS("svc.fleet.test", 0, ips...)
	if err != nil {
		return 0, err
	}
	for i, ip := range ips {
		if _, err := c.StartReplica(f.Bin, fmt.Sprintf("cap%d", i+1), ip, port, f.Args[i]...); err != nil {
			return 0, err
		}
	}
	client, err := Dial(fmt.Sprintf("dns://%s/%s:%d", dns.Addr, dns.Name, port), f.ServiceConfig, f.Conns)
	if err != nil {
		return 0, err
	}
	defer client.Close()
	rec := NewRecorder()
	rctx, cancel := context.WithTimeout(ctx, f.For)
	defer cancel()
	client.ClosedLoop(rctx, callers, f.CallTimeout, rec)
	w := rec.Window(time.Second, f.For)
	return float64(w.OK) / (f.For - time.Second).Seconds(), ctx.Err()
}
