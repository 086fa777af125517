// Command demo shows, on one machine and with nothing to install, what
// grpcmgmt does for a standard gRPC client.
//
// It starts three replicas in this process on 127.0.0.2-4 (same port), an
// in-process DNS server that resolves svc.demo to the replica set, and a
// standard grpc-go client dialling dns:///svc.demo with round_robin and
// health checking. Then it scales out to a fourth replica and makes one
// replica hot, printing every second how many calls each replica served,
// and ends with a summary of what moved and which lever moved it, and an
// SVG chart.
//
//	go -C examples run ./demo            (make demo)
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	_ "google.golang.org/grpc/health" // client-side health checking
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/resolver/dns"
	"google.golang.org/grpc/status"

	"github.com/grpcmgmt/grpcmgmt"
	"github.com/grpcmgmt/grpcmgmt/clientconfig"
	"github.com/grpcmgmt/grpcmgmt/examples/internal/dnsserver"
	"github.com/grpcmgmt/grpcmgmt/goaway"
	"github.com/grpcmgmt/grpcmgmt/health"
	"github.com/grpcmgmt/grpcmgmt/internal/chart"
	"github.com/grpcmgmt/grpcmgmt/internal/loopback"
	"github.com/grpcmgmt/grpcmgmt/internal/replica"
	"github.com/grpcmgmt/grpcmgmt/loadshed"
	"github.com/grpcmgmt/grpcmgmt/maxage"
)

// Timeline of the demo, in seconds from the start.
const (
	scaleOutAt = 10
	hotAt      = 32
	endAt      = 55
)

// Capacity of a replica: one worker burning work per call.
const (
	work    = 2 * time.Millisecond
	hotWork = 8 * time.Millisecond
	callers = 16
)

func main() {
	out := flag.String("out", filepath.Join(os.TempDir(), "grpcmgmt-demo.svg"), "where to write the chart")
	flag.Parse()
	if err := run(*out); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

type node struct {
	name string
	ip   string
	svc  *replica.Service
	m    *grpcmgmt.Manager
	srv  *grpc.Server
	done chan struct{}
}

func run(svgPath string) error {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())

	// One port on every replica address, as behind a headless Service.
	port, err := loopback.FreePort("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5")
	if err != nil {
		return err
	}
	dnsSrv, err := dnsserver.Start("svc.demo")
	if err != nil {
		return err
	}
	defer dnsSrv.Close()

	start := func(i int) (*node, error) {
		n := &node{name: fmt.Sprintf("r%d", i), ip: fmt.Sprintf("127.0.0.%d", i+1), done: make(chan struct{})}
		n.svc = replica.New(replica.Config{Name: n.name, Work: work, Workers: 1})
		m, err := grpcmgmt.New(grpcmgmt.WithInsecure(),
			grpcmgmt.WithMeterProvider(mp),
			grpcmgmt.WithLogger(quietLogger()),
			// Short ages so the demo fits in a minute; production default is
			// maxage.DefaultMaxConnectionAge.
			// The production default is 2 minutes; the demo relies on
			// rebalancing for the scale-out and keeps ages long.
			grpcmgmt.WithMaxAge(maxage.Config{MaxConnectionAge: 5 * time.Minute}),
			// Each replica watches its own replica set in DNS and, when it
			// grows, sends GOAWAY to its fair share of connections.
			grpcmgmt.WithRebalance(goaway.RebalanceConfig{Name: "svc.demo.", Resolver: dnsSrv.Addr(), Interval: 500 * time.Millisecond, StableFor: time.Second,
				Settle: 3 * time.Second}), // the in-process DNS answers every replica alike at once; Settle is also the start-up grace, and the scale-out comes 10 s after the start
			// With DNS round_robin clients a GOAWAY for overload brings the
			// client straight back to the same address, so the demo leaves
			// that policy off; health, shedding and ORCA move load here.
			grpcmgmt.WithGoAway(goaway.Config{}, goaway.PolicyConfig{Off: true}),
			// The replicas share this process's CPU, so the demo watches
			// what differs per replica: calls in flight.
			grpcmgmt.WithHealth(health.Config{InFlightEnter: 6, DisableCPU: true, Hold: time.Second, MaxNotServing: 8 * time.Second, Cooldown: 4 * time.Second, PropagationDelay: 100 * time.Millisecond}),
			// Shed what a replica cannot serve in time; the client's retry
			// policy sends the call to another replica.
			grpcmgmt.WithLoadShed(loadshed.Config{CPUThreshold: loadshed.Off, MaxInFlight: 10}),
		)
		if err != nil {
			return nil, err
		}
		n.m = m
		n.srv = grpc.NewServer(m.ServerOptions()...)
		n.svc.Register(n.srv)
		if err := m.Register(n.srv); err != nil {
			return nil, err
		}
		lis, err := net.Listen("tcp", net.JoinHostPort(n.ip, fmt.Sprint(port)))
		if err != nil {
			return nil, err
		}
		go func() { defer close(n.done); _ = n.srv.Serve(lis) }()
		return n, nil
	}

	var nodes []*node
	defer func() {
		for _, n := range nodes {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = n.m.Shutdown(ctx)
			cancel()
			<-n.done
		}
	}()
	publish := func() {
		var ips []net.IP
		for _, n := range nodes {
			ips = append(ips, net.ParseIP(n.ip))
		}
		dnsSrv.Set(ips...)
	}
	for i := 1; i <= 3; i++ {
		n, err := start(i)
		if err != nil {
			return err
		}
		nodes = append(nodes, n)
	}
	publish()

	// A standard client. grpc-go re-resolves DNS at most every 30 s; the
	// demo lowers that client knob to 2 s so it fits in a minute.
	dns.SetMinResolutionInterval(2 * time.Second)
	target := fmt.Sprintf("dns://%s/svc.demo:%d", dnsSrv.Addr(), port)
	cc, err := grpc.NewClient(target,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(clientconfig.RoundRobin))
	if err != nil {
		return err
	}
	defer cc.Close()
	client := testpb.NewTestServiceClient(cc)

	fmt.Printf(`grpcmgmt demo: 3 replicas (r1-r3 on 127.0.0.2-4:%d), an in-process DNS server for svc.demo,
and one standard grpc-go client (%s, round_robin, health checking, retries)
with %d callers. Each replica serves about %d calls/s (one worker, %v of CPU per call).
  t=%ds  scale out: r4 joins the DNS answer. Without grpcmgmt the client would keep
         its three connections forever and r4 would get nothing. With it, each
         replica sees the set grow from 3 to 4 and sends GOAWAY to a quarter
         of its connections: the client re-resolves and connects to r4.
  t=%ds  r2 turns hot: each of its calls costs %v instead of %v. r2 sheds
         what it cannot serve in time; the client retries those calls on
         the other replicas.
Columns: calls per second each replica served (seen by the client), failed calls.

`, port, target, callers, int(time.Second/work), work, scaleOutAt, hotAt, hotWork, work)

	var (
		mu     sync.Mutex
		counts = map[string]int{}
		failed atomic.Int64
		// failedBy counts failed calls by status, guarded by mu.
		failedBy = map[string]int{}
		history  []map[string]int
	)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				var hdr metadata.MD
				cctx, c := context.WithTimeout(ctx, 2*time.Second)
				_, err := client.UnaryCall(cctx, &testpb.SimpleRequest{}, grpc.Header(&hdr))
				c()
				if err != nil {
					if ctx.Err() == nil {
						failed.Add(1)
						mu.Lock()
						failedBy[status.Code(err).String()+": "+status.Convert(err).Message()]++
						mu.Unlock()
					}
					continue
				}
				if v := hdr.Get(replica.HeaderName); len(v) > 0 {
					mu.Lock()
					counts[v[0]]++
					mu.Unlock()
				}
			}
		}()
	}

	var markers []chart.Marker
	totalFailed := int64(0)
	fmt.Printf("%5s %7s %7s %7s %7s %7s   %s\n", "t", "r1", "r2", "r3", "r4", "failed", "event")
	tick := time.NewTicker(time.Second)
	for sec := 1; sec <= endAt; sec++ {
		<-tick.C
		event := ""
		switch sec {
		case scaleOutAt:
			n, err := start(4)
			if err != nil {
				cancel()
				wg.Wait()
				return err
			}
			nodes = append(nodes, n)
			publish()
			event = "scale out: r4 added to DNS"
			markers = append(markers, chart.Marker{X: float64(sec), Label: "r4 added"})
		case hotAt:
			nodes[1].svc.SetWork(hotWork)
			event = "r2 turns hot"
			markers = append(markers, chart.Marker{X: float64(sec), Label: "r2 hot"})
		}
		mu.Lock()
		snap := counts
		counts = map[string]int{}
		mu.Unlock()
		history = append(history, snap)
		f := failed.Swap(0)
		totalFailed += f
		fmt.Printf("%4ds %7d %7d %7d %7d %7d   %s\n", sec, snap["r1"], snap["r2"], snap["r3"], snap["r4"], f, event)
	}
	tick.Stop()
	cancel()
	wg.Wait()

	// Summary.
	share := func(from, to int) map[string]float64 {
		sum := map[string]float64{}
		total := 0.0
		for _, h := range history[from-1 : to] {
			for k, v := range h {
				sum[k] += float64(v)
				total += float64(v)
			}
		}
		for k := range sum {
			sum[k] /= max(total, 1)
		}
		return sum
	}
	fmtShare := func(s map[string]float64) string {
		var parts []string
		for _, k := range []string{"r1", "r2", "r3", "r4"} {
			parts = append(parts, fmt.Sprintf("%s %3.0f%%", k, 100*s[k]))
		}
		return strings.Join(parts, "  ")
	}
	fmt.Printf("\nWhat moved (share of calls):\n")
	fmt.Printf("  before scale-out  (t=%d-%ds):  %s\n", scaleOutAt-5, scaleOutAt-1, fmtShare(share(scaleOutAt-5, scaleOutAt-1)))
	fmt.Printf("  after scale-out   (t=%d-%ds):  %s\n", hotAt-6, hotAt-1, fmtShare(share(hotAt-6, hotAt-1)))
	fmt.Printf("  r2 hot            (t=%d-%ds):  %s\n", endAt-9, endAt, fmtShare(share(endAt-9, endAt)))
	fmt.Printf("  failed calls: %d\n", totalFailed)
	for k, v := range failedBy {
		fmt.Printf("    %5d  %s\n", v, k)
	}

	fmt.Printf("\nWhich lever moved it (the library's own OpenTelemetry metrics, summed over replicas):\n")
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err == nil {
		for _, line := range decisionLines(rm) {
			fmt.Println("  " + line)
		}
	}
	fmt.Println()
	fair := 0.9 / 4
	reached := -1
	for i := scaleOutAt; i+2 < len(history); i++ {
		ok := true
		for j := i; j < i+3; j++ {
			tot := 0
			for _, v := range history[j] {
				tot += v
			}
			if tot == 0 || float64(history[j]["r4"])/float64(tot) < fair {
				ok = false
			}
		}
		if ok {
			reached = i + 1 - scaleOutAt
			break
		}
	}
	if reached >= 0 {
		fmt.Printf("  scale-out: r4 held its fair share %d s after it joined DNS (rebalancing GOAWAYs,\n", reached)
		fmt.Printf("             then the client's re-resolution; the client re-resolves at most every 2 s here, 30 s by default).\n")
	} else {
		fmt.Printf("  scale-out: r4 did not reach its fair share during the demo.\n")
	}
	flips, shed := sumOf(rm, "grpcmgmt.health.flips", "direction", "not_serving"), sumOf(rm, "grpcmgmt.loadshed.shed", "", "")
	fmt.Printf("  hot r2:    health turned NOT_SERVING %d times for load (health-checking clients skip the\n", flips)
	fmt.Printf("             replica, for a bounded time), and %d calls were shed and retried on other replicas; r2 kept\n", shed)
	fmt.Printf("             serving what it could, and the others did not fall to r2's pace.\n")

	c := chart.Line{Title: "grpcmgmt demo: calls per second per replica", XLabel: "seconds", YLabel: "calls/s", Markers: markers}
	for _, name := range []string{"r1", "r2", "r3", "r4"} {
		s := chart.Series{Name: name}
		for i, h := range history {
			s.Points = append(s.Points, chart.Point{X: float64(i + 1), Y: float64(h[name])})
		}
		c.Series = append(c.Series, s)
	}
	f, err := os.Create(svgPath)
	if err != nil {
		return err
	}
	if err := c.WriteSVG(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Printf("\nChart: %s\n", svgPath)
	return nil
}

// decisionLines lists every grpcmgmt counter that counted something, with
// its attributes, summed over replicas.
func decisionLines(rm metricdata.ResourceMetrics) []string {
	sums := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if !strings.HasPrefix(m.Name, "grpcmgmt.") {
				continue
			}
			if s, ok := m.Data.(metricdata.Sum[int64]); ok && s.IsMonotonic {
				for _, dp := range s.DataPoints {
					var attrs []string
					for _, kv := range dp.Attributes.ToSlice() {
						attrs = append(attrs, fmt.Sprintf("%s=%s", kv.Key, kv.Value.String()))
					}
					key := m.Name
					if len(attrs) > 0 {
						key += "{" + strings.Join(attrs, ",") + "}"
					}
					sums[key] += dp.Value
				}
			}
		}
	}
	var lines []string
	for k, v := range sums {
		if v > 0 {
			lines = append(lines, fmt.Sprintf("%-60s %d", k, v))
		}
	}
	sort.Strings(lines)
	if len(lines) == 0 {
		lines = append(lines, "(no lever recorded a decision)")
	}
	return lines
}

// sumOf sums the data points of a counter, optionally only those whose
// attribute key has the value.
func sumOf(rm metricdata.ResourceMetrics, name, key, value string) int64 {
	var n int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			s, ok := m.Data.(metricdata.Sum[int64])
			if m.Name != name || !ok {
				continue
			}
			for _, dp := range s.DataPoints {
				if v, _ := dp.Attributes.Value(attribute.Key(key)); key == "" || v.AsString() == value {
					n += dp.Value
				}
			}
		}
	}
	return n
}
