// Command client calls a grpcmgmt replica set the way a standard gRPC
// client should be configured, and prints every second how many calls each
// replica served and how many failed.
//
//	go -C examples run ./client -target dns:///svc.example:50051
//
// The dial configuration is the library's own (package clientconfig, shown
// in docs/clients.md): DNS resolution (so new replicas are found when the
// server ends a connection), round_robin over every resolved address (or
// weighted_round_robin with -lb), client-side health checking
// (grpc.health.v1, so replicas that turn NOT_SERVING are skipped), and a
// retry policy for the retryable statuses grpcmgmt returns when it sheds a
// call (UNAVAILABLE, honouring the grpc-retry-pushback-ms trailer).
package main

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	_ "google.golang.org/grpc/balancer/weightedroundrobin" // -lb weighted_round_robin
	"google.golang.org/grpc/credentials/insecure"
	_ "google.golang.org/grpc/health" // client-side health checking (healthCheckConfig)
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"

	"github.com/grpcmgmt/grpcmgmt/clientconfig"
)

func main() {
	var (
		target   = flag.String("target", "dns:///localhost:50051", "gRPC target (dns:///host:port for a replica set)")
		addrs    = flag.String("addrs", "", "comma-separated host:port list to balance over instead of -target (static resolver)")
		callers  = flag.Int("callers", 8, "concurrent callers (closed loop)")
		duration = flag.Duration("duration", 0, "how long to run (0: until interrupted)")
		timeout  = flag.Duration("timeout", 2*time.Second, "deadline of each call")
		size     = flag.Int("size", 0, "response size in bytes")
		streams  = flag.Int("streams", 0, "long-lived server streams to hold beside the unary calls, resumed when the server drains them")
		lb       = flag.String("lb", "round_robin", "client config: round_robin, weighted_round_robin (per-call ORCA reports) or weighted_round_robin_oob (out-of-band reports)")
	)
	flag.Parse()
	serviceConfig, ok := map[string]string{
		"round_robin":              clientconfig.RoundRobin,
		"weighted_round_robin":     clientconfig.WeightedRoundRobin,
		"weighted_round_robin_oob": clientconfig.WeightedRoundRobinOOB,
	}[*lb]
	if !ok {
		fmt.Fprintf(os.Stderr, "client: -lb %q: want round_robin, weighted_round_robin or weighted_round_robin_oob\n", *lb)
		os.Exit(2)
	}
	var opts []grpc.DialOption
	if *addrs != "" {
		r := manual.NewBuilderWithScheme("static")
		var state resolver.State
		for _, a := range strings.Split(*addrs, ",") {
			state.Endpoints = append(state.Endpoints, resolver.Endpoint{Addresses: []resolver.Address{{Addr: strings.TrimSpace(a)}}})
		}
		r.InitialState(state)
		*target = "static:///replicas"
		opts = append(opts, grpc.WithResolvers(r))
	}
	opts = append(opts, grpc.WithDefaultServiceConfig(serviceConfig))
	if err := run(*target, opts, *callers, *streams, *duration, *timeout, int32(*size)); err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		os.Exit(1)
	}
}

func run(target string, opts []grpc.DialOption, callers, streams int, duration, timeout time.Duration, size int32) error {
	cc, err := grpc.NewClient(target, append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
	}, opts...)...)
	if err != nil {
		return err
	}
	defer cc.Close()
	client := testpb.NewTestServiceClient(cc)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, duration)
		defer cancel()
	}

	var mu sync.Mutex
	perReplica := map[string]int{}
	var failed atomic.Int64
	var lastErr atomic.Pointer[string]
	var wg sync.WaitGroup
	held := &streamHolder{}
	if streams > 0 {
		held.hold(ctx, client, streams, 100*time.Millisecond, &wg)
	}
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				var hdr metadata.MD
				callCtx, cancel := context.WithTimeout(context.Background(), timeout)
				_, err := client.UnaryCall(callCtx, &testpb.SimpleRequest{ResponseSize: size}, grpc.Header(&hdr))
				cancel()
				if err != nil {
					if ctx.Err() == nil {
						failed.Add(1)
						msg := status.Convert(err).String()
						lastErr.Store(&msg)
					}
					continue
				}
				name := "?"
				if v := hdr.Get("x-replica"); len(v) > 0 {
					name = v[0]
				}
				mu.Lock()
				perReplica[name]++
				mu.Unlock()
			}
		}()
	}

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	start := time.Now()
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-tick.C:
		}
		mu.Lock()
		counts := perReplica
		perReplica = map[string]int{}
		mu.Unlock()
		var b strings.Builder
		fmt.Fprintf(&b, "t=%3.0fs", time.Since(start).Seconds())
		for _, name := range slices.Sorted(maps.Keys(counts)) {
			fmt.Fprintf(&b, "  %s=%d", name, counts[name])
		}
		fmt.Fprintf(&b, "  errors=%d", failed.Swap(0))
		if streams > 0 {
			per := held.perReplica()
			fmt.Fprintf(&b, "  streams:")
			for _, name := range slices.Sorted(maps.Keys(per)) {
				fmt.Fprintf(&b, " %s=%d", name, per[name])
			}
			fmt.Fprintf(&b, " resumed=%d failed=%d", held.resumed.Swap(0), held.failed.Swap(0))
		}
		if e := lastErr.Swap(nil); e != nil {
			fmt.Fprintf(&b, " (last: %s)", *e)
		}
		fmt.Println(b.String())
	}
	wg.Wait()
	return nil
}
